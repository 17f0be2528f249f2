"""The safety and conduct analysis datasets (ADAE, ADLB, ADSV, ADDV) of ``annulus export --format
adam``: a trial built through the services (adverse events with follow-ups, a withdrawal for an
adverse event, laboratory panels at baseline and after, visits done, missed, not yet due and after
the end of study, source-data verification, queries, protocol deviations), exported as of two
times, each dataset's rows held against the database as it stood at that time; the blind per role;
the SAS transport files equal to the CSV files. Then the derivation rules one by one (no Django)."""

from __future__ import annotations

import csv
import dataclasses
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annulus.interchange import adam_conduct, adam_safety
from annulus.interchange.adam import _num

NEW = ("adae", "adlb", "adsv", "addv")
LAB_FORMS = ("blood_routine", "liver_kidney", "immunology", "urinalysis")


def _later():
    """A moment strictly after everything saved so far (timestamps must differ)."""
    time.sleep(0.01)
    at = timezone.now()
    time.sleep(0.01)
    return at


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _local(moment) -> str:
    return timezone.localtime(moment).date().isoformat()


def _subject(p) -> str:
    from annulus.trial.selectors import active_protocol

    return f"{active_protocol().trial.id}-{p.case_number or p.screening_number}"


def _set_state(state: str):
    from annulus.trial.models import TrialState

    TrialState.objects.update_or_create(id=1, defaults={"state": state})


# ---- the trial -----------------------------------------------------------------------------------

