"""Saving a visit's forms at once: the same rules as one form, all or nothing, a broken rule
names the form and its field, one lock of the audit chain (P-4.5, X-5.7, X-7.3)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annulus.errors import RuleViolation, RuleViolations

from .test_visits_support import GOOD, at_w1, aware, transplant_dates, trial_participant  # noqa: F401



def _save_all(users, p, forms, **kw):
    from annulus.visits import services as vs

    return vs.save_visit_forms(actor=users["coordinator"], participant_id=p.pk, visit_key=kw.pop("visit", "w1"),
                               forms=forms, **kw)


def _counts():
    from annulus.audit.models import AuditEvent
    from annulus.visits.models import FormRecord, FormRevision

    return FormRecord.objects.count(), FormRevision.objects.count(), AuditEvent.objects.count()


@pytest.mark.req("P-4.5", "X-5.7", "X-7.3")
def test_a_whole_visit_is_saved_complete_with_scores_and_audit(at_w1, users):
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import verify_chain
    from annulus.participants.models import Participant
    from annulus.visits.models import Visit

    p, v = at_w1
    forms = {f: GOOD[f] for f in v.forms}
    records = _save_all(users, p, forms, complete=True, collected_at=aware(v.visit_date))
    assert [r.form_id for r in records] == list(forms)
    assert all(r.pk and r.state == "complete" and r.revision == 1 for r in records)
    assert all(r.revisions.count() == 1 for r in records)
    odi = next(r for r in records if r.form_id == "odi")
    assert odi.computed["score"] is not None  # computed by the instrument, never typed
    assert Visit.objects.get(pk=v.pk).completed_at is not None
    events = list(AuditEvent.objects.filter(participant_id=p.pk, object_type__in=["crf_form", "visit"])
                  .order_by("id"))
    form_events = [e for e in events if e.object_type == "crf_form"]
    assert [e.object_id for e in form_events] == [str(r.pk) for r in records]  # in the order given
    assert events[-1].object_type == "visit" and "completed_at" in events[-1].payload
    assert Participant.objects.get(pk=p.pk).status == "in_follow_up"
    assert verify_chain().ok


@pytest.mark.req("P-4.5", "X-5.7")
def test_one_bad_form_writes_nothing_and_names_form_and_field(at_w1, users):
    p, v = at_w1
    forms = {f: GOOD[f] for f in v.forms}
    forms["sf36"] = {**GOOD["sf36"], "q3": 7}
    forms["vitals"] = {**GOOD["vitals"], "pulse": 900}
    before = _counts()
    with pytest.raises(RuleViolations) as e:
        _save_all(users, p, forms, complete=True)
    # every broken form is named, in the order given, each with its field
    assert [v.field for v in e.value.violations] == ["sf36.q3", "vitals.pulse"]
    assert e.value.field == "sf36.q3"
    assert _counts() == before


@pytest.mark.req("P-4.5")
def test_a_form_not_collected_at_the_visit_is_refused(at_w1, users):
    p, _v = at_w1
    before = _counts()
    with pytest.raises(RuleViolation) as e:
        _save_all(users, p, {"vas": GOOD["vas"], "imaging": GOOD["imaging"]}, complete=True)
    assert e.value.field == "imaging.form"
    assert _counts() == before


@pytest.mark.req("X-5.7", "X-7.3")
def test_drafts_then_completion_and_changes_need_a_reason(at_w1, users):
    p, _v = at_w1
    _save_all(users, p, {"vas": {"vas_mm": 40}, "odi": {"s1": 1}})
    recs = _save_all(users, p, {"vas": {"vas_mm": 40}, "odi": GOOD["odi"]}, complete=True)
    assert [r.state for r in recs] == ["complete", "complete"]
    assert [r.revision for r in recs] == [2, 2]
    # saving the same answers again writes nothing
    before = _counts()
    _save_all(users, p, {"vas": {"vas_mm": 40}, "odi": GOOD["odi"]}, complete=True)
    assert _counts() == before
    with pytest.raises(RuleViolation) as e:
        _save_all(users, p, {"vas": {"vas_mm": 45}, "odi": GOOD["odi"]}, complete=True)
    assert e.value.field == "vas.reason"
    assert _counts() == before
    recs = _save_all(users, p, {"vas": {"vas_mm": 45}, "odi": GOOD["odi"]}, complete=True,
                     reason="transcription error on the paper form")
    assert recs[0].state == "changed" and recs[0].revision == 3
    assert recs[1].revision == 2  # unchanged form: no new revision
    assert recs[0].revisions.order_by("-number").first().reason == "transcription error on the paper form"


@pytest.mark.req("X-7.3")
def test_the_audit_chain_is_locked_once_per_save(at_w1, users):
    p, v = at_w1
    _save_all(users, p, {"vas": {"vas_mm": 40}})  # the first follow-up data moves the participant (its own event)
    forms = {f: GOOD[f] for f in v.forms}
    with CaptureQueriesContext(connection) as q:
        _save_all(users, p, forms, complete=True, collected_at=aware(v.visit_date))
    head_reads = [x for x in q.captured_queries if "audit_audithead" in x["sql"] and x["sql"].startswith("SELECT")]
    event_inserts = [x for x in q.captured_queries if x["sql"].startswith('INSERT INTO "audit_auditevent"')]
    assert len(head_reads) == 1
    assert len(event_inserts) == 1


@pytest.mark.req("P-4.5")
@pytest.mark.parametrize("forms", [{}, None, {f"f{i}": {} for i in range(31)}])
def test_empty_or_oversized_batches_are_refused(at_w1, users, forms):
    p, _v = at_w1
    before = _counts()
    with pytest.raises(RuleViolation) as e:
        _save_all(users, p, forms)
    assert e.value.field == "forms"
    assert _counts() == before


@pytest.mark.req("P-4.5", "X-5.7")
def test_api_saves_a_visit_and_names_the_field_of_a_bad_form(at_w1, users, client_for):
    p, v = at_w1
    c = client_for("coordinator")
    url = f"/api/v1/visits/participants/{p.pk}/visits/w1/forms"
    bad = {"forms": {"vas": {"vas_mm": 101}, "odi": {"s1": 9}}, "complete": True}
    before = _counts()
    r = c.put(url, bad, content_type="application/json")
    assert r.status_code == 400, r.content
    assert [d["field"] for d in r.json()["detail"]] == ["vas.vas_mm", "odi.s1"]
    assert _counts() == before
    good = {"forms": {"vas": GOOD["vas"], "odi": GOOD["odi"]}, "complete": True}
    r = c.put(url, good, content_type="application/json")
    assert r.status_code == 200, r.content
    assert [f["form_id"] for f in r.json()] == ["vas", "odi"]
    assert all(f["state"] == "complete" for f in r.json())
    # a blinded monitor may read but not write
    assert client_for("monitor").put(url, good, content_type="application/json").status_code == 403


@pytest.mark.req("P-4.5")
@pytest.mark.parametrize("key", ["u²", "u٣", "u99999999", "nope"])
def test_odd_visit_keys_get_a_clear_answer(at_w1, client_for, key):
    p, _v = at_w1
    c = client_for("coordinator")
    base = f"/api/v1/visits/participants/{p.pk}/visits/{key}"
    for r in (c.put(base + "/forms", {"forms": {"vas": GOOD["vas"]}}, content_type="application/json"),
              c.patch(base, {"visit_date": "2026-01-01", "reason": "x"}, content_type="application/json"),
              c.put(base + "/forms/vas", {"items": GOOD["vas"]}, content_type="application/json")):
        assert r.status_code in (400, 404), (key, r.status_code, r.content[:200])
        assert r.json()["detail"][0]["message"]


@pytest.mark.req("P-4.5")
def test_a_very_long_form_name_is_refused_without_echoing_it(at_w1, users):
    p, _v = at_w1
    with pytest.raises(RuleViolation) as e:
        _save_all(users, p, {"x" * 200_000: {}})
    assert e.value.field == "forms" and len(e.value.message) < 100


FORM_IDS = ["vas", "odi", "joa", "sf36", "vitals", "blood_routine", "liver_kidney", "immunology", "urinalysis",
            "adverse_events"]


@pytest.mark.req("P-4.5", "X-5.7")
def test_a_visit_saved_at_once_equals_its_forms_saved_one_by_one(at_w1, users):
    """Property: for any choice of forms, order, drafts or completion and partial answers, the
    batch save leaves the same records (state, answers, scores, revisions) as saving each form
    on its own."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, _v = at_w1
    coordinator = users["coordinator"]

    def records(key):
        visit = vs.selectors.get_visit(p.pk, key)
        return {r.form_id: (r.state, r.items, r.computed, r.revision) for r in FormRecord.objects.filter(visit=visit)}

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(FORM_IDS), min_size=1, max_size=6, unique=True),
           st.booleans(), st.integers(min_value=0, max_value=3))
    def check(form_ids, complete, dropped):
        forms = {f: dict(list(GOOD[f].items())[dropped:]) for f in form_ids}
        one, batch = (vs.add_unscheduled_visit(actor=coordinator, participant_id=p.pk, visit_date=_v.visit_date,
                                               reason="property check", forms=form_ids) for _ in range(2))
        outcome_one, outcome_batch = [], None
        for f, items in forms.items():
            try:
                vs.save_form(actor=coordinator, participant_id=p.pk, visit_key=one.key, form_id=f, items=items,
                             complete=complete)
                outcome_one.append(None)
            except RuleViolation as exc:
                outcome_one.append([f"{f}.{v.field}" for v in getattr(exc, "violations", [exc])])
        try:
            vs.save_visit_forms(actor=coordinator, participant_id=p.pk, visit_key=batch.key, forms=forms,
                                complete=complete)
        except RuleViolations as exc:
            outcome_batch = [v.field for v in exc.violations]
        if outcome_batch is None:
            assert outcome_one == [None] * len(forms)
            assert records(one.key) == records(batch.key)
        else:  # all or nothing: the same forms are refused, for the same fields, and nothing is kept
            assert [field for o in outcome_one if o for field in o] == outcome_batch
            assert records(batch.key) == {}

    check()
