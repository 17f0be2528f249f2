"""SUSARs (serious, unexpected, related to the study product) are flagged and get an expedited
report on their own clock: calendar days from first knowledge, 7 when fatal or life-threatening
and 15 otherwise (ICH E2A), configurable in the protocol's ``safety.susar``; a follow-up that
makes a serious event a SUSAR starts the clock then. Shown on the AE page and the SAE dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import yaml
from django.utils import timezone

from annulus.protocol import ProtocolError, default_protocol_path, parse_protocol
from annulus.safety import services
from annulus.safety.models import SaeReport
from annulus.trial.models import Notification
from annulus.trial.services import load_protocol_version
from annulus.workdays import susar_deadline

SH = ZoneInfo("Asia/Shanghai")
UTC = dt_timezone.utc
SHIPPED = default_protocol_path().read_text(encoding="utf-8")


def end_of(y, m, d) -> datetime:
    return datetime(y, m, d, 23, 59, 59, 999999, tzinfo=SH).astimezone(UTC)


# ---- the clock (pure core) ---------------------------------------------------------------------

@pytest.mark.req("X-6.5")
def test_susar_deadline_counts_calendar_days_from_the_local_date_of_first_knowledge():
    # 2026-02-13 22:30 Shanghai (a Friday before the Spring Festival): weekends and holidays count
    known = datetime(2026, 2, 13, 22, 30, tzinfo=SH)
    lt = susar_deadline(known, "Asia/Shanghai", fatal_or_life_threatening=True)
    other = susar_deadline(known, "Asia/Shanghai", fatal_or_life_threatening=False)
    assert lt.due_utc == end_of(2026, 2, 20) and "7 calendar days" in lt.rule
    assert other.due_utc == end_of(2026, 2, 28) and "15 calendar days" in other.rule
    # the local date decides: 17:00 UTC on the 13th is already the 14th in Shanghai
    late = susar_deadline(datetime(2026, 2, 13, 17, 0, tzinfo=UTC), "Asia/Shanghai", fatal_or_life_threatening=True)
    assert late.due_utc == end_of(2026, 2, 21)
    custom = susar_deadline(known, "Asia/Shanghai", fatal_or_life_threatening=False, fatal_days=5, other_days=10)
    assert custom.due_utc == end_of(2026, 2, 23)
    with pytest.raises(ValueError):
        susar_deadline(datetime(2026, 2, 13, 22, 30), fatal_or_life_threatening=True)  # naive


# ---- the protocol's safety.susar section --------------------------------------------------------

def with_susar(susar: dict, version: str | None = None) -> str:
    data = yaml.safe_load(SHIPPED)
    data["safety"]["susar"] = susar
    if version:
        data["version"] = version
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def test_protocol_defaults_to_ich_e2a_and_validates_its_susar_section():
    cfg = parse_protocol(SHIPPED).safety.susar
    assert (cfg.fatal_or_life_threatening_days, cfg.other_days) == (7, 15)
    ok = parse_protocol(with_susar({"fatal_or_life_threatening_days": 5, "other_days": 10})).safety.susar
    assert (ok.fatal_or_life_threatening_days, ok.other_days) == (5, 10)
    bad = {
        "safety.susar.other_days": {"other_days": 30},
        "safety.susar.fatal_or_life_threatening_days": {"fatal_or_life_threatening_days": 0},
        "safety.susar.fatal_or_life_threatening_days: must not be longer": {"fatal_or_life_threatening_days": 12,
                                                                           "other_days": 10},
        "safety.susar.id: 'ethics_committee' is already an SAE recipient id": {"id": "ethics_committee"},
        "safety.susar.days": {"days": 7},
    }
    for expected, susar in bad.items():
        with pytest.raises(ProtocolError) as exc:
            parse_protocol(with_susar(susar))
        assert any(e.startswith(expected) for e in exc.value.errors), (expected, exc.value.errors)


# ---- the service -------------------------------------------------------------------------------

def sae(users, p, known, **over):
    fields = dict(term="Discitis", onset_at=known - timedelta(hours=6), serious=True,
                  serious_criteria=["hospitalisation"], first_knowledge_at=known, grade=3,
                  causality_liposuction="not_related", causality_injection="probable", causality_product="possible",
                  expectedness="unexpected", action_taken="hospitalised", outcome="recovering")
    fields.update(over)
    return services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **fields)


def expedited(ae) -> SaeReport | None:
    return ae.sae_reports.filter(expedited=True).first()


def local_end(known: datetime, days: int) -> datetime:
    day = timezone.localtime(known).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=SH).astimezone(UTC)


@pytest.mark.django_db
@pytest.mark.req("P-6.2", "X-6.5")
def test_a_susar_gets_an_expedited_report_on_its_own_clock(users, make_participant):
    p = make_participant("enrolled")
    known = timezone.now() - timedelta(hours=2)
    ae = sae(users, p, known)
    r = expedited(ae)
    assert r is not None and r.recipient == "susar_expedited" and r.clock_start_at is None
    assert r.due_at == local_end(known, 15) and "15 calendar days" in r.rule
    assert ae.sae_reports.filter(expedited=False).count() == 3  # the SAE clocks run as before
    assert Notification.objects.filter(kind="susar", user=users["investigator"]).count() == 1
    # life-threatening: 7 days from the same first knowledge
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="worse",
                                  serious_criteria=["hospitalisation", "life_threatening"], grade=4)
    assert expedited(ae).due_at == local_end(known, 7)
    # no longer related: the clock stops (kept, not deleted); related again: it runs again
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="reassessed",
                                  causality_product="unlikely")
    assert expedited(ae).not_required_since is not None
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="reassessed again",
                                  causality_product="probable")
    assert expedited(ae).not_required_since is None and expedited(ae).due_at == local_end(known, 7)
    assert SaeReport.objects.filter(expedited=True).count() == 1
    assert Notification.objects.filter(kind="susar", user=users["investigator"]).count() == 1


@pytest.mark.django_db
@pytest.mark.req("X-6.5")
def test_not_a_susar_has_no_expedited_report(users, make_participant):
    known = timezone.now() - timedelta(hours=2)
    assert expedited(sae(users, make_participant("enrolled"), known, expectedness="expected")) is None
    assert expedited(sae(users, make_participant("enrolled"), known, causality_product="unlikely")) is None
    non_serious = sae(users, make_participant("enrolled"), known, serious=False, serious_criteria=[],
                      first_knowledge_at=None)
    assert expedited(non_serious) is None


@pytest.mark.django_db
@pytest.mark.req("X-6.5")
def test_a_follow_up_that_makes_a_serious_event_a_susar_starts_the_clock_then(users, make_participant):
    known = timezone.now() - timedelta(days=8)
    ae = sae(users, make_participant("enrolled"), known, expectedness="expected")
    assert expedited(ae) is None
    before = timezone.now()
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="not in the IB",
                                  expectedness="unexpected")
    r = expedited(ae)
    assert r.clock_start_at is not None and r.clock_start_at >= before
    assert r.due_at == local_end(r.clock_start_at, 15)  # not 15 days from first knowledge (7 days from now)
    assert r.due_at > local_end(known, 15)
    # a non-serious event made serious and a SUSAR in one save: from first knowledge of the serious event
    other = sae(users, make_participant("enrolled"), known, serious=False, serious_criteria=[], first_knowledge_at=None)
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=other.pk, reason="hospitalised",
                                  serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=known)
    assert expedited(other).clock_start_at is None and expedited(other).due_at == local_end(known, 15)


@pytest.mark.django_db
@pytest.mark.req("X-6.5")
def test_the_protocol_sets_the_susar_clock(users, make_participant):
    text = with_susar({"fatal_or_life_threatening_days": 5, "other_days": 10,
                       "name": {"en": "NMPA expedited report", "zh": "国家药监局快速报告"}}, version="1.1")
    assert load_protocol_version(actor=users["admin"], text=text).version == "1.1"
    known = timezone.now() - timedelta(hours=1)
    r = expedited(sae(users, make_participant("enrolled"), known))
    assert r.due_at == local_end(known, 10) and r.recipient_name == "NMPA expedited report"
    fatal = sae(users, make_participant("enrolled"), known, grade=5, outcome="fatal", end_at=known - timedelta(hours=1),
                serious_criteria=["death"])
    assert expedited(fatal).due_at == local_end(known, 5)


@pytest.mark.django_db
@pytest.mark.req("X-6.5")
def test_ae_page_and_sae_dashboard_flag_susars(users, make_participant, client_for):
    known = timezone.now() - timedelta(hours=2)
    susar = sae(users, make_participant("enrolled"), known, term="Discitis")
    plain = sae(users, make_participant("enrolled"), known, term="Femur fracture", expectedness="expected",
                causality_product="not_related")
    c = client_for("coordinator")
    assert "SUSAR" in c.get(f"/safety/adverse-events/{susar.pk}/").content.decode()
    assert "SUSAR" not in c.get(f"/safety/adverse-events/{plain.pk}/").content.decode()
    page = c.get("/safety/sae/").content.decode()
    rows = [line for line in page.splitlines() if "<tr>" in line or "<td>" in line]
    susar_rows = [r for r in rows if susar.label in r and "SUSAR" in r]
    assert len(susar_rows) == 4  # each of its four reports, the expedited one included
    assert not [r for r in rows if plain.label in r and "SUSAR" in r]
    assert "Expedited SUSAR report" in page