@pytest.fixture
def built(users, make_participant, settings, tmp_path):
    """``build_trial``'s trial (participants at every step; ``f`` transplanted 30 days ago with its
    1-week visit, an adverse event and a serious one) and, through the services, what the safety
    and conduct datasets show. ``t["T1"]``: a time between the first part and the second."""
    from annulus.allocation import services as alloc
    from annulus.monitoring import services as ms
    from annulus.queries import services as qs
    from annulus.safety import services as ss
    from annulus.visits import services as vs
    from tests.test_lock_write_routes import AE_FIELDS, build_trial

    from .test_visits_support import BLOOD, GOOD, URINE, aware

    settings.VAR_DIR = tmp_path / "var"
    t = build_trial(users, make_participant)
    inv, coord, mon, aud = users["investigator"], users["coordinator"], users["monitor"], users["auditor"]
    today, now = timezone.localdate(), timezone.now()
    f = t["f"]
    # f: baseline two days before the transplantation (day 0 = 30 days ago), laboratory panels at
    # baseline and at 1 week (out of range there, judged not clinically significant)
    base_day = today - timedelta(days=32)
    vs.open_visit(actor=coord, participant_id=f.pk, visit_id="baseline", visit_date=base_day)
    for form, items in (("blood_routine", BLOOD), ("urinalysis", URINE), ("vas", GOOD["vas"])):
        vs.save_form(actor=coord, participant_id=f.pk, visit_key="baseline", form_id=form, items=items,
                     complete=True, collected_at=aware(base_day))
    w1 = today - timedelta(days=23)
    vs.save_form(actor=coord, participant_id=f.pk, visit_key="w1", form_id="blood_routine",
                 items={**BLOOD, "wbc": 12.5, "wbc__cs": "no", "hgb": 100, "hgb__cs": "no"}, complete=True,
                 collected_at=aware(w1))
    vs.save_form(actor=coord, participant_id=f.pk, visit_key="w1", form_id="urinalysis",
                 items={**URINE, "u_protein": "1+", "u_protein__cs": "no"}, complete=True, collected_at=aware(w1))
    vs.record_missed(actor=coord, participant_id=f.pk, visit_id="m1", reason="could not travel")
    # adverse events of f: one after the liposuction, before the transplantation; one serious and
    # related to the product after it
    t["ae_before"] = ss.record_adverse_event(
        actor=inv, participant_id=f.pk, onset_at=now - timedelta(days=48),
        **{**AE_FIELDS, "term": "Bruising at the liposuction site", "causality_liposuction": "possible",
           "causality_injection": "not_applicable", "causality_product": "not_applicable", "outcome": "recovered",
           "end_at": now - timedelta(days=44)})
    t["ae_related"] = ss.record_adverse_event(
        actor=inv, participant_id=f.pk, onset_at=now - timedelta(days=20), first_knowledge_at=now - timedelta(days=19),
        **{**AE_FIELDS, "term": "Discitis", "serious": True, "serious_criteria": ["hospitalisation"], "grade": 3,
           "causality_injection": "possible", "causality_product": "probable", "expectedness": "unexpected",
           "action_taken": "hospitalised"})
    # source-data verification: the 1-week VAS and the transplantation record (the drug code with it)
    ms.verify(actor=mon, participant_id=f.pk, visit="w1", form="vas")
    ms.verify(actor=mon, participant_id=f.pk, visit="transplant", form="transplant")
    # queries: one open, one closed
    t["q_open"] = qs.raise_query(actor=mon, participant_id=f.pk, visit="w1", form="vas", item="vas_mm",
                                 text="Please confirm the 1-week VAS.", assigned_to="site")
    q = qs.raise_query(actor=mon, participant_id=f.pk, visit="baseline", form="blood_routine", item="wbc",
                       text="Please confirm the baseline white cells.", assigned_to="site")
    qs.close_query(actor=mon, query_id=q.pk, text="Confirmed against the laboratory report.")
    # protocol deviations (and a finding of another category, which is not one)
    t["dv1"] = ms.record_finding(actor=aud, participant_id=f.pk, category="protocol_deviation", visit="baseline",
                                 text="Baseline blood sample taken two days before the transplantation")
    ms.record_finding(actor=aud, participant_id=t["rel"].pk, category="protocol_deviation",
                      text="Liposuction performed before the consent form of the current version was signed")
    # disp: an adverse event after the liposuction, then withdrawn for another one
    ss.record_adverse_event(actor=inv, participant_id=t["disp"].pk, onset_at=now - timedelta(days=12),
                            **{**AE_FIELDS, "term": "Wound pain", "causality_liposuction": "probable",
                               "causality_injection": "not_applicable", "causality_product": "not_applicable"})
    t["ae_withdrawal"] = ss.record_adverse_event(
        actor=inv, participant_id=t["disp"].pk, onset_at=now - timedelta(days=5),
        **{**AE_FIELDS, "term": "Cellulitis at the liposuction site", "grade": 2, "causality_liposuction": "probable",
           "causality_injection": "not_applicable", "causality_product": "not_applicable",
           "action_taken": "withdrawn"})
    ss.withdraw_for_event(actor=inv, adverse_event_id=t["ae_withdrawal"].pk, withdrawn_on=today,
                          details="Withdrawn after cellulitis at the liposuction site")
    # tx: transplanted without a baseline visit
    alloc.record_transplant(actor=inv, participant_id=t["tx"].pk, transplanted_at=now - timedelta(minutes=30),
                            drug_code=t["tx_env"].drug_code, activity_restriction_explained=True)
    t["T1"] = _later()

    # after T1: a follow-up of an event, a new event, the deviation resolved, the open query closed
    # and another raised, the baseline VAS verified and the verified 1-week VAS corrected
    ss.update_adverse_event(actor=inv, adverse_event_id=t["ae"].pk, reason="follow-up: resolved",
                            grade=2, outcome="recovered", end_at=timezone.now())
    ss.record_adverse_event(actor=inv, participant_id=f.pk, onset_at=timezone.now() - timedelta(hours=1),
                            **{**AE_FIELDS, "term": "Headache"})
    ms.resolve_finding(actor=aud, finding_id=t["dv1"].pk, resolution="Noted in the site file; staff retrained")
    qs.close_query(actor=mon, query_id=t["q_open"].pk, text="Confirmed.")
    qs.raise_query(actor=mon, participant_id=f.pk, visit="w1", form="vas", item="vas_mm",
                   text="Please confirm the corrected VAS.", assigned_to="site")
    ms.verify(actor=mon, participant_id=f.pk, visit="baseline", form="vas")
    vs.save_form(actor=coord, participant_id=f.pk, visit_key="w1", form_id="vas", items={"vas_mm": 55},
                 complete=True, reason="transcription error corrected against the paper line")
    ms.record_finding(actor=aud, participant_id=f.pk, category="protocol_deviation", visit="w1",
                      text="1-week VAS recorded by a coordinator not on the delegation log")
    t["T2"] = _later()
    return t


