"""Generating and sealing the allocation list; the holder documents and their checksums."""

import hashlib
import subprocess
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import AllocationList, Envelope
from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation


@pytest.mark.req("P-3.1", "P-3.3")
def test_designer_generates_a_sealed_list_of_25_per_arm(users):
    lst = testing.generate(users)
    assert lst.n == 100 and Envelope.objects.filter(allocation_list=lst).count() == 100
    arms = Counter(lst.level2_key[e.group_label] for e in Envelope.objects.filter(allocation_list=lst))
    assert arms == {"high": 25, "mid": 25, "low": 25, "control": 25}
    assert set(lst.block_sizes) <= {4, 8}
    assert [e.random_number for e in Envelope.objects.order_by("serial")][:3] == ["001", "002", "003"]
    assert services.seal_problems(lst) == []
    # the audit trail (read by blinded roles) carries neither the seed nor any label or checksum
    event = AuditEvent.objects.filter(object_type="allocation_list").get()
    assert str(lst.seed) not in event.payload and lst.table_sha256 not in event.payload
    assert "level2" not in event.payload and '"A"' not in event.payload


@pytest.mark.req("P-3.1")
def test_the_same_seed_gives_the_same_list(users, protocol_version):
    from annulus.randomisation import generate_sequence

    lst = testing.generate(users)
    seq = generate_sequence([("high", 1), ("mid", 1), ("low", 1), ("control", 1)], 100, lst.seed,
                            block_multipliers=(1, 2), number_width=3)
    stored = [(e.random_number, e.group_label, e.drug_code) for e in Envelope.objects.order_by("serial")]
    assert stored == [(e["random_number"], e["group_label"], e["drug_code"]) for e in seq.entries]
    assert lst.level2_key == seq.label_to_arm


@pytest.mark.req("P-3.1", "P-3.3")
@pytest.mark.parametrize("role", ["investigator", "coordinator", "pharmacist", "statistician", "admin", "dsmb"])
def test_only_the_level1_key_holder_generates(users, role):
    with pytest.raises(NotPermitted):
        services.generate_list(actor=users[role], seed=testing.SEED)
    assert not AllocationList.objects.exists()


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("seed,message", [(42, "at least 12 digits"), ("abc", "whole number"),
                                          (2**64, "at least 12 digits")])
def test_short_or_bad_seed_is_refused(users, seed, message):
    with pytest.raises(RuleViolation) as exc:
        services.generate_list(actor=users["designer"], seed=seed)
    assert exc.value.field == "seed" and message in exc.value.message
    assert not AllocationList.objects.exists()


@pytest.mark.req("P-3.1")
def test_without_a_seed_one_is_drawn_and_recorded(users):
    lst = services.generate_list(actor=users["designer"], seed=None)
    assert lst.seed >= 10**11


@pytest.mark.req("P-3.1", "P-3.3")
def test_replacing_the_list_is_refused(users):
    testing.generate(users)
    with pytest.raises(RuleViolation) as exc:
        services.generate_list(actor=users["designer"], seed=testing.SEED + 1)
    assert exc.value.field == "seed" and "replacing it is refused" in exc.value.message
    assert AllocationList.objects.count() == 1


@pytest.mark.req("P-3.1")
def test_generation_after_the_first_randomisation_is_refused(users, make_participant):
    testing.randomised(users, make_participant, 1)
    # even for a new protocol version (an amendment), the list in use is never replaced
    from annulus.trial.models import ProtocolVersion

    pv = ProtocolVersion.objects.create(version="9.9", registry_number="x", digest="f" * 64,
                                        text=ProtocolVersion.objects.get().text, effective_date="2023-01-01")
    ProtocolVersion.objects.exclude(pk=pv.pk).update(active=False)
    ProtocolVersion.objects.filter(pk=pv.pk).update(active=True)
    with pytest.raises(RuleViolation) as exc:
        services.generate_list(actor=users["designer"], seed=testing.SEED + 7)
    assert "randomisation has started" in exc.value.message


