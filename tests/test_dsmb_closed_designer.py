"""Closed DSMB reports (arm counts, each SAE's case number next to its arm) are for the DSMB only.
The trial designer holds the level-1 key (random number -> group label); with a closed report
that would give label -> treatment, so the designer is refused on every closed-report route:
the page, the PDF, the generating form, the API and the command line (X-3.8, P-6.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors as allocation_selectors
from annulus.allocation import testing
from annulus.audit.models import AuditEvent
from annulus.cli import main
from annulus.errors import NotPermitted
from annulus.safety import services
from annulus.safety.models import DsmbReport

ARM_WORDS = ("High dose", "Mid dose", "Low dose", "Placebo")


def _browser(user) -> Client:
    """A logged-in client that enforces CSRF and sends the token as a browser does."""
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get("/")
    return c


def _token(c: Client) -> str:
    return c.cookies["csrftoken"].value


@pytest.fixture
def closed_report(users, make_participant):
    """Four randomised participants (one per arm with this seed's first block), one SAE, and a
    closed report produced by the DSMB."""
    people = testing.randomised(users, make_participant, 4)
    now = timezone.now()
    services.record_adverse_event(
        actor=users["investigator"], participant_id=people[0].pk, term="Discitis", grade=3, serious=True,
        serious_criteria=["hospitalisation"], onset_at=now - timedelta(days=2), first_knowledge_at=now - timedelta(days=1),
        causality_liposuction="not_related", causality_injection="probable", causality_product="possible",
        expectedness="unexpected", action_taken="none", outcome="recovering")
    rep = services.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind="closed")
    assert any(w in rep.html for w in ARM_WORDS)  # it is a report by arm
    return rep


@pytest.mark.req("X-3.8", "P-6.4")
def test_the_blind_refuses_the_designer_the_arms_of_a_closed_report(closed_report, users):
    with pytest.raises(NotPermitted):
        allocation_selectors.arms_for_closed_report(users["designer"])
    assert allocation_selectors.arms_for_closed_report(users["dsmb"])  # the DSMB still reads them


@pytest.mark.req("X-3.8", "P-6.4")
def test_designer_cannot_produce_a_closed_report_by_service_or_command_line(closed_report, users, capsys, tmp_path):
    n_reports, n_events = DsmbReport.objects.count(), AuditEvent.objects.count()
    with pytest.raises(NotPermitted):
        services.generate_report(actor=users["designer"], as_of=timezone.localdate(), kind="closed")
    out = tmp_path / "closed.html"
    code = main(["dsmb", "report", "--closed", "--as-of", timezone.localdate().isoformat(), "--out", str(out),
                 "--user", users["designer"].username])
    assert code == 2 and "may not produce a closed report" in capsys.readouterr().err
    assert not out.exists()
    assert (DsmbReport.objects.count(), AuditEvent.objects.count()) == (n_reports, n_events)


@pytest.mark.req("X-3.8", "P-6.4")
def test_designer_is_refused_on_every_closed_report_page_and_api_route(closed_report, users):
    c = _browser(users["designer"])
    missing = closed_report.pk + 1000
    for url in (f"/safety/dsmb/reports/{closed_report.pk}/", f"/safety/dsmb/reports/{closed_report.pk}/pdf/",
                f"/api/v1/safety/dsmb/reports/{closed_report.pk}", f"/api/v1/safety/dsmb/reports/{closed_report.pk}/html"):
        r = c.get(url)
        # the same answer as for a report that does not exist: the designer learns nothing
        assert r.status_code == 404, url
        assert r.status_code == c.get(url.replace(str(closed_report.pk), str(missing))).status_code
        assert not any(w.encode() in r.content for w in ARM_WORDS), url
    assert [r["kind"] for r in c.get("/api/v1/safety/dsmb/reports").json()] == []
    page = c.get("/safety/dsmb/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/safety/dsmb/reports/{closed_report.pk}/" not in html and 'value="closed"' not in html

    n_reports, n_events = DsmbReport.objects.count(), AuditEvent.objects.count()
    today = timezone.localdate().isoformat()
    r = c.post("/api/v1/safety/dsmb/reports", {"as_of": today, "kind": "closed"}, content_type="application/json",
               HTTP_X_CSRFTOKEN=_token(c))
    assert r.status_code == 403
    r = c.post("/safety/dsmb/", {"as_of": today, "kind": "closed", "csrfmiddlewaretoken": _token(c)})
    assert r.status_code == 200 and "kind" in r.context["form"].errors
    assert (DsmbReport.objects.count(), AuditEvent.objects.count()) == (n_reports, n_events)


@pytest.mark.req("P-6.4")
def test_the_dsmb_still_reads_and_produces_closed_reports(closed_report, users):
    c = _browser(users["dsmb"])
    page = c.get(f"/safety/dsmb/reports/{closed_report.pk}/")
    assert page.status_code == 200 and any(w in page.content.decode() for w in ARM_WORDS)
    assert c.get(f"/api/v1/safety/dsmb/reports/{closed_report.pk}").json()["kind"] == "closed"
    r = c.post("/api/v1/safety/dsmb/reports", {"as_of": timezone.localdate().isoformat(), "kind": "closed"},
               content_type="application/json", HTTP_X_CSRFTOKEN=_token(c))
    assert r.status_code == 201 and r.json()["kind"] == "closed"
