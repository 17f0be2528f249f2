"""``annulus audit verify --data`` beyond the eCRF forms and adverse events (X-7.3): a trial
written through the services replays cleanly, and a direct edit of any clinical table by someone
with database access (the owner: clinical tables have no append-only trigger) is caught and named
with the participant, the record and the field, old and new. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.utils import timezone

from annulus.cli import main

from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD
from .test_visits_support import GOOD, aware, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("X-7.3")


def _treated(users, transplant_dates, *, lipo_days_ago: int = 35, transplant_days_ago: int = 8):  # noqa: F811
    """A treated participant written through the services only, every date in the past by the
    services' own arguments (no row moved by hand: the trail must match the tables)."""
    from annulus.participants import services as ps
    from annulus.participants.models import Participant
    from annulus.visits import services as vs

    coord, inv = users["coordinator"], users["investigator"]
    today, now = timezone.localdate(), timezone.now()
    back = lipo_days_ago + 20
    p = ps.prescreen(actor=coord, initials="DT", sex="M", recruitment_source="inpatient_referral",
                     prescreened_on=today - timedelta(days=back), full_name="Data Test", phone="13800000001")
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=now - timedelta(days=back - 1), taken_by=inv)
    ps.enter_evidence(actor=coord, participant_id=p.pk, values=ELIGIBLE_EVIDENCE,
                      collected_on=today - timedelta(days=back - 2))
    ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD,
                          decided_at=now - timedelta(days=back - 3))
    ps.enrol(actor=inv, participant_id=p.pk, enrolled_at=now - timedelta(days=back - 4))
    ps.advance(actor=inv, participant_id=p.pk, target="randomised", reason="test")
    vs.record_liposuction(actor=inv, participant_id=p.pk, performed_on=today - timedelta(days=lipo_days_ago),
                          fat_volume_ml=150, observation_hours=4)
    vs.record_liposuction(actor=inv, participant_id=p.pk, performed_on=today - timedelta(days=lipo_days_ago),
                          fat_volume_ml=148, observation_hours=4, reason="volume re-read from the theatre record")
    transplant_dates[p.pk] = today - timedelta(days=transplant_days_ago)
    ps.advance(actor=inv, participant_id=p.pk, target="treated", reason="test")
    return Participant.objects.get(pk=p.pk)


@pytest.fixture
def trial(users, make_participant, transplant_dates, monkeypatch):  # noqa: F811
    """A small trial through the services: a treated participant with a corrected liposuction
    record, a visit and a form, SDV marks, a query answered, a review finding resolved and a
    record lock lifted; a withdrawn participant; a screen failure whose evidence was corrected
    first; and a transplanted participant."""
    from annulus.allocation import services as alloc
    from annulus.allocation import testing
    from annulus.allocation.models import Envelope
    from annulus.monitoring import services as ms
    from annulus.participants import services as ps
    from annulus.queries import services as qs
    from annulus.visits import services as vs

    t = {}
    p = t["treated"] = _treated(users, transplant_dates)
    day = timezone.localdate() - timedelta(days=1)
    t["visit"] = vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=day)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(day))
    ms.verify(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas")
    q = t["query"] = qs.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas",
                                    item="vas_mm", text="Please confirm the VAS against the paper line.",
                                    assigned_to="site")
    qs.answer_query(actor=users["coordinator"], query_id=q.pk, text="Confirmed: 62 mm on the paper form.")
    f = t["finding"] = ms.record_finding(actor=users["auditor"], participant_id=p.pk, category="consent",
                                         visit="screening", form="consent", text="No time on the signed form.")
    ms.resolve_finding(actor=users["auditor"], finding_id=f.pk, resolution="Time added by the investigator.")
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="screening")
    ps.unlock_record(actor=users["data_manager"], participant_id=p.pk, visit="screening",
                     reason="consent time to be corrected")
    w = t["withdrawn"] = make_participant("consented")
    ps.withdraw(actor=users["investigator"], participant_id=w.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="moved to another city")
    s = t["screened"] = make_participant("screening")
    ps.enter_evidence(actor=users["coordinator"], participant_id=s.pk, values={"vas_mm": 20},
                      collected_on=timezone.localdate() - timedelta(days=8), reason="re-measured: 20 mm")
    ps.decide_eligibility(actor=users["investigator"], participant_id=s.pk, password=TEST_PASSWORD)
    testing.liposuction_days_ago(monkeypatch, 21)  # the transplant window (no liposuction row needed)
    (x,) = testing.randomised(users, make_participant, 1)
    env = Envelope.objects.get(participant=x)
    testing.transplanted(users, x, env)
    t["transplanted"], t["envelope"] = x, env
    assert alloc.current_list() is not None
    _more_records(t, users)
    return t