def _export(user, out: Path, as_of) -> Path:
    from annulus.exports import services

    services.run_export(actor=user, fmt="adam", out_dir=out, as_of=as_of)
    return out


# ---- the database at a time ------------------------------------------------------------------------

def _ae_at(at) -> dict:
    """(USUBJID, number) -> the event's values in its last revision saved by ``at``."""
    from annulus.safety.models import AdverseEventRevision

    out = {}
    for r in (AdverseEventRevision.objects.filter(saved_at__lte=at, adverse_event__created_at__lte=at)
              .select_related("adverse_event__participant").order_by("adverse_event_id", "revision")):
        ae = r.adverse_event
        out[(_subject(ae.participant), ae.number)] = r.data
    return out


def _transplant_days(at) -> dict:
    from annulus.allocation.models import Transplant

    return {_subject(t.participant): _local(t.transplanted_at)
            for t in Transplant.objects.filter(recorded_at__lte=at).select_related("participant")}


def _forms_at(at) -> dict:
    """(USUBJID, visit, form) -> (state, items) of every eCRF form as saved by ``at``."""
    from annulus.visits.models import FormRevision

    out = {}
    for r in (FormRevision.objects.filter(saved_at__lte=at).select_related("form__visit", "form__participant")
              .order_by("form_id", "number")):
        v = r.form.visit
        if v.visit_id == "unscheduled":
            continue
        out[(_subject(r.form.participant), v.visit_id, r.form.form_id)] = (r.state, r.items)
    return out


def _query_counts(at) -> tuple[Counter, Counter]:
    """(raised, not closed) by (USUBJID, visit) as of ``at``, from each query's thread."""
    from annulus.queries.models import Query

    raised, still_open = Counter(), Counter()
    for q in Query.objects.filter(raised_at__lte=at).select_related("participant").prefetch_related("messages"):
        steps = [m.kind for m in sorted(q.messages.all(), key=lambda m: (m.at, m.id)) if m.at <= at]
        key = (_subject(q.participant), q.visit)
        raised[key] += 1
        if not steps or steps[-1] not in ("close", "auto_close"):
            still_open[key] += 1
    return raised, still_open


def _check_adae(rows, at, safety: set):
    """ADAE against the adverse events and their revisions as of ``at``."""
    from annulus.participants.models import Withdrawal
    from annulus.trial.selectors import active_protocol

    events = _ae_at(at)
    assert sorted((r["USUBJID"], int(r["AESEQ"])) for r in rows) == sorted(events)
    day0 = _transplant_days(at)
    related = set(active_protocol().safety.related_causality)
    withdrawn_for = {(_subject(w.participant), w.adverse_event_id) for w in
                     Withdrawal.objects.filter(recorded_at__lte=at).select_related("participant")}
    from annulus.safety.models import AdverseEvent

    numbers = {ae.pk: (_subject(ae.participant), ae.number) for ae in AdverseEvent.objects.select_related("participant")}
    flagged = {numbers[pk] for _s, pk in withdrawn_for if pk}
    for r in rows:
        key = (r["USUBJID"], int(r["AESEQ"]))
        v = events[key]
        start = _local(datetime.fromisoformat(v["onset_at"]))
        end = _local(datetime.fromisoformat(v["end_at"])) if v["end_at"] else ""
        tx = day0.get(r["USUBJID"], "")
        assert (r["AETERM"], r["AEDECOD"], r["AEBODSYS"]) == (v["term"], v["term"], ""), key
        assert (r["ASTDT"], r["AENDT"], r["TRTSDT"]) == (start, end, tx), key
        assert r["ASTDY"] == (str((date.fromisoformat(start) - date.fromisoformat(tx)).days) if tx else ""), key
        assert r["AETOXGR"] == str(v["grade"]) and r["AESER"] == ("Y" if v["serious"] else "N"), key
        assert r["AREL"] == ("RELATED" if v["causality_product"] in related else "NOT RELATED"), key
        assert r["AEREL"] == {"not_applicable": "NOT APPLICABLE", "not_related": "NOT RELATED",
                              "possible": "POSSIBLY RELATED", "probable": "PROBABLY RELATED"}[v["causality_product"]]
        assert r["AEOUT"] == {"recovering": "RECOVERING/RESOLVING", "recovered": "RECOVERED/RESOLVED"}[v["outcome"]]
        assert r["AESDTH"] == "N"
        assert r["AEWDFL"] == ("Y" if key in flagged else "N"), key
        assert r["TRTEMFL"] == ("Y" if tx and start >= tx else ""), key
        assert r["SAFFL"] == ("Y" if r["USUBJID"] in safety else "N")
    return events


