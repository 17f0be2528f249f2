"""The export reader (``annulus.exports.source``): the trial as of a time, one ``Subject`` per
consented participant, values typed as the dictionary says and equal to the database, change
history with who/when/why, no identity outside the identifiable export, the blind per role, and
a query count per batch that does not grow with the batch (X-7.6, X-3.8)."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annulus.exports import source
from annulus.interchange import scores

from .test_visits_support import GOOD, aware

pytestmark = [pytest.mark.django_db]

NAME, INITIALS, PHONE = "Qiuxia Zhuangmeng", "QZM", "13912345678"


def _text(subjects) -> str:
    return json.dumps([dataclasses.asdict(s) for s in subjects], ensure_ascii=False, default=str)


def _by_number(subjects):
    return {s.screening_number: s for s in subjects}


def _record(subject, visit, form, record=1):
    return next((r for r in subject.records if (r.visit, r.form, r.record) == (visit, form, record)), None)


@pytest.fixture
def trial(users, make_participant):
    from tests.test_lock_write_routes import build_trial

    t = build_trial(users, make_participant)
    t["fail"] = make_participant("screen_failed")
    return t


def _later():
    """A moment strictly after everything saved so far (timestamps must differ)."""
    time.sleep(0.01)
    at = timezone.now()
    time.sleep(0.01)
    return at


# ---- values -------------------------------------------------------------------------------------

@pytest.mark.req("X-7.6")
def test_every_consented_participant_once_in_number_order_and_values_equal_the_database(users, trial):
    from annulus.allocation.models import Transplant
    from annulus.participants.models import Consent, Participant
    from annulus.safety.models import AdverseEvent
    from annulus.visits.models import FormRecord

    as_of = _later()
    got = list(source.subjects(users["statistician"], as_of=as_of, batch=3))
    numbers = [s.screening_number for s in got]
    consented = set(Consent.objects.values_list("participant__screening_number", flat=True))
    assert numbers == sorted(consented)
    assert trial["pre"].screening_number not in numbers  # pre-screened only: not trial data
    assert source.count(as_of) == len(got)

    f = _by_number(got)[trial["f"].screening_number]
    p = Participant.objects.get(pk=trial["f"].pk)
    assert f.case_number == p.case_number and f.subject.endswith(p.case_number)
    assert f.status == p.status and f.sex == p.sex

    vas = _record(f, "w1", "vas")
    db = FormRecord.objects.get(participant=p, visit__visit_id="w1", form_id="vas")
    assert vas.state == "complete" and vas.values == {"vas_mm": float(db.items["vas_mm"])}
    assert isinstance(vas.values["vas_mm"], float)
    assert vas.computed == {"vas_mm": float(db.computed["score"])}
    odi = _record(f, "w1", "odi")
    assert odi.state == "draft"
    assert odi.values["s1"] == "2" and odi.values["s10"] is None  # codes as text, unanswered as None

    tx = Transplant.objects.get(participant=p)
    rec = _record(f, "transplant", "transplant")
    assert rec.values["transplanted_at"] == tx.transplanted_at.astimezone(dt_timezone.utc).isoformat()
    assert rec.values["volume_ml"] == float(tx.volume_ml) and isinstance(rec.values["needle_gauge"], int)
    assert f.transplanted_at == rec.values["transplanted_at"]

    lipo = _record(f, "liposuction", "liposuction")
    assert lipo.values["fat_volume_ml"] == 150.0 and lipo.values["anaesthesia"] == "local"
    assert lipo.values["performed_on"] == f.liposuction_on

    events = {ae.number: ae for ae in AdverseEvent.objects.filter(participant=p)}
    logged = [r for r in f.records if r.form == "adverse_event"]
    assert sorted(r.record for r in logged) == sorted(events)
    for r in logged:
        ae = events[r.record]
        assert r.visit == "" and r.values["term"] == ae.term and r.values["serious"] is ae.serious
        assert r.values["grade"] == str(ae.grade)
        assert r.values["serious_criteria"] == list(ae.serious_criteria)
        assert r.values["onset_at"] == ae.onset_at.astimezone(dt_timezone.utc).isoformat()

    consent = _record(f, "screening", "consent")
    c = Consent.objects.get(participant=p)
    assert consent.values == {"consent_version": c.consent_version,
                              "consented_at": c.consented_at.astimezone(dt_timezone.utc).isoformat(),
                              "taken_by": c.taken_by.username}
    screening = _record(f, "screening", "screening")
    from annulus.participants.models import Evidence

    evidence = {e.field: e.value for e in Evidence.objects.filter(participant=p, superseded=False)}
    assert screening.values["vas_mm"] == evidence["vas_mm"] and isinstance(screening.values["vas_mm"], int)
    assert screening.values["date_of_birth"] == evidence["date_of_birth"]
    assert screening.values["lbp_cough_sneeze"] is evidence["lbp_cough_sneeze"]
    assert f.age is not None and 18 <= f.age <= 80
    assert _record(f, "screening", "eligibility").values == {"outcome": "eligible"} and f.eligible is True

    # the visits: study day from the transplantation (day 0) and the window against the schedule
    w1 = next(v for v in f.visits if v.visit == "w1")
    assert w1.date == (timezone.localdate() - timedelta(days=23)).isoformat()
    assert w1.day == 7 and w1.window == "in" and w1.outcome == "attended"
    assert [v.visit for v in f.visits] == ["liposuction", "transplant", "w1"]

    # every record: exactly the dictionary's items of its form, each of the item's type
    from annulus.trial.selectors import data_dictionary

    d = data_dictionary()
    kinds = {"integer": int, "number": float, "code": str, "text": str, "date": str, "datetime": str, "bool": bool}
    for s in got:
        for r in s.records:
            items = {e.item for e in d.form(r.form).items} - {"initials", "full_name", "phone", "drug_code_entered"}
            assert set(r.values) == items, (r.form, set(r.values) ^ items)
            for item, v in r.values.items():
                e = d.entry(r.form, item)
                if v is None:
                    continue
                if e.type == "choice":
                    assert isinstance(v, list if item == "serious_criteria" else str), (r.form, item, v)
                    assert not e.codelist or all(x in [c[0] for c in e.codelist] for x in
                                                 (v if isinstance(v, list) else [v])), (r.form, item, v)
                else:
                    assert isinstance(v, kinds[e.type]) and not (e.type == "integer" and isinstance(v, bool)), \
                        (r.form, item, v)
                if e.type == "datetime":
                    assert v.endswith("+00:00")
            assert set(r.computed) <= {sc.id for sc in scores.SCORES.get(r.form, ())}

    failed = _by_number(got)[trial["fail"].screening_number]
    assert failed.eligible is False and failed.failed_criteria and failed.status == "screen_failed"
    assert _record(failed, "screening", "eligibility").values == {"outcome": "ineligible"}


@pytest.mark.req("X-7.6")
def test_a_correction_after_the_as_of_time_is_not_in_the_export_and_the_history_says_who_when_why(users, trial):
    from annulus.visits import services as vs

    coord = users["coordinator"]
    pid = trial["f"].pk
    before = _later()
    vs.save_form(actor=coord, participant_id=pid, visit_key="w1", form_id="vas", items={"vas_mm": 71},
                 complete=True, reason="transcription error: the paper line reads 71 mm")
    after = _later()

    then = _record(_by_number(source.subjects(users["monitor"], as_of=before))[trial["f"].screening_number],
                   "w1", "vas")
    assert then.values == {"vas_mm": float(GOOD["vas"]["vas_mm"])} and len(then.changes) == 1

    now = _record(_by_number(source.subjects(users["monitor"], as_of=after))[trial["f"].screening_number],
                  "w1", "vas")
    assert now.values == {"vas_mm": 71.0} and now.computed["vas_mm"] == 71.0
    first, second = now.changes
    assert first.values == {"vas_mm": float(GOOD["vas"]["vas_mm"])}
    assert second.values == {"vas_mm": 71.0}
    assert second.by == "t_coordinator" and second.reason == "transcription error: the paper line reads 71 mm"
    assert before.astimezone(dt_timezone.utc).isoformat() < second.at <= after.astimezone(dt_timezone.utc).isoformat()

    # a record created after the as-of time is absent; a participant consented after it too
    assert all(r.form != "joa" for r in _by_number(source.subjects(users["monitor"], as_of=after))[
        trial["f"].screening_number].records)
    vs.save_form(actor=coord, participant_id=pid, visit_key="w1", form_id="joa", items=GOOD["joa"])
    late = _later()
    assert _record(_by_number(source.subjects(users["monitor"], as_of=late))[trial["f"].screening_number],
                   "w1", "joa") is not None
    assert _record(_by_number(source.subjects(users["monitor"], as_of=after))[trial["f"].screening_number],
                   "w1", "joa") is None
    from annulus.participants.models import Consent

    first_consent = Consent.objects.order_by("consented_at").first().consented_at
    assert list(source.subjects(users["monitor"], as_of=first_consent - timedelta(seconds=1))) == []
    assert source.count(first_consent - timedelta(seconds=1)) == 0


@pytest.mark.req("X-7.6")
def test_source_verification_lock_and_queries_as_of(users, trial):
    from annulus.monitoring import services as ms
    from annulus.participants import services as ps
    from annulus.queries import services as qs

    pid = trial["f"].pk
    ms.verify(actor=users["monitor"], participant_id=pid, visit="w1", form="vas")
    q = qs.raise_query(actor=users["monitor"], participant_id=pid, visit="w1", form="vas", item="vas_mm",
                       text="Please confirm the 1-week VAS against the paper line.", assigned_to="site")
    at = _later()
    s = _by_number(source.subjects(users["data_manager"], as_of=at))[trial["f"].screening_number]
    vas = _record(s, "w1", "vas")
    assert vas.verified == ("vas_mm",) and vas.open_queries == 1 and not vas.locked
    note = next(n for n in s.queries if n.id == q.pk)
    assert (note.visit, note.form, note.item, note.status) == ("w1", "vas", "vas_mm", "open")
    assert note.text == "Please confirm the 1-week VAS against the paper line." and note.raised_by == "t_monitor"

    # the lock of the casebook covers every record from the moment it is set
    ps.lock_record(actor=users["data_manager"], participant_id=trial["disp"].pk)
    locked_at = _later()
    d = _by_number(source.subjects(users["data_manager"], as_of=locked_at))[trial["disp"].screening_number]
    assert d.records and all(r.locked for r in d.records)
    d = _by_number(source.subjects(users["data_manager"], as_of=at))[trial["disp"].screening_number]
    assert not any(r.locked for r in d.records)

    # a verified value corrected afterwards is no longer verified
    from annulus.visits import services as vs

    vs.save_form(actor=users["coordinator"], participant_id=pid, visit_key="w1", form_id="vas", items={"vas_mm": 70},
                 complete=True, reason="query answered: the paper line reads 70 mm")
    s = _by_number(source.subjects(users["data_manager"], as_of=_later()))[trial["f"].screening_number]
    assert _record(s, "w1", "vas").verified == ()


# ---- privacy and the blind ----------------------------------------------------------------------

@pytest.mark.req("X-7.6")
def test_no_name_initials_or_phone_anywhere_unless_identifiable(users, trial):
    from annulus.participants import services as ps

    p = ps.prescreen(actor=users["coordinator"], initials=INITIALS, sex="M", recruitment_source="inpatient_referral",
                     prescreened_on=timezone.localdate() - timedelta(days=3), full_name=NAME, phone=PHONE)
    ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=2), taken_by=users["investigator"])
    at = _later()
    got = list(source.subjects(users["investigator"], as_of=at))
    text = _text(got)
    assert p.screening_number in text
    for secret in (NAME, INITIALS, PHONE, "Test Person", "13800000000"):
        assert secret not in text
    pre = _record(_by_number(got)[p.screening_number], "", "prescreening")
    assert set(pre.values) == {"sex", "recruitment_source", "site", "prescreened_on"}
    assert all(s.identity is None for s in got)

    named = _by_number(source.subjects(users["investigator"], as_of=at, identifiable=True))[p.screening_number]
    assert named.identity == {"initials": INITIALS, "full_name": NAME, "phone": PHONE}
    assert "full_name" not in _record(named, "", "prescreening").values


def _set_state(state: str):
    from annulus.trial.models import TrialState

    TrialState.objects.update_or_create(id=1, defaults={"state": state})


@pytest.mark.req("X-7.6", "X-3.8")
def test_blinded_roles_see_no_label_arm_or_drug_code(users, trial):
    from annulus.allocation.models import Envelope

    codes = list(Envelope.objects.filter(participant__isnull=False).values_list("drug_code", flat=True))
    assert codes
    at = _later()
    for role in ("statistician", "monitor", "data_manager", "investigator", "coordinator", "auditor"):
        user = users[role]
        assert source.blinding_for(user) == "blinded" and not source.may_see_drug_codes(user)
        got = list(source.subjects(user, as_of=at))
        assert got and all(s.group_label is None and s.arm is None and s.drug_code is None for s in got)
        tx = [r for s in got for r in s.records if r.form == "transplant"]
        assert tx and all("drug_code_entered" not in r.values for r in tx)
        assert all("drug_code_entered" not in c.values for r in tx for c in r.changes)
        text = _text(got)
        for code in codes:
            assert code not in text, role


@pytest.mark.req("X-7.6", "X-3.8")
def test_statistician_gets_labels_after_first_level_unblinding_and_arms_after_the_second(users, trial):
    from annulus.allocation.models import Envelope

    envelopes = {e.participant_id: e for e in Envelope.objects.filter(participant__isnull=False)
                 .select_related("allocation_list", "participant")}
    stat = users["statistician"]
    _set_state("unblinded_1")
    assert source.blinding_for(stat) == "labels"
    got = _by_number(source.subjects(stat, as_of=_later()))
    for e in envelopes.values():
        s = got[e.participant.screening_number]
        assert s.group_label == e.group_label and s.arm is None and s.drug_code is None
    assert source.blinding_for(users["monitor"]) == "blinded"
    assert all(s.group_label is None for s in source.subjects(users["monitor"], as_of=_later()))

    _set_state("unblinded_2")
    assert source.blinding_for(stat) == "arms"
    got = _by_number(source.subjects(stat, as_of=_later()))
    for e in envelopes.values():
        s = got[e.participant.screening_number]
        assert s.group_label == e.group_label and s.arm == e.allocation_list.level2_key[e.group_label]
        assert s.drug_code is None
    for role in ("monitor", "data_manager", "coordinator"):
        assert source.blinding_for(users[role]) == "blinded"
        assert all(s.arm is None and s.group_label is None for s in source.subjects(users[role], as_of=_later()))


@pytest.mark.req("X-7.6", "X-3.8")
def test_the_pharmacist_gets_drug_codes_and_nobody_a_label_before_unblinding(users, trial):
    from annulus.allocation.models import Envelope, Transplant

    ph = users["pharmacist"]
    assert source.may_see_drug_codes(ph) and source.blinding_for(ph) == "blinded"
    got = _by_number(source.subjects(ph, as_of=_later()))
    for e in Envelope.objects.filter(participant__isnull=False).select_related("participant"):
        s = got[e.participant.screening_number]
        assert s.drug_code == e.drug_code and s.group_label is None and s.arm is None
    tx = Transplant.objects.get(participant=trial["f"])
    assert _record(got[trial["f"].screening_number], "transplant", "transplant").values["drug_code_entered"] == \
        tx.drug_code_entered
    assert source.blinding_for(users["designer"]) == "blinded"
    assert all(s.group_label is None for s in source.subjects(users["designer"], as_of=_later()))


# ---- streaming ------------------------------------------------------------------------------------

def _queries(user, as_of, batch):
    with CaptureQueriesContext(connection) as ctx:
        n = sum(1 for _ in source.subjects(user, as_of=as_of, batch=batch))
    return n, len(ctx.captured_queries)


@pytest.mark.req("X-7.6")
def test_the_query_count_per_batch_does_not_grow_with_the_batch(users, make_participant):
    from annulus.trial.selectors import active_protocol, data_dictionary

    active_protocol(), data_dictionary()  # parsed once per protocol version, not per export
    for _ in range(3):
        make_participant("enrolled")
    make_participant("screen_failed")
    at = _later()
    n_small, q_small = _queries(users["statistician"], at, 50)
    for _ in range(8):
        make_participant("enrolled")
    make_participant("screen_failed")
    at = _later()
    n_large, q_large = _queries(users["statistician"], at, 50)
    assert (n_small, n_large) == (4, 13)
    assert q_small == q_large
    # three batches of five cost three times one batch's reads at most (plus the set-up)
    n, q = _queries(users["statistician"], at, 5)
    assert n == 13 and q < 3 * q_large


@pytest.mark.req("X-7.6")
def test_the_audit_chain_at_the_as_of_time(users, trial):
    from annulus.audit.models import AuditEvent

    at = _later()
    count, head = source.chain_at(at)
    assert count == AuditEvent.objects.filter(timestamp__lte=at).count() > 0
    assert head == AuditEvent.objects.filter(timestamp__lte=at).order_by("-id").first().hash
    from annulus.visits import services as vs

    vs.save_form(actor=users["coordinator"], participant_id=trial["f"].pk, visit_key="w1", form_id="joa",
                 items=GOOD["joa"])
    assert source.chain_at(at) == (count, head)
    assert source.chain_at(_later())[0] > count
    assert source.chain_at(AuditEvent.objects.order_by("timestamp").first().timestamp - timedelta(days=1)) == (0, "")


# ---- scores (no database) -------------------------------------------------------------------------

@pytest.mark.req("X-7.6")
def test_scores_are_flattened_from_what_the_ecrf_computes(protocol_version):
    from annulus.trial.selectors import active_protocol
    from annulus.visits.crf import compute

    protocol = active_protocol()
    for form_id in ("vas", "odi", "joa", "sf36", "imaging"):
        flat = scores.flatten(form_id, compute(protocol, form_id, GOOD[form_id]))
        declared = [s.id for s in scores.SCORES[form_id]]
        assert set(flat) <= set(declared) and flat
        assert all(isinstance(v, (int, float)) for v in flat.values()), (form_id, flat)
        assert all(s.label_en and s.label_zh for s in scores.SCORES[form_id])
    assert scores.flatten("vas", compute(protocol, "vas", {"vas_mm": 40}, baseline=62)) == {
        "vas_mm": 40.0, "change_from_baseline": -22.0}
    assert scores.flatten("odi", compute(protocol, "odi", GOOD["odi"]))["odi_percent"] == 40.0
    sf = scores.flatten("sf36", compute(protocol, "sf36", GOOD["sf36"]))
    assert set(sf) == {"pcs", "mcs", "pf", "rp", "bp", "gh", "vt", "sf", "re", "mh"}
    img = scores.flatten("imaging", compute(protocol, "imaging", GOOD["imaging"]))
    assert img["modic_score"] == 2 and img["pfirrmann_grade"] == 4 and img["rom_score"] == 11.0
    assert scores.flatten("vitals", {"anything": 1}) == {} and scores.flatten("vas", {}) == {}


# ---- the reader's shortcuts give what the plain conversions give ------------------------------------

def test_typed_values_are_the_same_when_they_come_from_the_caches():
    """Values of the same item and stored value are typed once and remembered, and a form's stored
    JSON text once: what comes back is what ``typed`` and ``scores.flatten`` give, of the same
    type (1, 1.0 and True, or 0.0 and -0.0, are equal keys of a dict but type differently)."""
    from decimal import Decimal
    from types import SimpleNamespace as Entry

    entries = [Entry(item=item, type=kind, unit=unit) for item, kind, unit in (
        ("n", "number", ""), ("i", "integer", ""), ("c", "code", ""), ("ch", "choice", ""), ("b", "bool", ""),
        ("d", "date", ""), ("dt", "datetime", ""), ("t", "text", ""), ("alt", "number", ""),
        ("alt__unit", "text", "U/L"))]
    form = source._Form(Entry(id="vas", items=entries))
    samples = [None, "", 0, 1, 1.0, True, False, -0.0, 0.0, 2.5, "1", "1.0", " 2 ", "x", "true", "no", [1, "2"],
               Decimal("1.0"), Decimal("1.00"), "2024-03-01", "2024-03-01T08:00:00+08:00", "not a time"]
    for _ in range(2):  # the second time from the caches
        for v in samples:
            for e in entries:
                got, want = form.values({e.item: v})[e.item], source.typed(e, v)
                assert repr(got) == repr(want) and type(got) is type(want), (e.item, v)
    assert form.values({"alt": 12})["alt__unit"] == "U/L" and form.values({"alt": ""})["alt__unit"] is None

    stored = {"n": 1, "i": "3", "c": 2, "ch": ["a", 1], "b": "yes", "alt": 40}
    text = json.dumps(stored)
    first = form.values_of_text(text)
    assert first == form.values(stored) and first is not form.values_of_text(text)
    first["n"] = "changed"  # each record gets a dict of its own
    assert form.values_of_text(text) == form.values(stored)
    assert form.values_of_text("{}") == form.values({}) == form.values_of_text(None)

    computed = {"name": "vas", "score": 51.0, "change_from_baseline": -11.0}
    for _ in range(2):
        assert form.scores_of_text(json.dumps(computed)) == scores.flatten("vas", computed)
    assert form.scores_of_text("not json") == {} and form.scores_of_text(None) == {}
    vitals = source._Form(Entry(id="vitals", items=entries))
    assert vitals.scores_of_text(json.dumps(computed)) == scores.flatten("vitals", computed) == {}


def test_reading_leaves_the_garbage_collector_as_it_was(users, make_participant):
    import gc

    make_participant("enrolled")
    make_participant("enrolled")
    at = _later()
    assert gc.isenabled()
    for _ in source.subjects(users["statistician"], as_of=at, batch=1):
        assert gc.isenabled()  # paused only while a batch is read, not while the writer runs
    assert gc.isenabled()
    gc.disable()
    try:
        assert len(list(source.subjects(users["statistician"], as_of=at))) == 2
        assert not gc.isenabled()
    finally:
        gc.enable()
