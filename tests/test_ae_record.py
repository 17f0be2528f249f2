"""Recording adverse events: fields, rules between fields, the consent-to-follow-up window, and
follow-up revisions that keep the history (audited, reason required)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.safety import services
from annulus.safety.models import AdverseEvent, AdverseEventRevision, SaeReport

pytestmark = pytest.mark.django_db


def ae_fields(**over):
    now = timezone.now()
    base = dict(term="Injection-site pain", onset_at=now - timedelta(days=2), end_at=None, serious=False,
                serious_criteria=[], grade=1, causality_liposuction="not_related", causality_injection="probable",
                causality_product="possible", expectedness="expected", action_taken="none", outcome="recovering")
    base.update(over)
    return base


def counts():
    return (AdverseEvent.objects.count(), AdverseEventRevision.objects.count(), SaeReport.objects.count(),
            AuditEvent.objects.count())


@pytest.mark.req("P-6.1", "X-6.5")
def test_record_an_adverse_event_with_all_fields(users, make_participant):
    p = make_participant("enrolled")
    ae = services.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                       **ae_fields(meddra_pt_code="10022086", meddra_version="27.0", grade=2))
    assert ae.number == 1 and ae.label == "001-AE01"
    assert ae.revision == 1 and ae.revisions.count() == 1
    assert (ae.causality_liposuction, ae.causality_injection, ae.causality_product) == ("not_related", "probable", "possible")
    ev = AuditEvent.objects.filter(object_type="adverse_event", object_id=str(ae.pk)).get()
    assert ev.action == "create" and ev.participant_id == p.pk
    second = services.record_adverse_event(actor=users["coordinator"], participant_id=p.pk, **ae_fields(term="Bruising"))
    assert second.number == 2


@pytest.mark.req("P-6.1", "P-2.3")
def test_onset_before_consent_is_refused_and_nothing_written(users, make_participant):
    p = make_participant("enrolled")
    consent = p.consents.first().consented_at
    before = counts()
    with pytest.raises(RuleViolation) as exc:
        services.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                      **ae_fields(onset_at=consent - timedelta(hours=1)))
    assert exc.value.field == "onset_at" and "before informed consent" in exc.value.message
    assert counts() == before


@pytest.mark.req("P-6.1", "P-2.3")
def test_no_adverse_event_before_any_consent(users, make_participant):
    p = make_participant("pre_screened")
    before = counts()
    with pytest.raises(RuleViolation) as exc:
        services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **ae_fields())
    assert exc.value.field == "participant" and "consent" in exc.value.message
    assert counts() == before


@pytest.mark.req("P-6.1")
def test_events_collected_for_consented_people_in_screening(users, make_participant):
    p = make_participant("consented")
    ae = services.record_adverse_event(actor=users["coordinator"], participant_id=p.pk,
                                       **ae_fields(onset_at=timezone.now() - timedelta(days=1)))
    assert ae.participant_id == p.pk


@pytest.mark.req("P-6.1")
def test_onset_after_end_of_follow_up_is_refused(users, make_participant):
    from annulus.participants import services as ps

    p = make_participant("enrolled")
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate() - timedelta(days=3),
                category="participant_request", details="moved away")
    with pytest.raises(RuleViolation) as exc:
        services.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                      **ae_fields(onset_at=timezone.now() - timedelta(days=1)))
    assert exc.value.field == "onset_at" and "end of follow-up" in exc.value.message
    # an event that began before the withdrawal can still be entered late
    ae = services.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                       **ae_fields(onset_at=timezone.now() - timedelta(days=5)))
    assert ae.pk


BAD = [
    ("end before onset", dict(end_at=timezone.now() - timedelta(days=3), outcome="recovered"), "end_at", "before the onset"),
    ("grade 5 without fatal", dict(grade=5, outcome="not_recovered"), "outcome", "grade 5"),
    ("fatal but grade 3", dict(grade=3, outcome="fatal", end_at=timezone.now() - timedelta(days=1),
                               serious=True, serious_criteria=["death"], first_knowledge_at=timezone.now() - timedelta(hours=20)),
     "grade", "grade 5"),
    ("serious without criterion", dict(serious=True, serious_criteria=[], first_knowledge_at=timezone.now()),
     "serious_criteria", "at least one"),
    ("criterion but not serious", dict(serious=False, serious_criteria=["hospitalisation"]), "serious", "serious"),
    ("unknown criterion", dict(serious=True, serious_criteria=["scary"], first_knowledge_at=timezone.now()),
     "serious_criteria", "unknown"),
    ("serious without knowledge time", dict(serious=True, serious_criteria=["hospitalisation"]),
     "first_knowledge_at", "required"),
    ("knowledge in the future", dict(serious=True, serious_criteria=["hospitalisation"],
                                     first_knowledge_at=timezone.now() + timedelta(hours=2)),
     "first_knowledge_at", "future"),
    ("knowledge before onset", dict(serious=True, serious_criteria=["hospitalisation"],
                                    first_knowledge_at=timezone.now() - timedelta(days=5)),
     "first_knowledge_at", "before the onset"),
    ("onset in the future", dict(onset_at=timezone.now() + timedelta(days=1)), "onset_at", "future"),
    ("grade 6", dict(grade=6), "grade", "1 to 5"),
    ("causality unknown", dict(causality_product="maybe"), "causality_product", "must be one of"),
    ("recovered without end", dict(outcome="recovered"), "end_at", "required"),
    ("ended but recovering", dict(end_at=timezone.now() - timedelta(days=1)), "outcome", "end date"),
    ("meddra code malformed", dict(meddra_pt_code="12345", meddra_version="27.0"), "meddra_pt_code", "8 digits"),
    ("meddra without version", dict(meddra_pt_code="10022086"), "meddra_version", "required"),
    ("empty term", dict(term="  "), "term", "required"),
    ("naive onset", dict(onset_at=timezone.now().replace(tzinfo=None) - timedelta(days=1)), "onset_at", "time zone"),
    ("death criterion not fatal", dict(serious=True, serious_criteria=["death"], first_knowledge_at=timezone.now()),
     "outcome", "fatal"),
]


@pytest.mark.req("P-6.1", "X-6.5", "P-6.2")
@pytest.mark.parametrize("name,over,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_field_and_writes_nothing(users, make_participant, name, over, field, words):
    p = make_participant("enrolled")
    before = counts()
    with pytest.raises(RuleViolation) as exc:
        services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **ae_fields(**over))
    assert exc.value.field == field, exc.value
    assert words in exc.value.message
    assert counts() == before


@pytest.mark.req("P-6.1", "X-6.5")
def test_fatal_event_is_grade_5_serious_with_death(users, make_participant):
    p = make_participant("enrolled")
    now = timezone.now()
    ae = services.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk,
        **ae_fields(term="Sepsis", grade=5, outcome="fatal", end_at=now - timedelta(hours=2), serious=True,
                    serious_criteria=["hospitalisation", "death"], first_knowledge_at=now - timedelta(hours=1),
                    causality_product="unlikely", action_taken="hospitalised"))
    assert ae.serious_criteria == ["death", "hospitalisation"]  # canonical order
    assert ae.fatal


@pytest.mark.req("P-6.1", "X-6.5")
def test_follow_up_adds_a_revision_with_reason_and_audit(users, make_participant):
    p = make_participant("enrolled")
    ae = services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **ae_fields())
    end = timezone.now() - timedelta(hours=3)
    with pytest.raises(RuleViolation) as exc:
        services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason=" ",
                                      outcome="recovered", end_at=end)
    assert exc.value.field == "reason"
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="resolved at follow-up call",
                                  outcome="recovered", end_at=end)
    ae.refresh_from_db()
    assert ae.revision == 2 and ae.outcome == "recovered"
    revs = list(ae.revisions.order_by("revision"))
    assert revs[0].data["outcome"] == "recovering" and revs[1].data["outcome"] == "recovered"
    assert revs[1].changes["outcome"] == ["recovering", "recovered"] and revs[1].reason == "resolved at follow-up call"
    ev = AuditEvent.objects.filter(object_type="adverse_event", action="change").get()
    assert ev.reason == "resolved at follow-up call"
    # nothing changed: refused, no revision
    with pytest.raises(RuleViolation, match="nothing was changed"):
        services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="again")
    # a bad follow-up writes nothing
    before = counts()
    with pytest.raises(RuleViolation) as exc:
        services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="typo",
                                      end_at=ae.onset_at - timedelta(hours=1))
    assert exc.value.field == "end_at"
    assert counts() == before
