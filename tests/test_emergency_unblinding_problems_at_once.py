"""Emergency unblinding shows all of its problems at once (reason, password, co-signature), each
on its field, on the page and in the API's ``detail``."""

from __future__ import annotations

import pytest

from annulus.errors import RuleViolation

from .test_form_problems_at_once import _api, _browser, _field_errors, _fields, _post

@pytest.mark.req("P-3.7")
def test_emergency_unblinding_refuses_a_short_reason_and_a_missing_password_together(users, make_participant,
                                                                                    monkeypatch):
    from annulus.allocation import services, testing
    from annulus.allocation.models import EmergencyUnblinding

    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    with pytest.raises(RuleViolation) as info:
        services.emergency_unblind(actor=users["investigator"], participant_id=p.pk, password="", reason="urgent")
    assert _fields(info.value) == {"reason", "password"}
    assert not EmergencyUnblinding.objects.exists()


@pytest.mark.req("P-3.7")
def test_emergency_unblinding_page_and_api_show_both_problems(users, make_participant, monkeypatch):
    from annulus.allocation import testing
    from annulus.allocation.models import EmergencyUnblinding

    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    c = _browser(users["investigator"])
    r = _post(c, f"/participants/{p.pk}/emergency-unblinding/", {"reason": "urgent", "password": ""})
    assert r.status_code == 200
    assert {"reason", "password"} <= set(_field_errors(r.content.decode()))
    r = _api(c, "post", f"/api/v1/allocation/participants/{p.pk}/emergency-unblinding",
             {"reason": "urgent", "password": ""})
    assert r.status_code == 400
    assert {d["field"] for d in r.json()["detail"]} == {"reason", "password"}
    assert not EmergencyUnblinding.objects.exists()
