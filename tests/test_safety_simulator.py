"""The adverse-event simulator (pure, seeded) and the demo step that feeds it through the
services: events at plausible rates, every time in the past, SAE clocks running and overdue, a
DSMB alert, and the six-monthly reports."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest

from annulus.simulator.adverse_events import SimParticipant, simulate_adverse_events


def cohort(n=400, today=date(2026, 11, 20)):
    start = today - timedelta(days=600)
    return [SimParticipant(i, start + timedelta(days=i), start + timedelta(days=i + 10), start + timedelta(days=i + 31),
                           ["high", "mid", "low", "control"][i % 4]) for i in range(1, n + 1)]


@pytest.mark.req("P-6.1")
def test_same_seed_same_events_and_plausible_rates():
    today = date(2026, 11, 20)
    a = simulate_adverse_events(cohort(), seed=7, today=today)
    b = simulate_adverse_events(cohort(), seed=7, today=today)
    assert [(e.participant_id, e.kind, e.fields["onset_at"]) for e in a] == [(e.participant_id, e.kind, e.fields["onset_at"]) for e in b]
    assert a != simulate_adverse_events(cohort(), seed=8, today=today)
    kinds = Counter(e.kind for e in a)
    assert {"bruising", "injection_pain", "back_pain"} <= set(kinds)
    assert 0.2 < kinds["bruising"] / 400 < 0.5
    assert kinds["discitis"] / 400 < 0.08
    for e in a:
        f = e.fields
        assert f["onset_at"].date() <= today
        assert f["end_at"] is None or f["end_at"] > f["onset_at"]
        assert (f["end_at"] is None) == (f["outcome"] == "recovering")
        if f["serious"]:
            assert f["serious_criteria"] and f["first_knowledge_at"] >= f["onset_at"]
        if e.kind == "bruising":
            assert f["causality_injection"] == "not_applicable" and f["causality_liposuction"] in ("probable", "definite")


@pytest.mark.req("P-6.1")
def test_no_event_before_a_procedure_is_done():
    today = date(2026, 11, 20)
    people = [SimParticipant(1, today - timedelta(days=5), today + timedelta(days=3), today + timedelta(days=24))]
    for seed in range(30):
        kinds = {e.kind for e in simulate_adverse_events(people, seed=seed, today=today)}
        assert kinds <= {"uri"}


@pytest.mark.req("P-6.1", "P-6.2", "P-6.4")
@pytest.mark.django_db
def test_demo_step_makes_the_safety_pages_alive(users, make_participant, monkeypatch):
    from django.utils import timezone

    from annulus.participants.models import Consent, Participant
    from annulus.safety import demo, selectors
    from annulus.safety.models import AdverseEvent, DsmbAlert, DsmbRecommendation, DsmbReport
    from annulus.trial.demo import DemoContext

    people = [make_participant("enrolled") for _ in range(8)]
    # enrolled long ago, liposuction and injection done (through the stand-in dates)
    for i, p in enumerate(people):
        Participant.objects.filter(pk=p.pk).update(enrolled_at=timezone.now() - timedelta(days=400 - 20 * i))
        Consent.objects.filter(participant=p).update(consented_at=timezone.now() - timedelta(days=410 - 20 * i))
    monkeypatch.setattr(demo, "_procedure_days", lambda p, today: (
        timezone.localtime(p.enrolled_at).date() + timedelta(days=5),
        timezone.localtime(p.enrolled_at).date() + timedelta(days=26)))
    ctx = DemoContext(seed=2022, today=timezone.localdate(), users={**users, "dsmb": users["dsmb"]},
                      enrolled=[p.pk for p in people])
    demo.adverse_events_all(ctx)
    now = timezone.now()
    assert AdverseEvent.objects.count() >= 3
    assert not AdverseEvent.objects.filter(onset_at__gt=now).exists()
    states = Counter(row["clock"]["state"] for row in selectors.clock_rows(selectors.sae_reports()))
    assert states["running"] >= 1 and states["overdue"] >= 1
    assert DsmbAlert.objects.filter(threshold_id="related_sae").exists()
    assert set(DsmbReport.objects.values_list("kind", flat=True)) == {"open", "closed"}
    assert DsmbRecommendation.objects.exists()
