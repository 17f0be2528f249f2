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


@pytest.mark.req("X-5.7", "X-7.3")
def test_a_form_saved_by_someone_else_meanwhile_is_not_overwritten(w1, users):
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord, Visit

    p, c = w1
    visit = Visit.objects.get(participant=p, visit_id="w1")
    page = c.get(f"/participants/{p.pk}/visits/w1/entry/").content.decode()
    shown = dict(re.findall(r'name="([a-z_0-9]+-revision)" value="(\d+)"', page))
    assert shown["odi-revision"] == "0"
    # another user saves an ODI draft while the page is open
    vs.save_form(actor=users["investigator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items={"s1": 3, "s2": 1})
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/", {**shown, **_post_data({"vas": {"vas_mm": 35}}, draft="1")})
    assert r.status_code == 200
    assert "Oswestry Disability Index changed since this page was opened" in r.content.decode()
    odi = FormRecord.objects.get(visit=visit, form_id="odi")
    assert odi.items == {"s1": 3, "s2": 1} and odi.revision == 1
    assert not FormRecord.objects.filter(visit=visit, form_id="vas").exists()


@pytest.mark.req("P-4.7", "X-5.7")
def test_a_bad_collection_time_is_shown_once_on_the_page(w1):
    from datetime import timedelta

    from annulus.visits.models import FormRecord, Visit

    p, c = w1
    visit = Visit.objects.get(participant=p, visit_id="w1")
    far = timezone.localtime(timezone.now() - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M")
    r = c.post(f"/participants/{p.pk}/visits/w1/entry/",
               _post_data({"vas": {"vas_mm": 35}, "odi": {"s1": 2}}, draft="1", collected_at=far))
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count("more than 7 days from the visit date") == 1
    assert FormRecord.objects.filter(visit=visit).count() == 0


@pytest.mark.req("X-5.7")
def test_single_form_page_refuses_to_overwrite_a_newer_save(w1, users):
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, c = w1
    page = c.get(f"/participants/{p.pk}/visits/w1/vas/").content.decode()
    assert 'name="revision" value="0"' in page
    vs.save_form(actor=users["investigator"], participant_id=p.pk, visit_key="w1", form_id="vas", items={"vas_mm": 50})
    r = c.post(f"/participants/{p.pk}/visits/w1/vas/", {"vas_mm": "30", "revision": "0", "draft": "1"})
    assert r.status_code == 200 and "changed since this page was opened" in r.content.decode()
    assert FormRecord.objects.get(visit__participant=p, form_id="vas").items == {"vas_mm": 50.0}


@pytest.mark.req("P-4.5")
def test_unscheduled_visit_entry_and_pages_without_open_forms(w1, users):
    from annulus.visits import services as vs

    p, c = w1
    u = vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk, visit_date=timezone.localdate(),
                                 reason="pain flare", forms=["vas", "vitals"])
    page = c.get(f"/participants/{p.pk}/visits/{u.key}/entry/").content.decode()
    assert 'id="form-vas"' in page and 'id="form-vitals"' in page and 'id="form-odi"' not in page
    r = c.post(f"/participants/{p.pk}/visits/{u.key}/entry/",
               _post_data({"vas": GOOD["vas"], "vitals": GOOD["vitals"]}, complete="1"))
    assert r.status_code == 302
    assert "Every form of this visit is complete." in c.get(f"/participants/{p.pk}/visits/{u.key}/entry/").content.decode()
    # a visit not recorded yet has no entry page
    assert c.get(f"/participants/{p.pk}/visits/m1/entry/").status_code == 404
