"""Day 0 liposuction record (P-4.1): who may have it, its dates and values, corrections."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation


@pytest.fixture
def randomised(make_participant, users):
    from annulus.participants import services as ps
    from annulus.participants.models import Participant

    p = make_participant("enrolled")
    Participant.objects.filter(pk=p.pk).update(enrolled_at=timezone.now() - timedelta(days=6))
    ps.advance(actor=users["investigator"], participant_id=p.pk, target="randomised", reason="test")
    return Participant.objects.get(pk=p.pk)


def _lipo(users, p, **kw):
    from annulus.visits import services as vs

    args = {"performed_on": timezone.localdate() - timedelta(days=2), "fat_volume_ml": 150, "observation_hours": 4}
    args.update(kw)
    return vs.record_liposuction(actor=users["investigator"], participant_id=p.pk, **args)


@pytest.mark.req("P-4.1")
@pytest.mark.parametrize("field,value", [
    ("performed_on", "tomorrow"),
    ("fat_volume_ml", "abc"),
    ("fat_volume_ml", 5000),
    ("observation_hours", -1),
    ("anaesthesia", "spinal"),
])
def test_bad_liposuction_values_are_refused(randomised, users, field, value):
    from annulus.visits.models import Liposuction

    if value == "tomorrow":
        value = timezone.localdate() + timedelta(days=1)
    with pytest.raises(RuleViolation) as e:
        _lipo(users, randomised, **{field: value})
    assert e.value.field == field
    assert not Liposuction.objects.exists()


@pytest.mark.req("P-4.1")
def test_liposuction_not_before_enrolment(randomised, users):
    with pytest.raises(RuleViolation) as e:
        _lipo(users, randomised, performed_on=timezone.localdate() - timedelta(days=30))
    assert e.value.field == "performed_on" and "enrolment" in e.value.message


@pytest.mark.req("P-4.1", "X-4.8")
def test_correction_needs_a_reason_and_keeps_the_first_record(randomised, users):
    from annulus.audit.models import AuditEvent
    from annulus.visits.models import Liposuction
    from annulus.visits.selectors import liposuction_date

    first = _lipo(users, randomised, complications="small haematoma")
    assert first.fat_volume_ml == 150 and first.anaesthesia == "local" and first.observation_hours == 4
    with pytest.raises(RuleViolation) as e:
        _lipo(users, randomised, performed_on=timezone.localdate() - timedelta(days=3))
    assert e.value.field == "reason"
    _lipo(users, randomised, performed_on=timezone.localdate() - timedelta(days=3), reason="date mistyped")
    assert liposuction_date(randomised.pk) == timezone.localdate() - timedelta(days=3)
    assert Liposuction.objects.filter(participant=randomised).count() == 2
    assert Liposuction.objects.get(pk=first.pk).superseded
    assert AuditEvent.objects.filter(object_type="liposuction").count() == 2