def _check_adlb(rows, at, protocol):
    """ADLB: every analyte value of the complete laboratory forms as of ``at``, flagged against
    the protocol's ranges."""
    analytes = {a.id: (panel, a) for panel in protocol.lab_panels for a in panel.analytes}
    expected = {}
    for (subject, visit, form), (state, items) in _forms_at(at).items():
        if form in LAB_FORMS and state in ("complete", "changed"):
            for a in protocol.lab_panel(form).analytes:
                if items.get(a.id) is not None:
                    expected[(subject, a.id, visit)] = items[a.id]
    got = {(r["USUBJID"], r["PARAMCD"], r["AVISIT"]): r for r in rows}
    assert len(got) == len(rows) and set(got) == set(expected)
    for key, r in got.items():
        panel, a = analytes[key[1]]
        value = expected[key]
        assert r["LBCAT"] == panel.name.en and r["PARAM"].startswith(a.name.en), key
        if a.kind == "qualitative":
            assert (r["AVALC"], r["AVAL"], r["ANRLO"], r["ANRHI"]) == (value, "", "", ""), key
            assert r["ANRIND"] == ("NORMAL" if value == a.normal else "ABNORMAL"), key
        else:
            assert float(r["AVAL"]) == float(value) and r["AVALC"] == "", key
            assert (float(r["ANRLO"]), float(r["ANRHI"])) == (a.low, a.high), key
            assert r["ANRIND"] == ("LOW" if value < a.low else "HIGH" if value > a.high else "NORMAL"), key
        assert r["ABLFL"] == ("Y" if key[2] == "baseline" else "")
        base = got.get((key[0], key[1], "baseline"))
        assert r["BNRIND"] == (base["ANRIND"] if base else ""), key


@pytest.mark.req("X-8.5", "P-8.4")
def test_adverse_events_and_laboratory_values_as_of_two_times(users, built, tmp_path):
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    stat = users["statistician"]
    for name, at in (("t1", built["T1"]), ("t2", built["T2"])):
        out = _export(stat, tmp_path / name, at)
        adsl = {r["USUBJID"]: r for r in _read(out / "adsl.csv")}
        safety = {s for s, r in adsl.items() if r["SAFFL"] == "Y"}
        rows = _read(out / "adae.csv")
        events = _check_adae(rows, at, safety)
        assert {r["USUBJID"] for r in rows} <= set(adsl)
        lab = _read(out / "adlb.csv")
        _check_adlb(lab, at, protocol)
        assert {r["SAFFL"] for r in lab} == {"Y"}  # only f has laboratory forms
        by_key = {(r["USUBJID"], r["AVISIT"], r["PARAMCD"]): r for r in lab}
        f = _subject(built["f"])
        assert (by_key[(f, "w1", "wbc")]["ANRIND"], by_key[(f, "w1", "wbc")]["BNRIND"]) == ("HIGH", "NORMAL")
        assert by_key[(f, "w1", "hgb")]["ANRIND"] == "LOW"
        assert (by_key[(f, "w1", "u_protein")]["AVALC"], by_key[(f, "w1", "u_protein")]["ANRIND"]) == ("1+", "ABNORMAL")
        assert by_key[(f, "baseline", "wbc")]["ABLFL"] == "Y" and by_key[(f, "w1", "wbc")]["AVISITN"] == "7"
        ae = {(r["USUBJID"], r["AETERM"]): r for r in rows}
        before = ae[(f, "Bruising at the liposuction site")]
        assert (before["TRTEMFL"], before["AREL"], before["AEREL"], int(before["ASTDY"]) < 0) == (
            "", "NOT RELATED", "NOT APPLICABLE", True)
        discitis = ae[(f, "Discitis")]
        assert (discitis["TRTEMFL"], discitis["AREL"], discitis["AESER"], discitis["AETOXGR"]) == ("Y", "RELATED", "Y", "3")
        disp = _subject(built["disp"])
        assert ae[(disp, "Cellulitis at the liposuction site")]["AEWDFL"] == "Y"
        assert ae[(disp, "Wound pain")]["AEWDFL"] == "N"
        assert adsl[disp]["SAFFL"] == "N" and ae[(disp, "Wound pain")]["TRTEMFL"] == ""
        first = ae[(f, "Back pain")]
        if name == "t1":  # as first reported; the follow-up came after T1, and so did the headache
            assert (first["AETOXGR"], first["AEOUT"], first["AENDT"]) == ("1", "RECOVERING/RESOLVING", "")
            assert (f, "Headache") not in ae
        else:
            assert (first["AETOXGR"], first["AEOUT"], first["AENDT"]) == ("2", "RECOVERED/RESOLVED",
                                                                         timezone.localdate().isoformat())
            assert (f, "Headache") in ae and len(events) == len(rows)


