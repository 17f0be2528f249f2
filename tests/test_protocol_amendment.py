"""An amendment is a new protocol version; records keep the version they were collected under
(X-1.3). The administrator loads it on /protocol/upload/; bad files are refused, nothing written."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.protocol import MAX_BYTES, default_protocol_path
from annulus.trial.models import ProtocolVersion
from annulus.trial.selectors import active_protocol, active_version
from annulus.trial.services import load_protocol_version

pytestmark = pytest.mark.req("X-1.3")

SHIPPED = default_protocol_path().read_text(encoding="utf-8")


def amended(version="1.1", extra_source=True):
    text = SHIPPED.replace('version: "1.0"', f'version: "{version}"', 1)
    if extra_source:
        text = text.replace("recruitment_sources: [inpatient_referral, records_search_phone, flyers_website]",
                            "recruitment_sources: [inpatient_referral, records_search_phone, flyers_website, wechat]", 1)
    return text


def test_amendment_is_a_new_version_and_records_keep_theirs(make_participant, users):
    before = make_participant("consented")
    pv = load_protocol_version(actor=users["admin"], text=amended())
    assert (pv.version, pv.active) == ("1.1", True)
    assert active_version().version == "1.1" and "wechat" in active_protocol().recruitment_sources
    assert list(ProtocolVersion.objects.filter(active=True).values_list("version", flat=True)) == ["1.1"]
    after = ps.prescreen(actor=users["coordinator"], initials="NW", sex="F", recruitment_source="wechat",
                         prescreened_on=timezone.localdate())
    before.refresh_from_db()
    assert before.protocol_version.version == "1.0"
    assert before.consents.get().protocol_version.version == "1.0"
    assert after.protocol_version.version == "1.1"
    event = AuditEvent.objects.filter(object_type="protocol_version", action="change").last()
    assert '"active_version":["1.0","1.1"]' in event.payload and event.actor_username == users["admin"].username


def test_changed_content_with_the_same_version_is_refused(users, protocol_version):
    n_versions, n_events = ProtocolVersion.objects.count(), AuditEvent.objects.count()
    with pytest.raises(RuleViolation) as info:
        load_protocol_version(actor=users["admin"], text=amended(version="1.0"))
    assert info.value.field == "version" and "an amendment needs a new version number" in info.value.message
    assert (ProtocolVersion.objects.count(), AuditEvent.objects.count()) == (n_versions, n_events)


def test_the_same_file_again_is_a_no_op(users, protocol_version):
    n_events = AuditEvent.objects.count()
    assert load_protocol_version(actor=users["admin"], text=SHIPPED).pk == protocol_version.pk
    assert AuditEvent.objects.count() == n_events


def test_invalid_file_is_refused_by_the_service(users, protocol_version):
    with pytest.raises(RuleViolation) as info:
        load_protocol_version(actor=users["admin"], text=amended().replace("ratio: 1", "ratio: one", 1))
    assert info.value.field == "protocol" and "arms[0].ratio:" in info.value.message


# ---- the upload page ---------------------------------------------------------------------


def _upload(client, content: bytes, name="amendment.yaml", activate=True):
    data = {"file": SimpleUploadedFile(name, content, content_type="application/x-yaml")}
    if activate:
        data["activate"] = "on"
    return client.post("/protocol/upload/", data)


def test_upload_page_loads_an_amendment(client_for, users):
    c = client_for("admin")
    assert "Load a protocol amendment" in c.get("/protocol/").content.decode()
    r = _upload(c, amended().encode("utf-8"))
    assert r.status_code == 302 and r["Location"] == "/protocol/"
    assert active_version().version == "1.1"
    page = c.get("/protocol/upload/").content.decode()
    assert "1.1" in page and "in force" in page and "superseded" in page


@pytest.mark.parametrize(
    "content, words",
    [
        (amended().encode("utf-8").replace(b"ratio: 1", b"ratio: one", 1), "arms[0].ratio: Input should be a valid integer"),
        (amended().encode("utf-8") + b"colour: blue\n", "colour: Extra inputs are not permitted"),
        (amended().encode("utf-8").replace("°C".encode("utf-8"), b"\xb0C"), "(file): not UTF-8 text"),
        (b"<html><script>alert(1)</script>", "(top level): a protocol is a mapping of keys"),
        (amended(version="1.0").encode("utf-8"), "version: version 1.0 is already loaded with different content"),
    ],
)
def test_upload_refuses_bad_files_naming_the_problem(client_for, users, content, words):
    c = client_for("admin")
    c.get("/protocol/")  # the shipped version is loaded
    n_versions, n_events = ProtocolVersion.objects.count(), AuditEvent.objects.count()
    r = _upload(c, content)
    html = r.content.decode()
    assert r.status_code == 400
    assert "The file was not loaded" in html and words.replace("'", "&#x27;") in html, html[-2000:]
    assert "<script>alert" not in html and "Traceback" not in html
    assert (ProtocolVersion.objects.count(), AuditEvent.objects.count()) == (n_versions, n_events)
    assert active_version().version == "1.0"


def test_upload_refuses_a_huge_file_before_reading_it(client_for, users):
    c = client_for("admin")
    c.get("/protocol/")
    n_versions = ProtocolVersion.objects.count()
    r = _upload(c, amended().encode("utf-8") + b"#" + b"x" * (MAX_BYTES + 10) + b"\n", name="big.yaml")
    assert r.status_code == 400
    assert f"the limit is {MAX_BYTES} bytes" in r.content.decode() and "big.yaml" in r.content.decode()
    assert ProtocolVersion.objects.count() == n_versions


def test_upload_without_a_file_names_the_field(client_for, users):
    r = client_for("admin").post("/protocol/upload/", {})
    assert r.status_code == 200 and "This field is required" in r.content.decode()


def test_upload_is_for_the_administrator_only(client_for, users):
    for role in ("investigator", "coordinator", "designer", "statistician"):
        r = _upload(client_for(role), amended().encode("utf-8"))
        assert r.status_code == 403, role
    assert not ProtocolVersion.objects.filter(version="1.1").exists()


def test_an_amendment_cannot_go_back_to_an_older_number(users, protocol_version):
    load_protocol_version(actor=users["admin"], text=amended(version="1.10"))
    with pytest.raises(RuleViolation) as info:
        load_protocol_version(actor=users["admin"], text=amended(version="1.9"))  # 1.9 < 1.10
    assert info.value.field == "version" and "older than version 1.10" in info.value.message
    assert active_version().version == "1.10"


def test_starting_the_server_again_keeps_the_amendment_in_force(users, protocol_version):
    """`annulus serve` and `annulus user create` load the shipped file on every start: that must
    never bring the older version back."""
    from annulus.trial.services import load_default_protocol

    load_protocol_version(actor=users["admin"], text=amended())
    before = AuditEvent.objects.count()
    load_default_protocol()
    assert active_version().version == "1.1"
    assert AuditEvent.objects.count() == before
