"""Database lock by two signatures, then first- and second-level unblinding (P-3.7)."""

import pytest

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import LockWaiver, UnblindingStep
from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation
from annulus.trial.selectors import trial_state
from tests.conftest import TEST_PASSWORD
from tests.lock_support import waive_open_items

SAY = "All CRFs checked and signed; queries closed."


def _lock(users):
    services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement=SAY)
    services.sign_lock(actor=users["statistician"], password=TEST_PASSWORD, statement=SAY)


@pytest.mark.req("P-3.7")
def test_the_full_sequence(users, make_participant, client_for):
    ps = testing.randomised(users, make_participant, 4)
    with pytest.raises(RuleViolation) as exc:
        services.release_level1(actor=users["designer"], password=TEST_PASSWORD, statement=SAY)
    assert exc.value.message == "first-level unblinding needs a locked database"
    # the four randomised participants have no end-of-study status: the PI waives them first
    # (with whatever else the checklist lists for them)
    waived = waive_open_items(users)
    assert LockWaiver.objects.filter(group="participants").count() == 4 and waived >= 4
    services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement=SAY)
    assert trial_state() != "locked"
    services.sign_lock(actor=users["statistician"], password=TEST_PASSWORD, statement=SAY)
    assert trial_state() == "locked"
    # before the first level the statistician sees no labels
    assert not selectors.can_see_labels(users["statistician"])
    with pytest.raises(RuleViolation) as exc:
        services.release_level2(actor=users["pharmacist"], password=TEST_PASSWORD, statement=SAY)
    assert "first-level unblinding first" in exc.value.message
    services.release_level1(actor=users["designer"], password=TEST_PASSWORD, statement=SAY)
    assert trial_state() == "unblinded_1"
    rows = selectors.level1_rows(users["statistician"])
    assert len(rows) == 4 and not selectors.can_see_arms(users["statistician"])
    page = client_for("statistician").get("/unblinding/").content.decode()
    assert "Group labels (first level)" in page and "Placebo" not in page
    with pytest.raises(RuleViolation) as exc:
        services.release_level2(actor=users["pharmacist"], password=TEST_PASSWORD, statement=SAY)
    assert "analysis sign-off first" in exc.value.message
    services.sign_off_analysis(actor=users["statistician"], password=TEST_PASSWORD, statement="Analysis by label done.")
    services.release_level2(actor=users["pharmacist"], password=TEST_PASSWORD, statement=SAY)
    assert trial_state() == "unblinded_2"
    rows = selectors.unblinded_rows(users["statistician"])
    assert {r["arm"] for r in rows} <= {"high", "mid", "low", "control"}
    assert rows[0]["arm"] == selectors.arm_of_for_system(ps[0].pk)
    assert AuditEvent.objects.filter(object_type="lock_waiver").count() == waived == LockWaiver.objects.count()
    kinds = list(AuditEvent.objects.filter(object_type="unblinding_step").values_list("payload", flat=True))
    assert len(kinds) == 5
    # the first enrolment opened recruitment; then lock, first level, second level
    import json

    moves = [json.loads(e.payload)["changes"]["state"][1]
             for e in AuditEvent.objects.filter(object_type="trial_state").order_by("id")]
    assert moves == ["recruiting", "locked", "unblinded_1", "unblinded_2"]


@pytest.mark.req("P-3.7")
def test_lock_signatures_need_the_pi_and_the_statistician_with_passwords(users):
    with pytest.raises(NotPermitted):
        services.sign_lock(actor=users["investigator"], password=TEST_PASSWORD, statement=SAY)
    with pytest.raises(NotPermitted):
        services.sign_lock(actor=users["monitor"], password=TEST_PASSWORD, statement=SAY)
    with pytest.raises(RuleViolation) as exc:
        services.sign_lock(actor=users["pi"], password="wrong", statement=SAY)
    assert exc.value.field == "password"
    with pytest.raises(RuleViolation) as exc:
        services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement="")
    assert exc.value.field == "statement"
    services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement=SAY)
    with pytest.raises(RuleViolation) as exc:
        services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement=SAY)
    assert "already done" in exc.value.message
    assert UnblindingStep.objects.count() == 1


@pytest.mark.req("P-3.7")
def test_only_key_holders_release_their_keys(users):
    _lock(users)
    for role in ("statistician", "pharmacist", "pi"):
        with pytest.raises(NotPermitted):
            services.release_level1(actor=users[role], password=TEST_PASSWORD, statement=SAY)
    services.release_level1(actor=users["designer"], password=TEST_PASSWORD, statement=SAY)
    services.sign_off_analysis(actor=users["statistician"], password=TEST_PASSWORD, statement=SAY)
    for role in ("statistician", "designer", "pi"):
        with pytest.raises(NotPermitted):
            services.release_level2(actor=users[role], password=TEST_PASSWORD, statement=SAY)


@pytest.mark.req("P-3.7")
def test_lock_through_the_pages_and_api(users, client_for):
    r = client_for("pi").post("/unblinding/", {"action": "lock", "statement": SAY, "password": "bad", "confirm": "on"})
    assert b"is not correct" in r.content
    r = client_for("pi").post("/unblinding/", {"action": "lock", "statement": SAY, "password": TEST_PASSWORD,
                                               "confirm": "on"})
    assert r.status_code == 302
    assert client_for("coordinator").post("/unblinding/", {"action": "lock", "statement": SAY,
                                                           "password": TEST_PASSWORD}).status_code == 403
    r = client_for("statistician").post("/api/v1/allocation/unblinding/lock",
                                        {"statement": SAY, "password": TEST_PASSWORD}, content_type="application/json")
    assert r.status_code == 201 and trial_state() == "locked"
    r = client_for("designer").post("/api/v1/allocation/unblinding/level1",
                                    {"statement": SAY, "password": TEST_PASSWORD}, content_type="application/json")
    assert r.status_code == 201 and trial_state() == "unblinded_1"
