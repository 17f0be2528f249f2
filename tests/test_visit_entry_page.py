"""The visit entry page: every open form of a visit on one page, saved together; an error is
shown on the field of its form and nothing is saved (P-4.5, X-5.7)."""

import re

import pytest
from django.utils import timezone

from .test_visits_support import GOOD, transplant_dates, trial_participant  # noqa: F401


def _post_data(forms: dict, **extra) -> dict:
    data = {f"{fid}-{k}": str(v) for fid, items in forms.items() for k, v in items.items()}
    return {**data, **extra}


@pytest.fixture
def w1(trial_participant, transplant_dates, client_for):
    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = client_for("coordinator")
    r = c.post(f"/participants/{p.pk}/visits/w1/", {"action": "open", "visit_date": timezone.localdate().isoformat()})
    assert r.status_code == 302
    return p, c


@pytest.mark.req("P-4.5", "X-5.7")
def test_whole_visit_is_entered_and_completed_on_one_page(w1):
    from annulus.visits.models import FormRecord, Visit

    p, c = w1
    visit_page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    assert f"/participants/{p.pk}/visits/w1/entry/" in visit_page
    page = c.get(f"/participants/{p.pk}/visits/w1/entry/").content.decode()
    visit = Visit.objects.get(participant=p, visit_id="w1")
    for form_id in visit.forms:
        assert f'id="form-{form_id}"' in page
    assert 'name="odi-s1"' in page and 'name="blood_routine-wbc"' in page
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/", _post_data({f: GOOD[f] for f in visit.forms}, complete="1"))
    assert r.status_code == 302, r.content.decode()[:2000]
    states = dict(FormRecord.objects.filter(visit=visit).values_list("form_id", "state"))
    assert states == {f: "complete" for f in visit.forms}
    assert Visit.objects.get(pk=visit.pk).completed_at is not None
    # the visit page shows the computed scores and no longer offers the entry page
    visit_page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    assert "ODI %" in visit_page and "/entry/" not in visit_page


@pytest.mark.req("X-5.7")
def test_an_error_is_shown_on_its_form_and_field_and_nothing_is_saved(w1):
    from annulus.visits.models import FormRecord, Visit

    p, c = w1
    visit = Visit.objects.get(participant=p, visit_id="w1")
    forms = {f: GOOD[f] for f in visit.forms}
    forms["vas"] = {"vas_mm": 101}
    forms["vitals"] = {**GOOD["vitals"], "pulse": 900}
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/", _post_data(forms, complete="1"))
    assert r.status_code == 200
    html = r.content.decode()
    # each form with an error is marked in the form list, each error shown on its field
    assert 'class="status overdue">VAS' in html and 'class="status overdue">Vital signs' in html
    assert "must be 0–100" in html and "900" in html
    assert 'name="vas-vas_mm" value="101"' in html  # what was typed is kept on the page
    assert 'name="odi-s1"' in html
    assert FormRecord.objects.filter(visit=visit).count() == 0


@pytest.mark.req("X-5.7")
def test_drafts_keep_what_was_typed_and_skip_empty_forms(w1):
    from annulus.visits.models import FormRecord, Visit

    p, c = w1
    visit = Visit.objects.get(participant=p, visit_id="w1")
    # the page comes with every laboratory unit pre-filled; a browser sends them back
    page = c.get(f"/participants/{p.pk}/visits/w1/entry/").content.decode()
    units = dict(re.findall(r'name="([a-z_]+-[a-z0-9_]+__unit)" value="([^"]*)"', page))
    assert units  # the lab forms of the visit
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/", {**units, **_post_data({"vas": {"vas_mm": 35},
                                                                                  "odi": {"s1": 2}}, draft="1")})
    assert r.status_code == 302
    assert dict(FormRecord.objects.filter(visit=visit).values_list("form_id", "state")) == {"vas": "draft",
                                                                                            "odi": "draft"}
    # the drafts are pre-filled when the page is opened again
    page = c.get(f"/participants/{p.pk}/visits/w1/entry/").content.decode()
    assert 'name="vas-vas_mm" value="35.0"' in page
    # a draft of nothing new changes nothing
    before = FormRecord.objects.filter(visit=visit).count()
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/", _post_data({"vas": {"vas_mm": 35}, "odi": {"s1": 2}},
                                                                     draft="1"))
    assert r.status_code == 302
    assert FormRecord.objects.filter(visit=visit).count() == before
    assert sum(r.revision for r in FormRecord.objects.filter(visit=visit)) == 2


@pytest.mark.req("P-4.5")
def test_blinded_monitor_sees_the_page_but_cannot_save(w1, client_for):
    p, _c = w1
    m = client_for("monitor")
    assert m.get(f"/participants/{p.pk}/visits/w1/entry/").status_code == 200
    r = m.post(f"/participants/{p.pk}/visits/w1/entry/", _post_data({"vas": GOOD["vas"]}, draft="1"))
    assert r.status_code == 403
