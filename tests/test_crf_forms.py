"""eCRF entry: computed scores, drafts, completion, changes with a reason, and every bad input
of the issue refused naming the field with nothing written (P-4.5, P-5.1-P-5.6, X-5.7)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation

from .test_visits_support import GOOD, at_w1, aware, transplant_dates, trial_participant  # noqa: F401



def _save(users, p, form_id, items, **kw):
    from annulus.visits import services as vs

    return vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=kw.pop("visit", "w1"),
                        form_id=form_id, items=items, **kw)


def _nothing_written():
    from annulus.audit.models import AuditEvent
    from annulus.visits.models import FormRecord, FormRevision

    return FormRecord.objects.count(), FormRevision.objects.count(), AuditEvent.objects.filter(object_type="crf_form").count()


@pytest.mark.req("P-5.1", "X-5.7")
@pytest.mark.parametrize("value", [-1, 101, "abc", "1e9", ""])
def test_bad_vas_is_refused_naming_the_field(at_w1, users, value):
    p, _v = at_w1
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "vas", {"vas_mm": value}, complete=True)
    assert e.value.field == "vas_mm"
    assert _nothing_written() == before


@pytest.mark.req("P-5.1", "X-5.7")
def test_vas_score_is_computed_with_change_from_baseline(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=40, transplant_days_ago=12)
    tx = transplant_dates[p.pk]
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline", visit_date=tx - timedelta(days=2))
    _save(users, p, "vas", {"vas_mm": "64"}, visit="baseline", complete=True)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=tx + timedelta(days=7))
    rec = _save(users, p, "vas", {"vas_mm": 50}, complete=True)
    assert rec.computed["score"] == 50.0
    assert rec.computed["change_from_baseline"] == -14.0


@pytest.mark.req("P-5.2", "X-5.7")
def test_odi_with_three_sections_missing_cannot_be_completed(at_w1, users):
    p, _v = at_w1
    items = {f"s{i}": 2 for i in range(1, 8)}  # s8, s9, s10 missing
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "odi", items, complete=True)
    assert e.value.field == "s8"
    assert "too many missing sections" in e.value.message
    assert _nothing_written() == before
    # one missing section is the published rule: scored over 45
    rec = _save(users, p, "odi", {**items, "s8": 2, "s9": 2}, complete=True)
    assert rec.computed["score"] == pytest.approx(100 * 18 / 45)


@pytest.mark.req("P-5.4", "X-5.7")
def test_sf36_item_coded_7_is_refused(at_w1, users):
    p, _v = at_w1
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "sf36", {**GOOD["sf36"], "q7": 7})
    assert e.value.field == "q7"
    assert _nothing_written() == before


@pytest.mark.req("P-5.4", "X-5.7")
def test_sf36_scales_and_summaries_are_computed(at_w1, users):
    p, _v = at_w1
    rec = _save(users, p, "sf36", GOOD["sf36"], complete=True)
    assert rec.computed["PF"] == 0.0 and rec.computed["GH"] is not None
    assert rec.computed["PCS"] is not None and rec.computed["MCS"] is not None


@pytest.mark.req("P-5.3")
def test_joa_total_needs_every_item(at_w1, users):
    p, _v = at_w1
    items = dict(GOOD["joa"])
    items.pop("bladder")
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "joa", items, complete=True)
    assert e.value.field == "bladder"
    rec = _save(users, p, "joa", GOOD["joa"], complete=True)
    assert rec.computed["score"] == 18  # 5 + 6 + 7 + 0
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "joa", {**GOOD["joa"], "bladder": -2}, complete=True, reason="x")
    assert e.value.field == "bladder"


@pytest.mark.req("P-4.5", "P-5.5", "X-4.8")
def test_imaging_at_a_visit_without_imaging_is_refused(at_w1, users):
    p, _v = at_w1
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "imaging", GOOD["imaging"], complete=True)
    assert e.value.field == "form"
    assert "not collected" in e.value.message
    assert _nothing_written() == before


@pytest.mark.req("P-5.5")
def test_imaging_scores(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=230, transplant_days_ago=183)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m6", visit_date=timezone.localdate())
    rec = _save(users, p, "imaging", {**GOOD["imaging"], "modic_inferior": "3"}, visit="m6", complete=True)
    c = rec.computed
    assert c["modic"]["parts"] == {"superior_endplate": "II", "inferior_endplate": "III"}
    assert c["pfirrmann"]["score"] == 4.0
    assert c["disc_height"]["score"] == pytest.approx((10.5 - 7.5) / 10.5 * 100)
    assert c["rom"]["score"] == 11.0


@pytest.mark.req("P-5.6", "X-5.7")
def test_lab_value_with_the_wrong_unit_is_refused(at_w1, users):
    p, _v = at_w1
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "blood_routine", {**GOOD["blood_routine"], "hgb__unit": "g/dL"})
    assert e.value.field == "hgb__unit"
    assert "g/L" in e.value.message
    assert _nothing_written() == before


@pytest.mark.req("P-5.6")
def test_abnormal_lab_needs_a_judgement_and_significant_prompts_an_ae(at_w1, users):
    from annulus.visits.crf import significant_analytes

    p, _v = at_w1
    items = {**GOOD["liver_kidney"], "alt": 130}
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "liver_kidney", items, complete=True)
    assert e.value.field == "alt__cs"
    rec = _save(users, p, "liver_kidney", {**items, "alt__cs": "yes"}, complete=True)
    assert rec.computed["parts"]["alt"]["flag"] == "high"
    assert significant_analytes(rec.computed) == ["alt"]
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "liver_kidney", {**items, "alt": 22, "alt__cs": "yes"}, complete=True, reason="typo")
    assert e.value.field == "alt__cs"


@pytest.mark.req("P-5.6")
def test_vitals_outside_plausibility_limits(at_w1, users):
    p, _v = at_w1
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "vitals", {**GOOD["vitals"], "temperature": 98.6})
    assert e.value.field == "temperature"
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "vitals", {**GOOD["vitals"], "diastolic_bp": 130, "systolic_bp": 120})
    assert e.value.field == "diastolic_bp"


@pytest.mark.req("X-5.7", "P-4.5")
def test_change_after_completion_needs_a_reason_and_keeps_each_revision(at_w1, users):
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import decoded
    from annulus.visits.models import FormRevision

    p, _v = at_w1
    draft = _save(users, p, "vas", {"vas_mm": 40})
    assert draft.state == "draft" and draft.submitted_at is None
    done = _save(users, p, "vas", {"vas_mm": 40}, complete=True)
    assert done.state == "complete" and done.submitted_at is not None
    before = _nothing_written()
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "vas", {"vas_mm": 45}, complete=True)
    assert e.value.field == "reason"
    assert _nothing_written() == before
    changed = _save(users, p, "vas", {"vas_mm": 45}, complete=True, reason="transcription error, source says 45")
    assert changed.state == "changed" and changed.revision == 3
    assert [r.items["vas_mm"] for r in FormRevision.objects.filter(form=changed)] == [40, 40, 45]
    event = AuditEvent.objects.filter(object_type="crf_form").order_by("-id").first()
    body = decoded(event)
    assert body["changes"]["vas_mm"] == [40, 45]
    assert event.reason == "transcription error, source says 45"
    # identical save: nothing new
    _save(users, p, "vas", {"vas_mm": 45}, complete=True, reason="again")
    assert FormRevision.objects.filter(form=changed).count() == 3


@pytest.mark.req("X-5.7")
def test_unknown_item_and_typed_score_are_refused(at_w1, users):
    p, _v = at_w1
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "odi", {**GOOD["odi"], "score": 32})
    assert e.value.field == "score"


@pytest.mark.req("P-4.5")
def test_visit_forms_come_from_table_1(at_w1, users):
    from annulus.trial.selectors import active_protocol

    _p, v = at_w1
    protocol = active_protocol()
    assert v.forms == list(protocol.schedule.visit("w1").forms)
    assert "imaging" in protocol.schedule.visit("m6").forms and "imaging" not in protocol.schedule.visit("m3").forms
    assert "adverse_events" not in protocol.schedule.visit("baseline").forms


@pytest.mark.req("P-4.7")
def test_collected_and_submitted_times(at_w1, users):
    p, v = at_w1
    when = aware(v.visit_date, 9)
    rec = _save(users, p, "vitals", GOOD["vitals"], collected_at=when)
    assert rec.collected_at == when and rec.submitted_at is None
    with pytest.raises(RuleViolation) as e:
        _save(users, p, "vitals", GOOD["vitals"], collected_at=when + timedelta(days=30))
    assert e.value.field == "collected_at"