# possibly related to the product (a DSMB alert), expected (no SUSAR report)
SERIOUS = dict(term="Pneumonia", serious=True, serious_criteria=["hospitalisation"], grade=3,
               causality_liposuction="not_related", causality_injection="not_related",
               causality_product="possible", expectedness="expected", action_taken="none", outcome="recovering")


def _more_records(t, users) -> None:
    """The records beyond the clinical forms, through the services: an emergency unblinding, a
    serious adverse event with its reports (one sent) and its DSMB alert, an adverse-event task dismissed, an
    appointment rebooked and a reminder call, a casebook signature, a DSMB recommendation and
    report, and the lock's waivers with the principal investigator's lock signature."""
    from annulus.allocation import services as alloc
    from annulus.allocation.selectors import lock_checklist
    from annulus.casebooks import services as cs
    from annulus.safety import services as ss
    from annulus.visits import selectors as vsel
    from annulus.visits import services as vs

    from annulus.allocation.models import ProductRelease
    from annulus.safety.models import DsmbAlert

    p, x = t["treated"], t["transplanted"]
    t["release"] = ProductRelease.objects.get(envelope=t["envelope"])
    today, now = timezone.localdate(), timezone.now()
    t["unblinding"], _arm = alloc.emergency_unblind(actor=users["investigator"], participant_id=x.pk,
                                                    password=TEST_PASSWORD, reason="anaphylaxis in the emergency room")
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk, onset_at=now - timedelta(hours=5),
                                 first_knowledge_at=now - timedelta(hours=4), **SERIOUS)
    t["ae"] = ae
    t["report"] = report = ae.sae_reports.order_by("id").first()
    t["alert"] = DsmbAlert.objects.get(threshold_id="related_sae")
    ss.record_report_sent(actor=users["investigator"], report_id=report.pk, sent_at=now - timedelta(hours=1),
                          sent_to="ethics committee office", method="email")
    task = ss.open_ae_task(actor=users["coordinator"], participant_id=p.pk, key="test:ae_review", source="ae_review",
                           description="AE review answered yes at the 1-week visit")
    t["task"] = ss.dismiss_ae_task(actor=users["investigator"], task_id=task.pk,
                                   reason="the finding is the known back pain, not an adverse event")
    slot = next(s for s in vsel.schedule(p, today=today)
                if s.visit_id != "w1" and s.window_start is not None and s.state in ("upcoming", "due", "open"))
    day = max(slot.window_start, today)
    t["first_appointment"] = vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id=slot.visit_id,
                                           on=day)
    t["appointment"] = vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id=slot.visit_id,
                                     on=day + timedelta(days=1))
    t["call"] = vs.record_reminder(actor=users["coordinator"], participant_id=p.pk, visit_id=slot.visit_id,
                                   visit_on=day + timedelta(days=1), outcome="reached", note="will come by bus")
    t["signature"] = cs.sign_casebook(actor=users["pi"], participant_id=p.pk, username=users["pi"].username,
                                      password=TEST_PASSWORD)
    t["recommendation"] = ss.record_recommendation(actor=users["dsmb"], meeting_on=today, decision="continue",
                                                   summary="No safety concern; continue.", closed_notes="by-arm notes")
    t["dsmb_report"] = ss.generate_report(actor=users["dsmb"], as_of=today, kind="open")
    blocking = [item["key"] for item in lock_checklist()["blocking"]]
    waivers = []
    for start in range(0, len(blocking), alloc.MAX_WAIVED_AT_ONCE):
        waivers += alloc.waive_lock_items(actor=users["pi"], items=blocking[start:start + alloc.MAX_WAIVED_AT_ONCE],
                                          reason="closed on paper; recorded in the site file")
    t["waiver"] = waivers[0]
    t["step"] = alloc.sign_lock(actor=users["pi"], password=TEST_PASSWORD,
                                statement="I confirm the data are complete for the lock.")


def _verify(capsys) -> tuple[int, str]:
    code = main(["audit", "verify", "--data"])
    return code, capsys.readouterr().out.strip()


def test_a_trial_written_through_the_services_matches_its_trail(trial, capsys):
    from annulus.participants.models import Participant

    code, out = _verify(capsys)
    assert code == 0, out
    assert out.endswith(f"the data of {Participant.objects.count()} participants match it"), out


