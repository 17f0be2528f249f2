"""DSMB interim reports: open (pooled) for everyone with access, closed (by arm) only for the
DSMB, with the same 404 whether or not a report exists;
counts and exact intervals; the six-monthly schedule; the command line; recommendations."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.utils import timezone

from annulus.cli import main
from annulus.safety import reports, services
from annulus.safety.models import DsmbRecommendation, DsmbReport
from annulus.trial.models import Notification

pytestmark = pytest.mark.django_db
ARM_WORDS = ("High dose", "Mid dose", "Low dose", "Placebo", "Not yet allocated")


@pytest.fixture
def trial(users, make_participant, arms):
    """Four enrolled participants (two high, one low, one control); three AEs in two people."""
    people = [make_participant("enrolled") for _ in range(4)]
    arms.update({people[0].pk: "high", people[1].pk: "high", people[2].pk: "low", people[3].pk: "control"})
    now = timezone.now()
    base = dict(serious=False, serious_criteria=[], causality_liposuction="not_related", causality_injection="probable",
                causality_product="possible", expectedness="expected", action_taken="none", outcome="recovering")
    inv = users["investigator"]
    services.record_adverse_event(actor=inv, participant_id=people[0].pk, term="Injection-site pain", grade=1,
                                  onset_at=now - timedelta(days=3), **base)
    services.record_adverse_event(actor=inv, participant_id=people[0].pk, term="Back pain flare", grade=2,
                                  onset_at=now - timedelta(days=2), **base)
    services.record_adverse_event(actor=inv, participant_id=people[2].pk, term="Discitis", grade=3,
                                  onset_at=now - timedelta(days=2),
                                  **{**base, "serious": True, "serious_criteria": ["hospitalisation"],
                                     "first_knowledge_at": now - timedelta(days=1), "expectedness": "unexpected"})
    return people


@pytest.mark.req("P-6.4", "P-8.4")
def test_open_report_counts_and_exact_intervals(trial, users):
    from scipy.stats import binomtest

    from annulus.trial.selectors import active_protocol

    data = reports.build(as_of=timezone.localdate(), protocol=active_protocol(), arms=None)
    assert [c[1] for c in data["columns"]] == ["All participants"]
    anyae = data["overview"][0]["cells"][0]
    assert (anyae["events"], anyae["subjects"], anyae["n"]) == (3, 2, 4)
    ci = binomtest(2, 4).proportion_ci(method="exact")
    assert anyae["ci"][0] == pytest.approx(100 * ci.low) and anyae["ci"][1] == pytest.approx(100 * ci.high)
    sae = data["overview"][1]["cells"][0]
    assert (sae["events"], sae["subjects"]) == (1, 1)
    grades = {r["label"]: r["cells"][0]["events"] for r in data["by_grade"]}
    assert grades["Grade 1 mild"] == 1 and grades["Grade 3 severe"] == 1 and grades["Grade 5 death"] == 0
    related = {r["label"]: r["cells"][0]["events"] for r in data["by_relation"]}
    assert related["Related to the study product"] == 3 and related["Related to liposuction"] == 0
    crit = {r["label"]: r["cells"][0]["events"] for r in data["by_criterion"]}
    assert crit["Requires hospitalisation or prolongs it"] == 1
    assert data["plot"].startswith("data:image/png;base64,")
    # the cut-off excludes later events
    early = reports.build(as_of=timezone.localdate() - timedelta(days=10), protocol=active_protocol(), arms=None)
    assert early["events_total"] == 0


@pytest.mark.req("P-6.4", "P-8.4")
def test_closed_report_by_arm(trial, users, arms):
    from annulus.trial.selectors import active_protocol

    data = reports.build(as_of=timezone.localdate(), protocol=active_protocol(), arms=arms)
    labels = [c[0] for c in data["columns"]]
    assert labels == ["high", "mid", "low", "control", "__total__"]
    anyae = {c: cell for (c, _), cell in zip(data["columns"], data["overview"][0]["cells"])}
    assert (anyae["high"]["subjects"], anyae["high"]["n"]) == (1, 2)
    assert (anyae["low"]["events"], anyae["mid"]["n"], anyae["mid"]["ci"]) == (1, 0, None)
    assert anyae["__total__"]["events"] == 3
    assert data["saes"][0]["arm"].startswith("Low dose")


def _page(response) -> str:
    """The page without its per-request CSRF tokens and the echo of the requested path."""
    text = re.sub(r"/reports/\d+/", "/reports/N/", response.content.decode())
    text = re.sub(r'X-CSRFToken": "[^"]+"', "", text)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)


@pytest.mark.req("P-6.4", "X-3.8")
def test_closed_report_is_indistinguishable_from_missing_for_blinded_users(trial, users, client_for):
    closed = services.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind="closed")
    opened = services.generate_report(actor=users["investigator"], as_of=timezone.localdate(), kind="open")
    assert "High dose" in closed.html and not any(w in opened.html for w in ARM_WORDS)
    missing = closed.pk + opened.pk + 100
    for role in ("investigator", "coordinator", "monitor", "statistician", "ethics", "auditor", "pharmacist",
                 "designer"):
        c = client_for(role)
        for suffix in ("", "pdf/"):
            a = c.get(f"/safety/dsmb/reports/{closed.pk}/{suffix}")
            b = c.get(f"/safety/dsmb/reports/{missing}/{suffix}")
            assert a.status_code == b.status_code == 404, role
            assert _page(a) == _page(b)
        for suffix in ("", "/html"):
            a = c.get(f"/api/v1/safety/dsmb/reports/{closed.pk}{suffix}")
            b = c.get(f"/api/v1/safety/dsmb/reports/{missing}{suffix}")
            assert a.status_code == b.status_code == 404, role
            assert a.content == b.content
        listing = c.get("/api/v1/safety/dsmb/reports")
        if listing.status_code == 200:
            assert [r["kind"] for r in listing.json()] == ["open"]
    for role in ("dsmb",):
        c = client_for(role)
        page = c.get(f"/safety/dsmb/reports/{closed.pk}/")
        assert page.status_code == 200 and "High dose" in page.content.decode()
        assert c.get(f"/api/v1/safety/dsmb/reports/{closed.pk}").json()["kind"] == "closed"
    # the open report opens for everyone with access
    assert client_for("investigator").get(f"/safety/dsmb/reports/{opened.pk}/").status_code == 200


@pytest.mark.req("P-6.4", "X-3.8")
def test_blinded_user_cannot_generate_a_closed_report(trial, users, client_for):
    inv = client_for("investigator")
    before = DsmbReport.objects.count()
    r = inv.post("/api/v1/safety/dsmb/reports", {"as_of": timezone.localdate().isoformat(), "kind": "closed"},
                 content_type="application/json")
    assert r.status_code == 403
    page = inv.post("/safety/dsmb/", {"as_of": timezone.localdate().isoformat(), "kind": "closed"})
    assert page.status_code == 200 and "closed" not in [c[0] for c in page.context["form"].fields["kind"].choices]
    assert DsmbReport.objects.count() == before


@pytest.mark.req("P-6.4")
def test_report_in_the_future_is_refused(trial, users):
    from annulus.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        services.generate_report(actor=users["dsmb"], as_of=timezone.localdate() + timedelta(days=1), kind="open")
    assert exc.value.field == "as_of"


@pytest.mark.req("P-6.4")
def test_six_monthly_schedule_from_first_enrolment(trial, users):
    first = reports.first_enrolment()
    assert reports.schedule(months=6, today=first) == [reports.add_months(first, 6)]
    later = reports.add_months(first, 13)
    assert reports.schedule(months=6, today=later) == [reports.add_months(first, k) for k in (6, 12, 18)]
    assert reports.add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)


@pytest.mark.req("P-6.4")
def test_scheduled_run_produces_open_and_closed_once(trial, users, monkeypatch):
    from annulus.participants.models import Participant

    # pretend the first enrolment was seven months ago
    Participant.objects.filter(pk=trial[0].pk).update(enrolled_at=timezone.now() - timedelta(days=215))
    made = services.generate_due_reports()
    assert sorted(r.kind for r in made) == ["closed", "open"]
    assert all(r.scheduled and r.generated_by is None for r in made)
    assert services.generate_due_reports() == []


@pytest.mark.req("P-6.4", "X-8.5")
def test_cli_report_html_and_pdf(trial, users, tmp_path, capsys):
    out = tmp_path / "open.html"
    assert main(["dsmb", "report", "--as-of", timezone.localdate().isoformat(), "--open", "--out", str(out)]) == 0
    html = out.read_text()
    assert "OPEN (pooled)" in html and "data:image/png;base64," in html
    assert not any(w in html for w in ARM_WORDS)
    pdf = tmp_path / "closed.pdf"
    assert main(["dsmb", "report", "--as-of", timezone.localdate().isoformat(), "--closed", "--out", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "3 AEs" in capsys.readouterr().out
    # a blinded user cannot produce the closed one; a bad date or file name is one clear line
    assert main(["dsmb", "report", "--as-of", timezone.localdate().isoformat(), "--closed", "--out", str(pdf),
                 "--user", "t_investigator"]) == 2
    assert main(["dsmb", "report", "--as-of", "2026-13-01", "--open", "--out", str(out)]) == 2
    assert main(["dsmb", "report", "--as-of", "2026-01-01", "--open", "--out", str(tmp_path / "x.doc")]) == 2
    err = capsys.readouterr().err
    assert "may not produce a closed report" in err and "is not a date" in err and ".html or .pdf" in err


@pytest.mark.req("P-6.4")
def test_recommendation_recorded_by_the_dsmb_only(trial, users, client_for):
    inv = client_for("investigator")
    assert inv.get("/safety/dsmb/recommendations/new/").status_code == 403
    c = client_for("dsmb")
    r = c.post("/safety/dsmb/recommendations/new/", {"meeting_on": timezone.localdate().isoformat(), "decision": "continue",
                                                      "summary": "Continue the trial unchanged.",
                                                      "closed_notes": "Imbalance in grade 3 events noted in one arm."})
    assert r.status_code == 302
    rec = DsmbRecommendation.objects.get()
    assert rec.recorded_by == users["dsmb"]
    assert Notification.objects.filter(user=users["investigator"], kind="dsmb_recommendation").exists()
    page = inv.get("/safety/dsmb/").content.decode()
    assert "Continue the trial unchanged." in page and "Imbalance" not in page
    assert "Imbalance" in c.get("/safety/dsmb/").content.decode()
    bad = c.post("/safety/dsmb/recommendations/new/", {"meeting_on": (timezone.localdate() + timedelta(days=3)).isoformat(),
                                                        "decision": "stop", "summary": "x"})
    assert bad.status_code == 200 and "cannot be in the future" in bad.content.decode()
    assert DsmbRecommendation.objects.count() == 1
