"""The administrator creates users with protocol roles and deactivates them (never deletes)."""

import pytest
from django.contrib.auth import get_user_model

from annulus.audit.models import AuditEvent


@pytest.mark.req("P-7.2")
def test_admin_creates_user_with_role(client_for):
    c = client_for("admin")
    r = c.post("/accounts/users/", {"create": "1", "username": "nurse1", "full_name": "Li Hua", "email": "",
                                    "phone": "", "role": "coordinator", "password": "Str0ng-Passw0rd!x"})
    assert r.status_code == 302
    u = get_user_model().objects.get(username="nurse1")
    assert u.membership.role == "coordinator"
    assert AuditEvent.objects.filter(object_type="user", object_id=str(u.pk), action="create").exists()


@pytest.mark.req("P-7.2")
def test_weak_password_is_refused_naming_the_field(client_for):
    c = client_for("admin")
    before = get_user_model().objects.count()
    r = c.post("/accounts/users/", {"create": "1", "username": "nurse2", "role": "coordinator", "password": "short"})
    assert r.status_code == 200
    assert "Initial password" in r.content.decode() and "at least 12 characters" in r.content.decode()
    assert get_user_model().objects.count() == before


@pytest.mark.req("P-7.2")
def test_deactivation_needs_a_reason_and_keeps_the_account(client_for, users):
    c = client_for("admin")
    target = users["monitor"]
    c.post("/accounts/users/", {"toggle": target.pk, "active": "0", "reason": ""})
    target.refresh_from_db()
    assert target.is_active
    c.post("/accounts/users/", {"toggle": target.pk, "active": "0", "reason": "left the site"})
    target.refresh_from_db()
    assert not target.is_active
    assert AuditEvent.objects.filter(object_type="user", object_id=str(target.pk), reason="left the site").exists()


@pytest.mark.req("P-7.2")
@pytest.mark.parametrize("role", ["coordinator", "investigator", "monitor", "pharmacist", "dsmb"])
def test_other_roles_cannot_manage_users(client_for, role):
    assert client_for(role).get("/accounts/users/").status_code == 403
