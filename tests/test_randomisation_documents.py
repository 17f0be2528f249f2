"""Allocation-table documents in triplicate with SHA-256 checksums (P-3.6)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from annulus.randomisation import (
    HOLDERS,
    DocumentsError,
    allocation_table_name,
    checked_files,
    generate_sequence,
    verify_documents,
    write_documents,
)

ARMS = [("high", 1), ("mid", 1), ("low", 1), ("control", 1)]
META = {"trial": "dlbp-admsc", "protocol version": "1.0"}
WHEN = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def seq():
    return generate_sequence(ARMS, 100, seed=20240301)


@pytest.fixture
def docs(tmp_path, seq):
    out = tmp_path / "docs"
    write_documents(seq, out, META, generated_at=WHEN)
    return out


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.mark.req("P-3.6")
def test_writes_triplicate_tables_keys_checksums_and_readme(docs):
    names = sorted(p.name for p in docs.iterdir())
    expected = set(checked_files()) | {f"{n}.sha256" for n in checked_files()} | {"README.txt"}
    assert set(names) == expected
    for holder in HOLDERS:
        assert (docs / allocation_table_name(holder)).is_file()
    assert verify_documents(docs) == []


@pytest.mark.req("P-3.6", "P-3.3")
def test_allocation_table_has_no_treatment(docs, seq):
    rows = read_csv(docs / "allocation-table-pharmacy.csv")
    assert rows[0] == ["serial_number", "random_number", "drug_code", "group_label"]
    assert len(rows) == 101
    assert rows[1] == [
        "1",
        seq.entries[0]["random_number"],
        seq.entries[0]["drug_code"],
        seq.entries[0]["group_label"],
    ]
    text = (docs / "allocation-table-pharmacy.csv").read_text()
    for arm, _ in ARMS:
        assert arm not in text
    copies = {(docs / allocation_table_name(h)).read_bytes() for h in HOLDERS}
    assert len(copies) == 1


@pytest.mark.req("P-3.3", "P-3.6")
def test_two_keys_are_separate_files(docs, seq):
    level1 = read_csv(docs / "level1-key.csv")
    assert level1[0] == ["random_number", "group_label"]
    assert dict(level1[1:]) == seq.level1_key()
    level2 = read_csv(docs / "level2-key.csv")
    assert level2[0] == ["group_label", "arm_id"]
    assert dict(level2[1:]) == seq.label_to_arm
    for arm, _ in ARMS:
        assert arm not in (docs / "level1-key.csv").read_text()


@pytest.mark.req("P-3.6")
def test_readme_names_seed_algorithm_date_and_check_command(docs):
    readme = (docs / "README.txt").read_text()
    assert "seed: 20240301" in readme
    assert "Permuted blocks" in readme
    assert "2024-03-01T08:00:00+00:00" in readme
    assert "sha256sum -c allocation-table-pharmacy.csv.sha256" in readme
    assert "dlbp-admsc" in readme


@pytest.mark.req("P-3.6")
def test_checksum_files_work_with_sha256sum(docs):
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    for name in checked_files():
        result = subprocess.run(
            ["sha256sum", "-c", f"{name}.sha256"], cwd=docs, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.req("P-3.6")
@pytest.mark.parametrize("name", checked_files())
def test_a_tampered_byte_is_detected(docs, name):
    path = docs / name
    data = bytearray(path.read_bytes())
    # Swap one group label letter (or any byte) for another: same size, different content.
    i = len(data) - 2
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    path.write_bytes(bytes(data))
    problems = verify_documents(docs)
    assert any(p.startswith(f"{name}: checksum mismatch") for p in problems), problems


@pytest.mark.req("P-3.6")
def test_tampered_copy_with_recomputed_checksum_disagrees_with_other_copies(docs):
    import hashlib

    path = docs / "allocation-table-manufacturer.csv"
    data = path.read_bytes().replace(b",A\n", b",B\n", 1)
    path.write_bytes(data)
    (docs / "allocation-table-manufacturer.csv.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  allocation-table-manufacturer.csv\n"
    )
    problems = verify_documents(docs)
    assert problems == ["allocation-table-manufacturer.csv: differs from the other holders' copies"]


@pytest.mark.req("P-3.3", "P-3.6")
def test_level1_key_must_match_the_table(docs):
    import hashlib

    path = docs / "level1-key.csv"
    data = path.read_bytes().replace(b",A\n", b",B\n", 1)
    path.write_bytes(data)
    (docs / "level1-key.csv.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  level1-key.csv\n")
    assert verify_documents(docs) == ["level1-key.csv: does not match allocation-table-pharmacy.csv"]


@pytest.mark.req("P-3.6")
def test_missing_and_malformed_checksums_are_reported(docs):
    (docs / "level2-key.csv.sha256").unlink()
    (docs / "level1-key.csv.sha256").write_text("not a checksum\n")
    (docs / "allocation-table-designer.csv").unlink()
    problems = verify_documents(docs)
    assert "level2-key.csv.sha256: missing" in problems
    assert any(p.startswith("level1-key.csv.sha256: not a sha256sum line") for p in problems)
    assert "allocation-table-designer.csv: missing" in problems


@pytest.mark.req("P-3.6")
def test_existing_document_set_is_never_replaced(docs, seq):
    before = {p.name: p.read_bytes() for p in docs.iterdir()}
    with pytest.raises(DocumentsError, match="never replaced"):
        write_documents(generate_sequence(ARMS, 100, seed=1), docs, META)
    assert {p.name: p.read_bytes() for p in docs.iterdir()} == before
    # Nothing else was left beside it either.
    assert [p.name for p in docs.parent.iterdir()] == ["docs"]


@pytest.mark.req("P-3.6")
def test_empty_directory_is_accepted(tmp_path, seq):
    out = tmp_path / "empty"
    out.mkdir()
    write_documents(seq, out, META, generated_at=WHEN)
    assert verify_documents(out) == []


@pytest.mark.req("P-3.6")
def test_same_sequence_gives_byte_identical_tables(tmp_path, seq):
    write_documents(seq, tmp_path / "a", META, generated_at=WHEN)
    write_documents(generate_sequence(ARMS, 100, seed=20240301), tmp_path / "b", META, generated_at=WHEN)
    for name in checked_files():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
