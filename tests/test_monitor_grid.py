"""The monitor's view: a status grid of participants x visits (forms entered, open queries, SDV
progress, signatures, locks) with colours and counts, a filter by status and links through to the
visit; the grid's counts at the top of the monitor's and the data manager's home page; the
per-participant casebook summary. Both languages; no arm anywhere."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from annulus.monitoring import selectors, services
from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")


@pytest.fixture
def trial(at_w1, users, make_participant, monkeypatch):  # noqa: F811
    """One participant at the 1-week visit with VAS complete (verified) and ODI complete (cleared
    after a change), and one only consented. The plan's share is set to 100 % so that the ODI is in
    the plan whatever the draw."""
    import dataclasses

    full = dataclasses.replace(selectors.current_plan(), sample_percent=100.0)
    monkeypatch.setattr(selectors, "current_plan", lambda protocol=None: full)
    p, _v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    for form in ("vas", "odi"):
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id=form, items=GOOD[form],
                     complete=True, collected_at=aware(day))
    services.verify(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas")
    services.verify(actor=users["monitor"], participant_id=p.pk, visit="w1", form="odi")
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items={**GOOD["odi"], "s2": 5}, complete=True, reason="section 2 read wrongly")
    other = make_participant("consented")
    return {"p": p, "other": other}


def _client(user, language="en") -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies["django_language"] = language
    return c


def test_grid_cells_count_what_is_recorded(trial, users):
    from annulus.participants.models import Participant

    p = trial["p"]
    rows = {r.participant.pk: r for r in selectors.status_grid(Participant.objects.filter(pk__in=[p.pk, trial["other"].pk]))}
    cell = next(c for c in rows[p.pk].cells if c.visit == "w1")
    status = selectors.sdv_status([p.pk])
    want = {k: sum(s[k] for (pid, v, _f), s in status.items() if v == "w1") for k in ("required", "verified", "cleared")}
    assert (cell.sdv_required, cell.sdv_verified, cell.sdv_cleared) == (want["required"], want["verified"], want["cleared"])
    # VAS (1 item) verified, ODI (10 items) verified but one changed since
    assert (cell.sdv_required, cell.sdv_verified, cell.sdv_cleared) == (11, 10, 1)
    assert cell.forms_entered == 2 and cell.forms_total == len(vs.Visit.objects.get(participant=p, visit_id="w1").forms)
    assert cell.status == "sdv_cleared"  # the most urgent state colours the cell
    screening = next(c for c in rows[p.pk].cells if c.visit == "screening")
    assert screening.present and screening.sdv_required > 0 and screening.status == "sdv_pending"
    assert not any(c.present for c in rows[trial["other"].pk].cells if c.visit not in ("screening",))


@pytest.mark.parametrize("language,title", [("en", "Monitoring: status grid"), ("zh-hans", "监查：状态总览表")])
def test_grid_page_filter_and_click_through(trial, users, language, title):
    p = trial["p"]
    c = _client(users["monitor"], language)
    r = c.get("/monitoring/")
    html = r.content.decode()
    assert r.status_code == 200 and title in html
    assert f'href="/participants/{p.pk}/visits/w1/"' in html and "cell-" in html
    assert f"/monitoring/participants/{p.pk}/" in html and f"/monitoring/participants/{trial['other'].pk}/" in html
    assert c.get(f"/participants/{p.pk}/visits/w1/").status_code == 200
    # the filter keeps only participants with verification cleared by a change
    html = c.get("/monitoring/?status=sdv_cleared").content.decode()
    assert f"/monitoring/participants/{p.pk}/" in html
    assert f"/monitoring/participants/{trial['other'].pk}/" not in html
    html = c.get("/monitoring/?status=sdv_pending").content.decode()
    assert f"/monitoring/participants/{trial['other'].pk}/" in html  # consent not verified yet
    # an unknown filter shows everyone; the search narrows
    assert c.get("/monitoring/?status=bogus").status_code == 200
    html = c.get(f"/monitoring/?q={trial['other'].screening_number}").content.decode()
    assert f"/monitoring/participants/{p.pk}/\"" not in html


def test_cleared_shows_in_grid_and_api(trial, users):
    p = trial["p"]
    status = selectors.sdv_status([p.pk])
    assert status[(p.pk, "w1", "odi")] == {"required": 10, "verified": 9, "cleared": 1}
    from annulus.accounts.services import issue_token

    api = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users['data_manager'], name='t')}")
    rows = api.get("/api/v1/monitoring/grid").json()
    mine = next(r for r in rows if r["participant_id"] == p.pk)
    w1 = next(c for c in mine["cells"] if c["visit"] == "w1")
    assert (w1["sdv_required"], w1["sdv_verified"], w1["sdv_cleared"], w1["status"]) == (11, 10, 1, "sdv_cleared")
    only = api.get("/api/v1/monitoring/grid?status=sdv_pending").json()
    assert trial["other"].pk in [r["participant_id"] for r in only]


@pytest.mark.parametrize("role", ["monitor", "data_manager"])
@pytest.mark.parametrize("language,heading", [("en", "Data quality"), ("zh-hans", "数据质量")])
def test_home_page_of_the_monitor_and_the_data_manager(trial, users, role, language, heading):
    html = _client(users[role], language).get("/").content.decode()
    assert heading in html and 'href="/monitoring/"' in html
    # the panel is the first one on the page
    first = re.search(r'<div class="grid">\s*<section class="card"[^>]*><h2>([^<]*)</h2>', html)
    assert first and first.group(1) == heading


def test_other_roles_have_no_data_quality_panel(trial, users):
    html = _client(users["coordinator"]).get("/").content.decode()
    assert 'href="/monitoring/"' in html  # in the navigation
    assert "Open the status grid" not in html


@pytest.mark.parametrize("language,word", [("en", "Casebook summary"), ("zh-hans", "病例汇总")])
def test_casebook_summary(trial, users, language, word):
    p = trial["p"]
    c = _client(users["monitor"], language)
    html = c.get(f"/monitoring/participants/{p.pk}/").content.decode()
    assert word in html
    status = selectors.sdv_status([p.pk])
    required = sum(s["required"] for s in status.values())
    verified = sum(s["verified"] for s in status.values())
    assert f"{verified} / {required}" in html
    assert f"/monitoring/participants/{p.pk}/sdv/" in html and f"/participants/{p.pk}/visits/w1/" in html


def test_pages_need_the_right(trial, users):
    p = trial["p"]
    for role in ("pharmacist", "designer", "statistician", "admin", "dsmb"):
        c = _client(users[role])
        assert c.get("/monitoring/").status_code == 403, role
        assert c.get(f"/monitoring/participants/{p.pk}/sdv/").status_code == 403, role
    assert _client(users["monitor"]).get("/monitoring/participants/999999/").status_code == 404
