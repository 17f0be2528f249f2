"""Form, visit and casebook locks by the data manager (X-7.5): each level refuses the writes under
it, an unlock needs a reason and keeps the lock's row, every step is audited, only the data
manager may lock, and bad input (no reason, open work, a second lock, an unknown visit or form)
is refused naming the field, with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import NotPermitted, RuleViolation
from annulus.participants import selectors
from annulus.participants import services as ps
from annulus.participants.locks import RecordLocked, assert_record_writable
from annulus.participants.models import RecordLock

from .lock_support import audit_head, row_counts
from .test_visits_support import GOOD, aware, trial_participant, transplant_dates  # noqa: F401 (fixtures)

REASON = "The monitor found a transcription error"


@pytest.fixture
def followed(trial_participant, users):
    """A participant in follow-up whose 1-week visit is done: VAS complete, ODI a draft."""
    from annulus.visits import services as vs

    from annulus.participants.models import Consent

    p = trial_participant(lipo_days_ago=40, transplant_days_ago=19)
    # set-up: consent well before the visits (the fixture's consent is 9 days old), so that no
    # edit check raises a query on the visit date
    Consent.objects.filter(participant=p).update(consented_at=timezone.now() - timedelta(days=70))
    day = timezone.localdate() - timedelta(days=12)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=day)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(day))
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items={"s1": 2}, collected_at=aware(day))
    return p


def _save_vas(users, p, value=30):
    from annulus.visits import services as vs

    return vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                        items={"vas_mm": value}, complete=True, reason="typing error in the VAS")


def _refused(fn, field="lock"):
    counts, head = row_counts(), audit_head()
    with pytest.raises(RuleViolation) as err:
        fn()
    assert err.value.field == field, err.value
    assert row_counts() == counts and audit_head() == head, "something was written"
    return err.value


@pytest.mark.req("X-7.5")
def test_a_form_lock_refuses_that_form_only(followed, users):
    dm = users["data_manager"]
    lock = ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    assert lock.level == "form" and lock.locked_by == dm and lock.unlocked_at is None
    err = _refused(lambda: _save_vas(users, followed))
    assert isinstance(err, RecordLocked) and err.status == 409
    assert "VAS" in err.message and dm.username in err.message
    assert timezone.localtime(lock.locked_at).strftime("%Y-%m-%d %H:%M") in err.message
    # the other forms of the visit stay open
    from annulus.visits import services as vs

    vs.save_form(actor=users["coordinator"], participant_id=followed.pk, visit_key="w1", form_id="odi",
                 items={f"s{i}": 1 for i in range(1, 11)}, complete=True)
    # a visit saved as a whole is refused when one of its forms is locked, and writes nothing
    _refused(lambda: vs.save_visit_forms(actor=users["coordinator"], participant_id=followed.pk, visit_key="w1",
                                         forms={"joa": GOOD["joa"], "vas": {"vas_mm": 10}}, reason="typing error"))


@pytest.mark.req("X-7.5")
def test_a_visit_lock_refuses_its_forms_and_its_date(followed, users):
    from annulus.visits import services as vs

    vs.save_form(actor=users["coordinator"], participant_id=followed.pk, visit_key="w1", form_id="odi",
                 items={f"s{i}": 1 for i in range(1, 11)}, complete=True)
    lock = ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit="w1")
    assert lock.level == "visit"
    err = _refused(lambda: _save_vas(users, followed))
    assert "1 week" in err.message
    _refused(lambda: vs.correct_visit_date(actor=users["coordinator"], participant_id=followed.pk, visit_key="w1",
                                           visit_date=timezone.localdate() - timedelta(days=11), reason="wrong day"))
    # another visit of the same participant is not locked
    vs.book_visit(actor=users["coordinator"], participant_id=followed.pk, visit_id="m1",
                  on=timezone.localdate() + timedelta(days=10))


@pytest.mark.req("X-7.5")
def test_a_casebook_lock_refuses_every_write_of_that_participant(followed, users, make_participant):
    from annulus.safety import services as ss
    from annulus.visits import services as vs

    from annulus.visits.models import FormRecord

    FormRecord.objects.filter(participant=followed, state="draft").update(state="complete")  # set-up: no open work
    ps.lock_record(actor=users["data_manager"], participant_id=followed.pk)
    err = _refused(lambda: _save_vas(users, followed))
    assert "casebook" in err.message
    _refused(lambda: ps.withdraw(actor=users["investigator"], participant_id=followed.pk,
                                 withdrawn_on=timezone.localdate(), category="participant_request", details="moved"))
    _refused(lambda: ss.record_adverse_event(actor=users["investigator"], participant_id=followed.pk,
                                             onset_at=timezone.now() - timedelta(hours=2), term="Headache",
                                             serious=False, grade=1, causality_liposuction="not_related",
                                             causality_injection="not_related", causality_product="not_related",
                                             expectedness="expected", action_taken="none", outcome="recovering"))
    _refused(lambda: vs.book_visit(actor=users["coordinator"], participant_id=followed.pk, visit_id="m1",
                                   on=timezone.localdate() + timedelta(days=10)))
    # another participant is not affected
    other = make_participant("consented")
    ps.enter_evidence(actor=users["coordinator"], participant_id=other.pk, values={"vas_mm": 66},
                      collected_on=timezone.localdate())
    with pytest.raises(RecordLocked):
        assert_record_writable(followed.pk, "m3", "sf36")
    assert_record_writable(other.pk)


@pytest.mark.req("X-7.5")
def test_screening_forms_lock_one_by_one(make_participant, users):
    p = make_participant("screening")
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="screening", form="screening")
    _refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 70},
                                       collected_on=timezone.localdate(), reason="re-measured"))
    # consent is another form of the screening visit
    ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(hours=1), taken_by=users["investigator"])


@pytest.mark.req("X-7.5")
def test_unlock_needs_a_reason_closes_the_row_and_a_new_lock_adds_one(followed, users):
    dm = users["data_manager"]
    first = ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    for reason in ("", "   ", "ok"):
        _refused(lambda: ps.unlock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas",
                                          reason=reason), field="reason")
    ps.unlock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas", reason=REASON)
    first.refresh_from_db()
    assert first.unlocked_by == dm and first.unlocked_at is not None and first.unlock_reason == REASON
    assert _save_vas(users, followed).items["vas_mm"] == 30  # writable again
    second = ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    assert second.pk != first.pk
    assert list(RecordLock.objects.filter(participant=followed).order_by("id")) == [first, second]
    assert selectors.locked_records([followed.pk]) == {(followed.pk, "w1", "vas"): second}
    # unlocking what is not locked
    _refused(lambda: ps.unlock_record(actor=dm, participant_id=followed.pk, visit="w1", form="odi", reason=REASON))


@pytest.mark.req("X-7.5")
def test_lock_and_unlock_are_audited_in_the_same_transaction(followed, users):
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import decoded

    dm = users["data_manager"]
    lock = ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    ps.unlock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas", reason=REASON)
    events = list(AuditEvent.objects.filter(object_type="record_lock", object_id=str(lock.pk)).order_by("id"))
    assert [(e.actor_username, e.participant_id) for e in events] == [(dm.username, followed.pk)] * 2
    assert decoded(events[0])["changes"]["locked"] == [False, True]
    assert decoded(events[1])["changes"]["locked"] == [True, False] and events[1].reason == REASON
    # a lock whose audit event cannot be written is not kept
    from unittest import mock

    with mock.patch("annulus.audit.services.record", side_effect=RuntimeError("audit down")):
        with pytest.raises(RuntimeError):
            ps.lock_record(actor=dm, participant_id=followed.pk, visit="m1")
    assert not RecordLock.objects.filter(participant=followed, visit="m1").exists()


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("role", ["investigator", "coordinator", "monitor", "auditor", "admin", "pharmacist"])
def test_only_the_data_manager_locks_and_unlocks(followed, users, role):
    ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit="w1", form="vas")
    counts = row_counts()
    with pytest.raises(NotPermitted):
        ps.lock_record(actor=users[role], participant_id=followed.pk, visit="m1")
    with pytest.raises(NotPermitted):
        ps.unlock_record(actor=users[role], participant_id=followed.pk, visit="w1", form="vas", reason=REASON)
    assert row_counts() == counts


@pytest.mark.req("X-7.5")
def test_locking_with_open_work_is_refused_listing_it(followed, users):
    from annulus.safety import services as ss

    dm = users["data_manager"]
    err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1"))
    assert "draft form" in err.message and "Oswestry" in err.message
    err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="odi"))
    assert "Oswestry" in err.message
    _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk))
    # the VAS form has no open work: it may be locked
    ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    # an adverse-event task still open keeps the adverse-event log and the casebook from locking
    ss.open_ae_task(actor=users["investigator"], participant_id=followed.pk, key="test:lock", source="ae_review",
                    description="AE review = yes")
    err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, form="adverse_event"))
    assert "AE review = yes" in err.message


@pytest.mark.req("X-7.5")
def test_locking_twice_is_refused_naming_the_lock(followed, users):
    dm = users["data_manager"]
    ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
    err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas"))
    assert isinstance(err, RecordLocked) and dm.username in err.message
    # a form inside a locked visit is already locked by it
    ps.lock_record(actor=dm, participant_id=followed.pk, visit="m1")
    err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, visit="m1", form="vas"))
    assert "1 month" in err.message


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("visit, form, field", [
    ("m99", "", "visit"), ("w1", "nonsense", "form"), ("w1", "liposuction", "form"), ("", "vas", "form"),
    ("u7", "", "visit"), ("screening", "vas", "form"), ("x" * 300, "", "visit"),
])
def test_unknown_visit_or_form_is_refused(followed, users, visit, form, field):
    _refused(lambda: ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit=visit, form=form),
             field=field)


@pytest.mark.req("X-7.5")
def test_unknown_participant_is_refused(users):
    _refused(lambda: ps.lock_record(actor=users["data_manager"], participant_id=987654), field="participant")


@pytest.mark.req("X-7.5")
def test_unscheduled_visits_lock_once_recorded(followed, users):
    from annulus.visits import services as vs

    _refused(lambda: ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit="u1"),
             field="visit")
    vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=followed.pk,
                             visit_date=timezone.localdate() - timedelta(days=1), reason="pain flare", forms=["vas"])
    ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit="u1")
    _refused(lambda: vs.save_form(actor=users["coordinator"], participant_id=followed.pk, visit_key="u1",
                                  form_id="vas", items={"vas_mm": 40}))


@pytest.mark.req("X-7.5")
def test_the_trial_lock_is_the_last_level(followed, users):
    """After the database lock no record lock changes either."""
    from annulus.trial.lock import TrialLocked
    from annulus.trial.models import TrialState

    TrialState.objects.filter(id=1).update(state="locked")  # set-up: the signatures are tested elsewhere
    with pytest.raises(TrialLocked):
        ps.lock_record(actor=users["data_manager"], participant_id=followed.pk, visit="w1", form="vas")


@pytest.mark.req("X-7.5", "X-7.4")
def test_an_open_query_keeps_its_record_from_locking_until_closed(followed, users):
    from annulus.queries import services as qs

    dm = users["data_manager"]
    q = qs.raise_query(actor=users["monitor"], participant_id=followed.pk, visit="w1", form="vas", item="vas_mm",
                       text="Source says 35 mm; please check.", assigned_to="coordinator")
    for target in (dict(visit="w1", form="vas"), dict(visit="w1"), dict()):
        err = _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, **target))
        assert "1 open query on" in err.message and "VAS" in err.message, (target, err.message)
    # an answered query is still open work; once closed, the form locks
    qs.answer_query(actor=users["coordinator"], query_id=q.pk, text="Checked the source: 35 mm is right.")
    _refused(lambda: ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas"))
    qs.close_query(actor=users["monitor"], query_id=q.pk, text="Answer accepted.")
    ps.lock_record(actor=dm, participant_id=followed.pk, visit="w1", form="vas")