# each attack: (the edit as SQL with the fixture's ids, the line(s) verify must print)
ATTACKS = {
    "participant row": (
        lambda t: ("UPDATE participants_participant SET initials = 'ZZ', sex = 'F' WHERE id = %s", [t["treated"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}: initials is 'ZZ' in the database but 'DT' in the "
                   "audit trail",
                   f"participant {t['treated'].screening_number}: sex is 'F' in the database but 'M' in the audit "
                   "trail"]),
    "participant status": (
        lambda t: ("UPDATE participants_participant SET status = 'consented' WHERE id = %s", [t["withdrawn"].pk]),
        lambda t: [f"participant {t['withdrawn'].screening_number}: status is 'consented' in the database but "
                   "'withdrawn' in the audit trail"]),
    "status history": (
        lambda t: ("DELETE FROM participants_statuschange WHERE id = (SELECT MAX(id) FROM participants_statuschange "
                   "WHERE participant_id = %s)", [t["withdrawn"].pk]),
        lambda t: [f"participant {t['withdrawn'].screening_number}, status change 3 (to 'withdrawn'): in the audit "
                   "trail but no longer in the database"]),
    "consent": (
        lambda t: ("UPDATE participants_consent SET consent_version = '0.9' WHERE participant_id = %s",
                   [t["treated"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, consent 1: consent_version is '0.9' in the "
                   "database but '1.0' in the audit trail"]),
    "screening evidence": (
        lambda t: ("UPDATE participants_evidence SET value = %s WHERE participant_id = %s AND field = 'vas_mm' "
                   "AND superseded = %s", [json.dumps(65), t["screened"].pk, False]),
        lambda t: [f"participant {t['screened'].screening_number}, screening evidence vas_mm (entry 2): value is 65 "
                   "in the database but 20 in the audit trail"]),
    "eligibility decision": (
        lambda t: ("UPDATE participants_eligibilitydecision SET outcome = 'eligible', failing = %s "
                   "WHERE participant_id = %s", [json.dumps([]), t["screened"].pk]),
        lambda t: [f"participant {t['screened'].screening_number}, eligibility decision 1: outcome is 'eligible' in "
                   "the database but 'ineligible' in the audit trail",
                   f"participant {t['screened'].screening_number}, eligibility decision 1: failing is [] in the "
                   "database but ['I4'] in the audit trail"]),
    "withdrawal": (
        lambda t: ("UPDATE participants_withdrawal SET category = 'adverse_event' WHERE participant_id = %s",
                   [t["withdrawn"].pk]),
        lambda t: [f"participant {t['withdrawn'].screening_number}, withdrawal: category is 'adverse_event' in the "
                   "database but 'participant_request' in the audit trail"]),
    "record lock": (
        lambda t: ("UPDATE participants_recordlock SET unlocked_at = NULL, unlock_reason = '' "
                   "WHERE participant_id = %s", [t["treated"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, record lock",
                   "(visit screening): locked is True in the database but False in the audit trail",
                   "(visit screening): unlock_reason is '' in the database but 'consent time to be corrected' in "
                   "the audit trail"]),
    "liposuction": (
        lambda t: ("UPDATE visits_liposuction SET fat_volume_ml = 180 WHERE participant_id = %s AND superseded = %s",
                   [t["treated"].pk, False]),
        lambda t: [f"participant {t['treated'].screening_number}, liposuction record",
                   "fat_volume_ml is '180.0' in the database but '148.0' in the audit trail"]),
    "liposuction history": (
        lambda t: ("UPDATE visits_liposuction SET superseded = %s WHERE participant_id = %s", [False, t["treated"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, liposuction record",
                   "superseded is False in the database but True in the audit trail"]),
    "transplant": (
        lambda t: ("UPDATE allocation_transplant SET disc_level = 'L5-S1', volume_ml = 1.5 WHERE participant_id = %s",
                   [t["transplanted"].pk]),
        lambda t: [f"participant {t['transplanted'].screening_number}, transplantation: disc_level is 'L5-S1' in the "
                   "database but 'L4-5' in the audit trail",
                   f"participant {t['transplanted'].screening_number}, transplantation: volume_ml is '1.50' in the "
                   "database but '2.0' in the audit trail"]),
    "randomisation": (
        lambda t: ("UPDATE allocation_envelope SET participant_id = NULL WHERE id = %s", [t["envelope"].pk]),
        lambda t: [f"participant {t['transplanted'].screening_number}, randomisation: envelope "
                   f"{t['envelope'].random_number} opened for them in the audit trail but not theirs in the database"]),
    "visit": (
        lambda t: ("UPDATE visits_visit SET visit_date = %s WHERE id = %s",
                   [timezone.localdate() - timedelta(days=3), t["visit"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, visit w1: visit_date is "
                   f"'{timezone.localdate() - timedelta(days=3)}' in the database but "
                   f"'{timezone.localdate() - timedelta(days=1)}' in the audit trail"]),
    "query": (
        lambda t: ("UPDATE queries_query SET status = 'closed', item = 'vas' WHERE id = %s", [t["query"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, query {t['query'].pk}: item is 'vas' in the "
                   "database but 'vas_mm' in the audit trail",
                   f"participant {t['treated'].screening_number}, query {t['query'].pk}: status is 'closed' in the "
                   "database but 'answered' in the audit trail"]),
    "query thread": (
        lambda t: ("UPDATE queries_querymessage SET text = 'Confirmed.' WHERE query_id = %s AND kind = 'answer'",
                   [t["query"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, query {t['query'].pk}, message 2: text is "
                   "'Confirmed.' in the database but 'Confirmed: 62 mm on the paper form.' in the audit trail"]),
    "SDV mark": (
        lambda t: ("UPDATE monitoring_sdvmark SET revision = '7' WHERE participant_id = %s", [t["treated"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, SDV mark w1/vas vas_mm (revision 7): in the "
                   "database",
                   f"participant {t['treated'].screening_number}, SDV mark w1/vas vas_mm (revision 1): in the audit "
                   "trail"]),
    "review finding": (
        lambda t: ("UPDATE monitoring_reviewfinding SET status = 'open', resolution = '' WHERE id = %s",
                   [t["finding"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, review finding {t['finding'].pk}: status is 'open' "
                   "in the database but 'resolved' in the audit trail"]),
    # the records beyond the clinical forms
    "product release": (
        lambda t: ("UPDATE allocation_productrelease SET lot_number = 'LOT-9', passed = %s WHERE id = %s",
                   [False, t["release"].pk]),
        lambda t: [f"participant {t['transplanted'].screening_number}, product release {t['release'].pk}: lot_number "
                   "is 'LOT-9' in the database but 'LOT-1' in the audit trail",
                   f"participant {t['transplanted'].screening_number}, product release {t['release'].pk}: passed is "
                   "False in the database but True in the audit trail"]),
    "dispensing": (
        lambda t: ("UPDATE allocation_dispensing SET dispensed_by_id = %s WHERE envelope_id = %s",
                   [_user("coordinator"), t["envelope"].pk]),
        lambda t: [f"participant {t['transplanted'].screening_number}, dispensing: dispensed_by is 't_coordinator' "
                   "in the database but 't_pharmacist' in the audit trail"]),
    "emergency unblinding": (
        lambda t: ("UPDATE allocation_emergencyunblinding SET reason = 'routine check' WHERE id = %s",
                   [t["unblinding"].pk]),
        lambda t: [f"participant {t['transplanted'].screening_number}, emergency unblinding {t['unblinding'].pk}: "
                   "reason is 'routine check' in the database but 'anaphylaxis in the emergency room' in the audit "
                   "trail"]),
    "lock waiver": (
        lambda t: ("UPDATE allocation_lockwaiver SET reason = 'none' WHERE id = %s", [t["waiver"].pk]),
        lambda t: [f"lock waiver {t['waiver'].pk} ({t['waiver'].item}): reason is 'none' in the database but "
                   "'closed on paper; recorded in the site file' in the audit trail"]),
    "unblinding step": (
        lambda t: ("UPDATE allocation_unblindingstep SET user_id = %s WHERE id = %s",
                   [_user("statistician"), t["step"].pk]),
        lambda t: [f"unblinding step {t['step'].pk} (lock_pi): user is 't_statistician' in the database but 't_pi' "
                   "in the audit trail"]),
    "casebook signature": (
        lambda t: ("UPDATE casebooks_casebooksignature SET meaning = 'reviewed', signed_at = %s WHERE id = %s",
                   [_utc_text(t["signature"].signed_at - timedelta(days=2)), t["signature"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, casebook signature {t['signature'].pk}: meaning is "
                   f"'reviewed' in the database but '{t['signature'].meaning}' in the audit trail",
                   f"participant {t['treated'].screening_number}, casebook signature {t['signature'].pk}: signed_at is "
                   f"'{(t['signature'].signed_at - timedelta(days=2)).astimezone(dt_timezone.utc).isoformat()}' in "
                   "the database but the audit trail records the signature at"]),
    "casebook content": (
        lambda t: ("UPDATE casebooks_casebooksignature SET content = %s WHERE id = %s",
                   [json.dumps({**t["signature"].content, "status": "completed"}), t["signature"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, casebook signature {t['signature'].pk}: the signed "
                   "content in the database does not hash to its content_hash"]),
    "SAE report": (
        lambda t: ("UPDATE safety_saereport SET sent_to = 'nobody' WHERE id = %s", [t["report"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, adverse event 1, SAE report {t['report'].pk}: "
                   "sent_to is 'nobody' in the database but 'ethics committee office' in the audit trail"]),
    "adverse-event task": (
        lambda t: ("UPDATE safety_aetask SET closed_at = NULL, closed_by_id = NULL, dismissed_reason = '' "
                   "WHERE id = %s", [t["task"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, adverse-event task {t['task'].pk}: state is 'open' "
                   "in the database but 'dismissed' in the audit trail",
                   f"participant {t['treated'].screening_number}, adverse-event task {t['task'].pk}: dismissed_reason "
                   "is '' in the database but 'the finding is the known back pain, not an adverse event' in the "
                   "audit trail"]),
    "DSMB alert": (  # the arm itself is never printed: the trail keeps only "one arm" or "all participants"
        lambda t: ("UPDATE safety_dsmbalert SET count = 5, arm = 'dose_high' WHERE id = %s", [t["alert"].pk]),
        lambda t: [f"DSMB alert {t['alert'].pk}: count is 5 in the database but 1 in the audit trail",
                   f"DSMB alert {t['alert'].pk}: scope is 'one arm' in the database but 'all participants' in the "
                   "audit trail"]),
    "DSMB recommendation": (
        lambda t: ("UPDATE safety_dsmbrecommendation SET decision = 'stop', closed_notes = '' WHERE id = %s",
                   [t["recommendation"].pk]),
        lambda t: [f"DSMB recommendation {t['recommendation'].pk}: decision is 'stop' in the database but 'continue' "
                   "in the audit trail",
                   f"DSMB recommendation {t['recommendation'].pk}: closed_notes is '' in the database but '(recorded)' "
                   "in the audit trail"]),
    "DSMB report": (
        lambda t: ("UPDATE safety_dsmbreport SET kind = 'closed' WHERE id = %s", [t["dsmb_report"].pk]),
        lambda t: [f"DSMB report {t['dsmb_report'].pk}: kind is 'closed' in the database but 'open' in the audit "
                   "trail"]),
    "appointment": (
        lambda t: ("UPDATE visits_appointment SET superseded = %s WHERE id = %s", [False, t["first_appointment"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, appointment {t['first_appointment'].pk}: superseded "
                   "is False in the database but True in the audit trail"]),
    "reminder call": (
        lambda t: ("UPDATE visits_remindercall SET outcome = 'no_answer' WHERE id = %s", [t["call"].pk]),
        lambda t: [f"participant {t['treated'].screening_number}, reminder call {t['call'].pk}: outcome is "
                   "'no_answer' in the database but 'reached' in the audit trail"]),
}


def _user(role: str) -> int:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=f"t_{role}").pk


def _utc_text(when) -> str:
    """A time as a raw UPDATE writes it on SQLite and PostgreSQL alike (UTC, no zone)."""
    return when.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.parametrize("table", list(ATTACKS))
def test_a_direct_edit_is_caught_and_named(trial, capsys, table):
    edit, expected = ATTACKS[table]
    sql, params = edit(trial)
    with connection.cursor() as cur:  # clinical tables have no trigger: their owner edits them freely
        cur.execute(sql, params)
    code, out = _verify(capsys)
    assert code == 1, out
    assert "audit trail intact" in out and "but the data of the database differ from it" in out, out
    for line in expected(trial):
        assert line in out, (line, out)
    assert "dose_high" not in out  # nor any arm or group label


def test_a_removed_participant_is_caught(users, make_participant, capsys):
    p = make_participant("pre_screened")
    with connection.cursor() as cur:
        cur.execute("DELETE FROM participants_statuschange WHERE participant_id = %s", [p.pk])
        cur.execute("DELETE FROM participants_participant WHERE id = %s", [p.pk])
    code, out = _verify(capsys)
    assert code == 1, out
    assert f"participant {p.screening_number}: in the audit trail but no longer in the database" in out, out


def test_the_replay_reads_a_fixed_number_of_queries(trial, make_participant):
    from django.test.utils import CaptureQueriesContext

    from annulus.cli.audit import data_mismatches

    def queries() -> int:
        with CaptureQueriesContext(connection) as read:
            problems, _checked = data_mismatches()
        assert problems == []
        return len(read.captured_queries)

    before = queries()
    for _ in range(3):
        make_participant("enrolled")
    assert queries() == before  # per chunk of participants, not per participant or record
