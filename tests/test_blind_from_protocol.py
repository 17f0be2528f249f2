"""The blind comes from the protocol, and changing it takes more than an upload (X-3.8, X-1.3):

- a key holder (``randomisation.level1_key_holder``/``level2_key_holder``) must be a role the
  protocol declares ``blinded: false``: anything else is a schema error naming the field, for
  ``annulus protocol validate``, the amendment upload page and the API;
- who is blinded is read from the roles of the protocol in force, not from role names in code;
- a version that changes any role's blinding or a key holder is put in force only with a
  principal investigator's co-signature (a PI other than the uploader; a wrong password counts
  towards that PI's lockout and is audited; the PI is notified);
- ``Participant`` has no way to its envelope (no reverse accessor)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annulus.accounts.models import LoginAttempt
from annulus.accounts.permissions import is_blinded
from annulus.allocation import selectors, testing
from annulus.audit.models import AuditEvent
from annulus.cli import main
from annulus.errors import NotPermitted, RuleViolation
from annulus.protocol import default_protocol_path
from annulus.trial.models import Notification, ProtocolVersion
from annulus.trial.selectors import active_version
from annulus.trial.services import load_protocol_version
from tests.conftest import TEST_PASSWORD

SHIPPED = default_protocol_path().read_text(encoding="utf-8")
MONITOR_BLINDED = "  - id: monitor\n    name: {en: Monitor / QC, zh: 监查员/质控}\n    blinded: true\n"
DSMB_UNBLINDED = ("  - id: dsmb\n    name: {en: DSMB member, zh: 数据安全监查委员会委员}\n    blinded: false\n")


def _version(text: str, version: str = "1.1") -> str:
    assert 'version: "1.0"' in text
    return text.replace('version: "1.0"', f'version: "{version}"', 1)


def monitor_key_holder(level: int = 1, version: str = "1.1") -> str:
    holder = "designer" if level == 1 else "pharmacist"
    text = SHIPPED.replace(f"level{level}_key_holder: {holder}", f"level{level}_key_holder: monitor", 1)
    assert text != SHIPPED
    return _version(text, version)


def monitor_unblinded(version: str = "1.1") -> str:
    assert MONITOR_BLINDED in SHIPPED
    return _version(SHIPPED.replace(MONITOR_BLINDED, MONITOR_BLINDED.replace("blinded: true", "blinded: false")), version)


def dsmb_blinded(version: str = "1.1") -> str:
    assert DSMB_UNBLINDED in SHIPPED
    return _version(SHIPPED.replace(DSMB_UNBLINDED, DSMB_UNBLINDED.replace("blinded: false", "blinded: true")), version)


def _browser(user) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get("/")
    return c


def _upload_page(c: Client, text: str, **extra):
    assert c.get("/protocol/upload/").status_code == 200
    data = {"file": SimpleUploadedFile("amendment.yaml", text.encode("utf-8"), content_type="application/x-yaml"),
            "activate": "on", "csrfmiddlewaretoken": c.cookies["csrftoken"].value, **extra}
    return c.post("/protocol/upload/", data)


def _upload_api(c: Client, text: str, **extra):
    return c.post("/api/v1/protocol/versions", {"text": text, "activate": True, **extra},
                  content_type="application/json", HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)


def _state() -> tuple:
    return ProtocolVersion.objects.count(), AuditEvent.objects.exclude(action="login_failed").count(), \
        Notification.objects.count()


# ---- a key holder must be an unblinded role ------------------------------------------------------


@pytest.mark.req("X-1.3", "X-3.8")
@pytest.mark.parametrize("level", [1, 2])
def test_validate_refuses_a_blinded_key_holder_naming_the_field(tmp_path, capsys, level):
    path = tmp_path / "bad.yaml"
    path.write_text(monitor_key_holder(level), encoding="utf-8")
    assert main(["protocol", "validate", str(path)]) == 2
    assert (f"randomisation.level{level}_key_holder: role 'monitor' is blinded; a key holder must be an "
            "unblinded role") in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(SHIPPED, encoding="utf-8")
    assert main(["protocol", "validate", str(good)]) == 0


@pytest.mark.req("X-1.3", "X-3.8")
def test_an_amendment_naming_a_blinded_key_holder_is_refused_everywhere(users, protocol_version):
    before = _state()
    with pytest.raises(RuleViolation) as exc:
        load_protocol_version(actor=users["admin"], text=monitor_key_holder(1))
    assert "randomisation.level1_key_holder: role 'monitor' is blinded" in exc.value.message

    c = _browser(users["admin"])
    r = _upload_page(c, monitor_key_holder(1), cosigner_username=users["pi"].username, cosigner_password=TEST_PASSWORD)
    assert r.status_code == 400
    assert "randomisation.level1_key_holder: role &#x27;monitor&#x27; is blinded" in r.content.decode()

    r = _upload_api(c, monitor_key_holder(2), cosigner_username=users["pi"].username, cosigner_password=TEST_PASSWORD)
    assert r.status_code == 400
    assert {"field": "randomisation.level2_key_holder",
            "message": "role 'monitor' is blinded; a key holder must be an unblinded role"} in r.json()["detail"]
    assert _state() == before and active_version().version == "1.0"
    # and the monitor sees no label or arm
    assert is_blinded(users["monitor"]) and not selectors.can_see_labels(users["monitor"])


# ---- who is blinded comes from the protocol in force --------------------------------------------


@pytest.mark.req("X-3.8")
def test_blinding_is_read_from_the_roles_of_the_protocol_in_force(users, make_participant):
    assert [r for r in sorted(users) if not is_blinded(users[r])] == ["designer", "dsmb", "pharmacist"]
    p = testing.randomised(users, make_participant, 1)[0]
    assert selectors.arms_for_closed_report(users["dsmb"])
    load_protocol_version(actor=users["admin"], text=dsmb_blinded(), cosigner_username=users["pi"].username,
                          cosigner_password=TEST_PASSWORD)
    assert is_blinded(users["dsmb"])
    with pytest.raises(NotPermitted):  # a blinded DSMB reads no arms
        selectors.arms_for_closed_report(users["dsmb"])
    c = Client()
    c.force_login(users["dsmb"])
    assert "DSMB member · blinded" in c.get("/").content.decode()
    assert "arm" not in selectors.participant_allocation(users["dsmb"], p)


# ---- a change of the blind needs a PI's co-signature --------------------------------------------


@pytest.mark.req("X-1.3", "X-3.8")
def test_flipping_a_roles_blinding_needs_a_pi_cosignature(users, protocol_version):
    admin, pi = users["admin"], users["pi"]
    before = _state()
    for who, password, words in [("", "", "needs a principal investigator's co-signature"),
                                 (pi.username, "wrong", "is not an active principal investigator"),
                                 (users["coordinator"].username, TEST_PASSWORD, "is not an active principal")]:
        with pytest.raises(RuleViolation) as exc:
            load_protocol_version(actor=admin, text=monitor_unblinded(), cosigner_username=who,
                                  cosigner_password=password)
        assert exc.value.field == "cosigner_username" and words in exc.value.message
    assert "role 'monitor' becomes unblinded" in load_error(admin)
    assert _state() == before and active_version().version == "1.0" and is_blinded(users["monitor"])
    # the wrong password counted towards the PI's lockout and is in the audit trail
    assert LoginAttempt.objects.filter(username=pi.username, success=False).count() == 1
    failed = AuditEvent.objects.get(action="login_failed", object_id=str(pi.pk))
    assert json.loads(failed.payload)["changes"]["why"] == "co-signature: wrong password"

    pv = load_protocol_version(actor=admin, text=monitor_unblinded(), cosigner_username=pi.username,
                               cosigner_password=TEST_PASSWORD)
    assert pv.active and not is_blinded(users["monitor"])
    event = AuditEvent.objects.filter(object_type="protocol_version", action="change").last()
    changes = json.loads(event.payload)["changes"]
    assert changes["cosigned_by"] == [None, pi.username]
    assert changes["blind"] == [None, ["role 'monitor' becomes unblinded"]]
    note = Notification.objects.get(user=pi, kind="amendment_cosigned")
    assert "1.1" in note.subject and "monitor" in note.body


def load_error(admin) -> str:
    try:
        load_protocol_version(actor=admin, text=monitor_unblinded())
    except RuleViolation as exc:
        return exc.message
    raise AssertionError("loaded without a co-signature")


@pytest.mark.req("X-3.8")
def test_a_new_key_holder_needs_a_cosignature_and_the_uploader_cannot_cosign(users, protocol_version):
    text = _version(SHIPPED.replace("level1_key_holder: designer", "level1_key_holder: dsmb", 1))
    pi = users["pi"]
    pi.membership.role = "admin"  # a PI who also administers: still needs someone else
    with pytest.raises(RuleViolation) as exc:
        load_protocol_version(actor=pi, text=text, cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert exc.value.field == "cosigner_username" and "someone other than" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        load_protocol_version(actor=users["admin"], text=text)
    assert "randomisation.level1_key_holder: 'designer' -> 'dsmb'" in exc.value.message
    assert active_version().version == "1.0"


@pytest.mark.req("X-1.3")
def test_an_amendment_that_keeps_the_blind_needs_no_cosignature(users, protocol_version):
    text = _version(SHIPPED.replace("recruitment_sources: [inpatient_referral,", "recruitment_sources: [wechat, "
                                    "inpatient_referral,", 1))
    assert load_protocol_version(actor=users["admin"], text=text).active


@pytest.mark.req("X-1.3", "X-3.8")
def test_upload_page_says_why_and_takes_the_cosignature(users, protocol_version):
    admin, pi = users["admin"], users["pi"]
    c = _browser(admin)
    page = c.get("/protocol/upload/").content.decode()
    assert 'name="cosigner_username"' in page and 'name="cosigner_password"' in page
    before = _state()
    r = _upload_page(c, monitor_unblinded())
    html = r.content.decode()
    assert r.status_code == 400 and "This version changes the blind" in html
    assert "role &#x27;monitor&#x27; becomes unblinded" in html
    assert "needs a principal investigator&#x27;s co-signature" in html
    assert _state() == before
    r = _upload_page(c, monitor_unblinded(), cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert r.status_code == 302 and active_version().version == "1.1" and not is_blinded(users["monitor"])


@pytest.mark.req("X-1.3", "X-3.8")
def test_api_takes_the_cosignature(users, protocol_version):
    admin, pi = users["admin"], users["pi"]
    c = _browser(admin)
    before = _state()
    r = _upload_api(c, monitor_unblinded())
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "cosigner_username"
    assert "role 'monitor' becomes unblinded" in r.json()["detail"][0]["message"]
    assert _state() == before
    assert _browser(users["coordinator"]).post(
        "/api/v1/protocol/versions", {"text": monitor_unblinded()}, content_type="application/json",
        HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value).status_code == 403
    r = _upload_api(c, monitor_unblinded(), cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert r.status_code == 201 and r.json()["version"] == "1.1" and r.json()["active"] is True
    assert not is_blinded(users["monitor"])


# ---- no way from a participant to its envelope ---------------------------------------------------


@pytest.mark.req("X-3.8")
def test_participant_has_no_way_to_its_envelope(db):
    """Neither ``participant.envelope`` nor any chain of relations from Participant (other than
    through user accounts, which every record names) reaches the Envelope table: the group label
    is read only through the selectors of the blind."""
    from collections import deque

    from django.contrib.auth import get_user_model

    from annulus.allocation.models import Envelope
    from annulus.participants.models import Participant

    assert not hasattr(Participant, "envelope")
    assert "envelope" not in {f.name for f in Participant._meta.get_fields()}
    paths = {Participant: "Participant"}
    queue = deque([Participant])
    while queue:
        model = queue.popleft()
        for field in model._meta.get_fields():
            target = getattr(field, "related_model", None)
            if target is None or target in paths or target is get_user_model():
                continue
            paths[target] = f"{paths[model]}.{field.name}"
            queue.append(target)
    assert Envelope not in paths, paths.get(Envelope)
