"""X-7.5: the principal investigator signs a participant's casebook (21 CFR 11.50/11.70/11.100/
11.200): user name and password re-entered, the meaning kept, bound to the SHA-256 of the
content; a later change invalidates the signature (with what changed) until it is signed again.
Bad input: a wrong password counts towards the lockout; someone else's casebook signature
(another user's name, a sub-investigator, a coordinator) is refused; nothing is written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.casebooks import selectors, services
from annulus.casebooks.models import CasebookSignature
from annulus.errors import NotPermitted, RuleViolation
from tests.conftest import TEST_PASSWORD

from .test_visits_support import at_w1, aware, transplant_dates, trial_participant  # noqa: F401

pytestmark = pytest.mark.req("X-7.5")


def _sign(users, p, who="pi", **kw):
    return services.sign_casebook(actor=users[who], participant_id=p.pk, username=kw.pop("username", users[who].username),
                                  password=kw.pop("password", TEST_PASSWORD), **kw)


def _events(obj_type="casebook_signature"):
    return AuditEvent.objects.filter(object_type=obj_type).count()


def test_sign_binds_the_content_hash_and_is_audited(users, make_participant):
    p = make_participant("enrolled")
    assert selectors.signature_status([p.pk]) == {p.pk: "unsigned"}
    before = _events()
    s = _sign(users, p)
    assert s.content_hash == selectors.content_hash(p) == selectors.hash_of(s.content)
    assert len(s.content_hash) == 64
    assert s.meaning == "I approve the data in this casebook as complete and accurate"
    assert s.signed_by == users["pi"] and s.signer_name == "t_pi"
    assert abs((s.signed_at - timezone.now()).total_seconds()) < 60
    assert selectors.signature_status([p.pk]) == {p.pk: "signed"}
    assert _events() == before + 1
    ev = AuditEvent.objects.filter(object_type="casebook_signature").order_by("-id").first()
    assert ev.participant_id == p.pk and "I approve the data" in ev.payload and s.content_hash in ev.payload
    # signing an unchanged casebook again is refused: nothing new to sign
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p)
    assert exc.value.field == "casebook"
    assert CasebookSignature.objects.filter(participant=p).count() == 1


def test_content_is_deterministic_and_holds_no_allocation(users, make_participant):
    p = make_participant("enrolled")
    a, b = selectors.casebook_content(p), selectors.casebook_content(p)
    assert selectors.canonical_json(a) == selectors.canonical_json(b)
    text = selectors.canonical_json(a)
    for word in ('"arm"', "group_label", "recipe", "level2"):
        assert word not in text
    assert a["participant"]["screening_number"] == p.screening_number
    assert a["eligibility"]["outcome"] == "eligible"
    assert "vas_mm" in a["screening_evidence"]


def test_a_change_invalidates_the_signature_visibly_and_a_new_one_is_asked_for(users, make_participant):
    from annulus.participants import services as ps

    p = make_participant("enrolled")
    first = _sign(users, p)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Moved to another city")
    assert selectors.signature_status([p.pk]) == {p.pk: "invalidated"}
    st = selectors.status_of(p)
    assert st["state"] == "invalidated" and st["signature"].pk == first.pk
    paths = [path for path, _old, _new in st["changes"]]
    assert ("end_of_study", "status") in paths
    assert any(path[:2] == ("end_of_study", "withdrawal") for path in paths)
    # the pre-lock checklist lists it
    from annulus.casebooks import lock_checklist

    items = {i["key"]: i for i in lock_checklist.open_items()}
    assert f"casebook:{p.pk}" in items and "invalidated" in items[f"casebook:{p.pk}"]["label"]
    # re-sign: a new row, the first kept
    second = _sign(users, p)
    assert second.pk != first.pk and second.content_hash != first.content_hash
    assert CasebookSignature.objects.filter(participant=p).count() == 2
    assert selectors.signature_status([p.pk]) == {p.pk: "signed"}
    assert f"casebook:{p.pk}" not in {i["key"] for i in lock_checklist.open_items()}


def test_a_form_change_is_named_in_the_changes(users, at_w1):
    from annulus.visits import services as vs

    p, v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="vas",
                 items={"vas_mm": 40}, complete=True, collected_at=aware(v.visit_date))
    _sign(users, p)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="vas",
                 items={"vas_mm": 35}, complete=True, collected_at=aware(v.visit_date), reason="transcription error")
    st = selectors.status_of(p)
    assert st["state"] == "invalidated"
    found = {path: (old, new) for path, old, new in st["changes"]}
    assert found[("visits", "w1", "forms", "vas", "items", "vas_mm")] == (40, 35)


def test_wrong_password_counts_towards_the_lockout_and_writes_nothing(users, make_participant):
    from annulus.accounts.backends import is_locked
    from annulus.accounts.models import LoginAttempt

    p = make_participant("enrolled")
    before = LoginAttempt.objects.filter(username="t_pi", success=False).count()
    failed_events = AuditEvent.objects.filter(action="login_failed").count()
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p, password="not-the-password")
    assert exc.value.field == "password"
    assert LoginAttempt.objects.filter(username="t_pi", success=False).count() == before + 1
    assert AuditEvent.objects.filter(action="login_failed").count() == failed_events + 1
    assert not CasebookSignature.objects.exists()
    for _ in range(4):
        with pytest.raises(RuleViolation):
            _sign(users, p, password="still wrong")
    assert is_locked("t_pi")
    with pytest.raises(RuleViolation) as exc:  # locked: even the right password cannot sign
        _sign(users, p)
    assert "locked" in exc.value.message
    assert not CasebookSignature.objects.exists()


def test_someone_elses_casebook_signature_is_refused(users, make_participant):
    p = make_participant("enrolled")
    before = _events()
    # the PI typing another user's name: bad input naming the field (the PI may sign, as themselves)
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p, username="t_investigator")
    assert exc.value.field == "username" and exc.value.status == 400 and "signed-in user" in exc.value.message
    # a sub-investigator (not the principal investigator), with their own correct password
    with pytest.raises(services.NotTheSigner) as exc:
        _sign(users, p, who="investigator")
    assert "principal investigator" in exc.value.message
    # a coordinator may not sign at all
    with pytest.raises(NotPermitted):
        _sign(users, p, who="coordinator")
    # a missing name and password are both named at once
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p, username="", password="")
    assert {v.field for v in exc.value.violations} == {"username", "password"}
    assert not CasebookSignature.objects.exists() and _events() == before


def test_signing_a_casebook_that_changed_since_it_was_read_is_refused(users, make_participant):
    from annulus.participants import services as ps

    p = make_participant("enrolled")
    seen = selectors.content_hash(p)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="other", details="Stopped coming")
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p, content_hash=seen)
    assert exc.value.field == "content_hash"
    assert not CasebookSignature.objects.exists()
    assert _sign(users, p, content_hash=selectors.content_hash(p)).content_hash != seen


def test_signing_is_refused_after_the_database_lock(users, make_participant):
    from annulus.trial.lock import TrialLocked
    from annulus.trial.models import TrialState

    p = make_participant("enrolled")
    TrialState.objects.update_or_create(id=1, defaults={"state": "locked"})
    with pytest.raises(TrialLocked):
        _sign(users, p)
    assert not CasebookSignature.objects.exists()


def test_nothing_to_sign_before_consent(users, make_participant):
    p = make_participant("pre_screened")
    with pytest.raises(RuleViolation) as exc:
        _sign(users, p)
    assert exc.value.field == "casebook"


def test_signature_status_of_many_casebooks_costs_a_fixed_number_of_queries(users, make_participant):
    people = [make_participant("enrolled") for _ in range(3)]
    for p in people[:2]:
        _sign(users, p)
    with CaptureQueriesContext(connection) as few:
        st = selectors.signature_status([p.pk for p in people])
    assert st == {people[0].pk: "signed", people[1].pk: "signed", people[2].pk: "unsigned"}
    more = [make_participant("enrolled") for _ in range(4)]
    for p in more:
        _sign(users, p)
    with CaptureQueriesContext(connection) as many:
        st = selectors.signature_status(None)
    assert len(st) == 7 and list(st.values()).count("signed") == 6
    assert len(many.captured_queries) <= len(few.captured_queries) + 1  # + the list of consented participants


def test_eligibility_signature_is_manifested_and_bound_to_the_evidence(users, make_participant):
    from annulus.participants import services as ps

    p = make_participant("eligible")
    e = selectors.eligibility_signature(p)
    assert e["signer"] == "t_investigator" and e["meaning"] == "eligibility decision signed"
    assert e["evidence_unchanged"] and len(e["evidence_hash"]) == 64
    assert e["signed_at"] <= timezone.now() and e["signed_at"] > timezone.now() - timedelta(minutes=5)
    # a correction of decided-on evidence is seen
    ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 70},
                      collected_on=timezone.localdate(), reason="re-measured")
    e2 = selectors.eligibility_signature(p)
    assert e2["evidence_hash"] == e["evidence_hash"]
    assert e2["superseded"] or not e2["evidence_unchanged"]


def test_a_batch_signs_with_one_signature_of_the_right_meaning(users, make_participant):
    from annulus.accounts.services import sign

    people = [make_participant("enrolled") for _ in range(2)]
    batch = sign(user=users["pi"], password=TEST_PASSWORD, meaning=selectors.MEANING)
    for p in people:
        services.sign_casebook(actor=users["pi"], participant_id=p.pk, signature=batch)
    assert selectors.signature_status([p.pk for p in people]) == {p.pk: "signed" for p in people}
    other = make_participant("enrolled")
    wrong = sign(user=users["pi"], password=TEST_PASSWORD, meaning="eligibility decision signed")
    with pytest.raises(services.NotTheSigner):
        services.sign_casebook(actor=users["pi"], participant_id=other.pk, signature=wrong)
    with pytest.raises(services.NotTheSigner):  # another person's signature
        services.sign_casebook(actor=users["investigator"], participant_id=other.pk, signature=batch)
    assert selectors.signature_status([other.pk]) == {other.pk: "unsigned"}