def _expected_sdv(at_now: bool, subjects_by_pk) -> Counter:
    """Forms source-verified by the plan per (USUBJID, visit): the monitoring app's own progress."""
    from annulus.monitoring.selectors import sdv_status

    assert at_now
    out = Counter()
    for (pid, visit, _form), s in sdv_status(list(subjects_by_pk)).items():
        if s["required"] and s["verified"] == s["required"]:
            out[(subjects_by_pk[pid], visit)] += 1
    return out


@pytest.mark.req("X-8.5")
def test_visits_data_cleaning_and_deviations_as_of_two_times(users, built, tmp_path):
    from annulus.monitoring.models import ReviewFinding
    from annulus.participants.models import Participant
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    schedule = [v.id for v in protocol.schedule.visits]
    stat = users["statistician"]
    f, disp, tx, rand = (_subject(built[k]) for k in ("f", "disp", "tx", "rand"))
    results = {}
    for name, at in (("t1", built["T1"]), ("t2", built["T2"])):
        out = _export(stat, tmp_path / name, at)
        adsl = {r["USUBJID"]: r for r in _read(out / "adsl.csv")}
        adsv = _read(out / "adsv.csv")
        randomised = {s for s, r in adsl.items() if r["RANDFL"] == "Y"}
        assert Counter(r["USUBJID"] for r in adsv) == Counter({s: len(schedule) for s in randomised})
        sv = {(r["USUBJID"], r["AVISIT"]): r for r in adsv}
        for s in randomised:
            assert [r["AVISIT"] for r in adsv if r["USUBJID"] == s] == schedule  # schedule order
        assert all(r["ITTFL"] == "Y" and r["SVSTAT"] in ("DONE", "MISSED", "NOT DUE", "AFTER EOS") for r in adsv)
        status = {v: sv[(f, v)]["SVSTAT"] for v in schedule}
        assert status == {"liposuction": "DONE", "baseline": "DONE", "transplant": "DONE", "w1": "DONE",
                          "m1": "MISSED", "m3": "NOT DUE", "m6": "NOT DUE", "m12": "NOT DUE", "m18": "NOT DUE",
                          "m24": "NOT DUE"}
        assert sv[(f, "baseline")]["AWSTAT"] == "IN" and sv[(f, "m1")]["AWSTAT"] == ""
        assert sv[(f, "w1")]["SVDT"] == (timezone.localdate() - timedelta(days=23)).isoformat()
        assert sv[(f, "w1")]["ADY"] == "7" and sv[(f, "baseline")]["ADY"] == "-2"
        assert sv[(tx, "baseline")]["SVSTAT"] == "MISSED"  # transplanted without it
        assert sv[(tx, "transplant")]["SVSTAT"] == "DONE" and sv[(tx, "w1")]["SVSTAT"] == "NOT DUE"
        assert {sv[(disp, v)]["SVSTAT"] for v in schedule if v != "liposuction"} == {"AFTER EOS"}
        assert {sv[(rand, v)]["SVSTAT"] for v in schedule} == {"NOT DUE"}  # no liposuction yet
        # forms complete and queries, against the database at that time
        forms = Counter((s, v) for (s, v, _form), (state, _) in _forms_at(at).items() if state in ("complete", "changed"))
        raised, still_open = _query_counts(at)
        for (s, v), r in sv.items():
            procedure = v in ("liposuction", "transplant")
            if r["SVSTAT"] != "DONE":
                assert (r["FORMS"], r["SDVFORMS"]) == ("0", "0")
            elif not procedure:
                assert int(r["FORMS"]) == forms[(s, v)], (s, v)
            else:
                assert r["FORMS"] == "1"
            assert (int(r["QRYTOT"]), int(r["QRYOPEN"])) == (raised[(s, v)], still_open[(s, v)]), (s, v)
        assert sv[(f, "w1")]["FORMS"] == "3"  # VAS and the two panels; the ODI is a draft
        results[name] = sv
        # deviations
        addv = _read(out / "addv.csv")
        found = ReviewFinding.objects.filter(category="protocol_deviation", raised_at__lte=at)
        assert Counter(r["USUBJID"] for r in addv) == Counter(_subject(d.participant) for d in found)
        for d in found:
            row = next(r for r in addv if r["DVTERM"] == d.text)
            resolved = d.resolved_at is not None and d.resolved_at <= at
            assert (row["DVCAT"], row["AVISIT"], row["DVSTDT"]) == ("protocol_deviation", d.visit, _local(d.raised_at))
            assert (row["DVSTAT"], row["DVENDT"]) == (("RESOLVED", _local(d.resolved_at)) if resolved else ("OPEN", ""))
        assert "Source document" not in (out / "addv.csv").read_text(encoding="utf-8")  # another category
        assert [r["DVSEQ"] for r in addv if r["USUBJID"] == f] == [str(i) for i in range(1, 1 + sum(
            1 for r in addv if r["USUBJID"] == f))]
    t1, t2 = results["t1"], results["t2"]
    # the 1-week VAS: verified by T1, corrected after it (the mark no longer holds); the baseline
    # VAS verified after T1; the transplantation record verified, its drug code with it
    assert (int(t1[(f, "w1")]["SDVFORMS"]), int(t2[(f, "w1")]["SDVFORMS"])) == (1, 0)
    assert (int(t1[(f, "baseline")]["SDVFORMS"]), int(t2[(f, "baseline")]["SDVFORMS"])) == (0, 1)
    assert t1[(f, "transplant")]["SDVFORMS"] == t2[(f, "transplant")]["SDVFORMS"] == "1"
    # at T2 (now): the monitoring app's own count of forms verified by the plan
    people = {p.pk: _subject(p) for p in Participant.objects.all()}
    expected = _expected_sdv(True, people)
    for (s, v), r in t2.items():
        assert int(r["SDVFORMS"]) == (expected[(s, v)] if r["SVSTAT"] == "DONE" else 0), (s, v)
    assert (int(t1[(f, "w1")]["QRYOPEN"]), int(t2[(f, "w1")]["QRYOPEN"])) == (
        _query_counts(built["T1"])[1][(f, "w1")], _query_counts(built["T2"])[1][(f, "w1")])