@pytest.mark.req("P-3.6")
def test_triplicate_tables_download_with_checksums_that_verify(users, client_for, tmp_path):
    lst = testing.generate(users)
    c = client_for("designer")
    page = c.get("/allocation/")
    assert page.status_code == 200 and b"allocation-table-manufacturer.csv" in page.content
    for holder in ("designer", "manufacturer", "pharmacy"):
        name = f"allocation-table-{holder}.csv"
        table = c.get(f"/allocation/documents/{name}")
        sha = c.get(f"/allocation/documents/{name}.sha256")
        assert table.status_code == 200 and sha.status_code == 200
        body = b"".join(table.streaming_content) if table.streaming else table.content
        assert body.startswith(b"serial_number,random_number,drug_code,group_label\n")
        assert hashlib.sha256(body).hexdigest() == lst.table_sha256
        (tmp_path / name).write_bytes(body)
        (tmp_path / f"{name}.sha256").write_bytes(sha.content)
        ok = subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=tmp_path, capture_output=True)
        assert ok.returncode == 0, ok.stdout
    # the arms never appear in a holder's table
    assert b"control" not in body and b"high" not in body
    assert AuditEvent.objects.filter(action="export", object_type="allocation_list").count() == 6


@pytest.mark.req("P-3.6")
def test_a_tampered_table_fails_its_checksum(users, client_for, tmp_path):
    testing.generate(users)
    c = client_for("designer")
    name = "allocation-table-pharmacy.csv"
    body = c.get(f"/allocation/documents/{name}").content
    tampered = body.replace(b",A\n", b",B\n", 1)
    assert tampered != body
    (tmp_path / name).write_bytes(tampered)
    (tmp_path / f"{name}.sha256").write_bytes(c.get(f"/allocation/documents/{name}.sha256").content)
    bad = subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=tmp_path, capture_output=True)
    assert bad.returncode != 0
    r = c.post("/allocation/verify/", {"file": SimpleUploadedFile(name, tampered)}, follow=True)
    assert b"checksum fails" in r.content
    r = c.post("/allocation/verify/", {"file": SimpleUploadedFile(name, body)}, follow=True)
    assert b"matches the sealed allocation table" in r.content


@pytest.mark.req("P-3.3", "P-3.6")
def test_a_changed_row_in_the_database_breaks_the_seal(users):
    lst = testing.generate(users)
    e = Envelope.objects.get(serial=1)
    Envelope.objects.filter(pk=e.pk).update(group_label="B" if e.group_label != "B" else "C")
    assert any("table" in p for p in services.seal_problems(lst))


@pytest.mark.req("P-3.3")
def test_level1_page_shows_opened_envelopes_only(users, make_participant, client_for):
    testing.randomised(users, make_participant, 2)
    rows = selectors.level1_rows(users["designer"])
    assert [r["random_number"] for r in rows] == ["001", "002"]
    with pytest.raises(NotPermitted):
        selectors.level1_rows(users["pharmacist"])
    with pytest.raises(NotPermitted):
        selectors.level1_rows(users["statistician"])


@pytest.mark.req("P-3.1", "P-3.6")
def test_api_generate_and_documents(users, client_for):
    c = client_for("designer")
    r = c.post("/api/v1/allocation/list", {"seed": 12}, content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "seed"
    r = c.post("/api/v1/allocation/list", {"seed": testing.SEED}, content_type="application/json")
    assert r.status_code == 201 and r.json()["n"] == 100 and r.json()["seal_problems"] == []
    r = c.get("/api/v1/allocation/list/documents/manufacturer")
    assert r.status_code == 200 and r.json()["sha256"] == AllocationList.objects.get().table_sha256
    r = client_for("investigator").post("/api/v1/allocation/list", {"seed": testing.SEED},
                                        content_type="application/json")
    assert r.status_code == 403
