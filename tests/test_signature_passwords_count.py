"""Every re-entered password is one kind of signature: a wrong password at the database lock and
the unblinding steps counts towards the account's lockout and is audited, as at the eligibility
decision, a co-signature or an emergency unblinding; a locked account cannot sign."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from annulus.allocation import services
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.req("X-7.5", "P-3.7")]


def _whys(user):
    return [json.loads(e.payload)["changes"]["why"]
            for e in AuditEvent.objects.filter(action="login_failed", object_id=str(user.pk)).order_by("id")]


@pytest.mark.parametrize("role", ["pi", "statistician"])
def test_a_wrong_password_at_the_lock_signature_counts_towards_the_lockout(users, role):
    user = users[role]
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        with pytest.raises(RuleViolation) as caught:
            services.sign_lock(actor=user, password="not-the-password", statement="All data checked and signed")
        assert caught.value.field == "password"
    assert _whys(user)[0] == "signature: wrong password" and _whys(user)[-1].endswith("account now locked")
    with pytest.raises(RuleViolation, match="locked"):
        services.sign_lock(actor=user, password=TEST_PASSWORD, statement="All data checked and signed")
    assert not services.UnblindingStep.objects.exists()