def _xpt_equals_csv(out: Path, name: str):
    import pyreadstat

    rows = _read(out / f"{name}.csv")
    frame, meta = pyreadstat.read_xport(str(out / f"{name}.xpt"), encoding="utf-8")
    assert len(frame) == len(rows) > 0, name
    assert list(frame.columns) == list(rows[0])
    assert meta.table_name.upper() == name.upper()
    dates = {c for c in frame.columns if c.endswith("DT")}
    for i, row in enumerate(rows):
        for col, text in row.items():
            value = frame.iloc[i][col]
            if col in dates:
                expect = None if text == "" else (date.fromisoformat(text) - date(1960, 1, 1)).days
                assert (None if value != value else value) == expect, (name, i, col)
            elif isinstance(value, str):
                assert value == text, (name, i, col)
            else:
                assert (value != value and text == "") or value == pytest.approx(float(text), abs=1e-9), (
                    name, i, col, value, text)


@pytest.mark.req("X-8.5", "X-3.8")
def test_the_blind_per_role_and_sas_transport_equal_to_csv(users, built, tmp_path):
    from annulus.allocation.models import Envelope
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    trt = {"TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "GRPLBL"}
    codes = [c for c in Envelope.objects.filter(participant__isnull=False).values_list("drug_code", flat=True)]
    assert codes
    outs = {}
    for role in ("statistician", "monitor", "pharmacist"):
        out = outs[role] = _export(users[role], tmp_path / f"blinded-{role}", built["T2"])
        for name in NEW:
            assert not trt & set(_read(out / f"{name}.csv")[0]), (role, name)
    _set_state("unblinded_1")
    outs["labels"] = _export(users["statistician"], tmp_path / "labels", built["T2"])
    outs["monitor_after"] = _export(users["monitor"], tmp_path / "monitor-after", built["T2"])
    _set_state("unblinded_2")
    outs["arms"] = _export(users["statistician"], tmp_path / "arms", built["T2"])
    labels = {_subject(e.participant): e.group_label for e in
              Envelope.objects.filter(participant__isnull=False).select_related("participant")}
    arms = {_subject(e.participant): e.allocation_list.level2_key[e.group_label] for e in
            Envelope.objects.filter(participant__isnull=False).select_related("participant", "allocation_list")}
    by_arm = {a.id: a for a in protocol.arms}
    for name in NEW:
        assert not trt & set(_read(outs["monitor_after"] / f"{name}.csv")[0]), name
        for r in _read(outs["labels"] / f"{name}.csv"):
            assert "TRT01PN" not in r and "GRPLBL" not in r
            assert r["TRT01P"] == (f"Group {labels[r['USUBJID']]}" if r["USUBJID"] in labels else ""), name
        for r in _read(outs["arms"] / f"{name}.csv"):
            arm = by_arm.get(arms.get(r["USUBJID"]))
            assert r["TRT01P"] == (arm.name.en if arm else ""), name
            assert r["TRT01PN"] == (_num(arm.dose_score) if arm else ""), name
    # nothing in any file names a drug code, whoever exported it (the pharmacist sees them in the app)
    for out in outs.values():
        for path in out.iterdir():
            if path.suffix in (".csv", ".xpt"):
                data = path.read_bytes()
                assert not any(code.encode() in data for code in codes), path
    for name in NEW:
        _xpt_equals_csv(outs["arms"], name)
        _xpt_equals_csv(outs["statistician"], name)


# ---- the rules, one by one (no Django) ---------------------------------------------------------------

def test_constants_are_the_applications():
    from annulus.visits import selectors

    assert adam_conduct.PLANNED_TRANSPLANT_DAYS == selectors.PLANNED_TRANSPLANT_DAYS


def test_windows_are_the_schedules():
    from annulus.protocol import default_protocol_path, load_protocol
    from annulus.visits.selectors import window_of

    protocol = load_protocol(default_protocol_path())
    lipo, tx = date(2023, 3, 1), date(2023, 3, 22)
    for planned in (tx, tx + timedelta(days=3)):
        ends = adam_conduct.window_ends(protocol.schedule.visits, lipo, planned)
        assert ends == [window_of(pv, lipo, planned, protocol)[2] for pv in protocol.schedule.visits]
    assert adam_conduct.window_ends(protocol.schedule.visits, None, None) == [None] * len(protocol.schedule.visits)


def test_visit_status_rules():
    from annulus.interchange.subject import VisitInfo

    closes, today = date(2024, 6, 30), date(2024, 6, 30)
    status = adam_conduct.visit_status
    done = VisitInfo(visit="m1", outcome="attended", date="2024-06-20", window="in")
    assert status(done, closes, as_of=today, ended_on=date(2024, 1, 1), baseline_gone=True) == "DONE"
    assert status(VisitInfo(visit="m1", outcome="missed"), closes, as_of=today, ended_on=None,
                  baseline_gone=False) == "MISSED"
    assert status(None, closes, as_of=today, ended_on=None, baseline_gone=False) == "NOT DUE"  # last day of window
    assert status(None, closes, as_of=today + timedelta(days=1), ended_on=None, baseline_gone=False) == "MISSED"
    assert status(None, closes, as_of=date(2025, 1, 1), ended_on=closes, baseline_gone=False) == "AFTER EOS"
    assert status(None, closes, as_of=date(2025, 1, 1), ended_on=closes + timedelta(days=1),
                  baseline_gone=False) == "MISSED"
    assert status(None, None, as_of=today, ended_on=None, baseline_gone=False) == "NOT DUE"
    assert status(None, None, as_of=today, ended_on=today, baseline_gone=False) == "AFTER EOS"
    assert status(None, closes, as_of=date(2024, 1, 1), ended_on=None, baseline_gone=True) == "MISSED"


@pytest.mark.req("P-8.4")
def test_reference_range_indicator_is_the_ecrfs():
    from annulus.instruments.labs import assess_panel
    from annulus.protocol import default_protocol_path, load_protocol

    protocol = load_protocol(default_protocol_path())
    for panel in protocol.lab_panels:
        for a in panel.analytes:
            if a.kind == "qualitative":
                values = ["negative", "trace", "1+", "3+"]
            else:
                values = [v for v in (a.low, a.high) if v is not None]
                values += [v + d for v in values for d in (-0.1, 0.1)] + [0]
            for v in values:
                flag = assess_panel(panel.id, {a.id: v}, panel).parts[a.id]["flag"]
                assert adam_safety.nrind(a, v) == flag.upper(), (a.id, v)


@pytest.mark.req("P-8.4")
def test_event_rules():
    from annulus.interchange.subject import Subject

    assert adam_safety.relatedness("possible", {"possible"}) == "RELATED"
    assert adam_safety.relatedness("unlikely", {"possible"}) == "NOT RELATED"
    assert adam_safety.relatedness("not_applicable", {"possible"}) == "NOT RELATED"
    assert adam_safety.relatedness(None, {"possible"}) is None
    assert adam_safety.resulted_in_death({"outcome": "fatal"})
    assert adam_safety.resulted_in_death({"serious_criteria": ["death"], "outcome": "unknown"})
    assert adam_safety.resulted_in_death({"grade": "5"})
    assert not adam_safety.resulted_in_death({"grade": "4", "outcome": "recovered", "serious_criteria": []})
    s = Subject(subject="x-001", screening_number="S1", case_number="001", sex="F", status="withdrawn",
                end_status="withdrawn", end_reason="adverse_event", end_date="2024-03-10")
    events = [(1, {"action_taken": "none"}, "2024-02-01"), (2, {"action_taken": "none"}, "2024-03-01"),
              (3, {"action_taken": "none"}, "2024-03-01"), (4, {"action_taken": "none"}, "2024-03-20")]
    assert adam_safety.withdrawal_events(s, events) == {3}  # the last onset on or before the withdrawal
    acted = [*events[:3], (4, {"action_taken": "withdrawn"}, "2024-03-05")]
    assert adam_safety.withdrawal_events(s, acted) == {4}
    assert adam_safety.withdrawal_events(dataclasses.replace(s, end_adverse_event=1), acted) == {1}
    assert adam_safety.withdrawal_events(dataclasses.replace(s, end_reason="participant_request"), events) == set()
    assert adam_safety.withdrawal_events(dataclasses.replace(s, end_status="completed"), acted) == set()


def test_long_text_is_cut_at_a_character_boundary():
    text = "腰" * 100  # 300 bytes
    assert adam_safety.cut(text) == "腰" * 66 and len(adam_safety.cut(text).encode()) <= 200
    assert adam_safety.cut("") is None and adam_safety.cut("short") == "short"
