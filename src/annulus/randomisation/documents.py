"""Allocation-table documents for the holders of the blind, each with a SHA-256 checksum.

``write_documents`` writes one directory:

- ``allocation-table-designer.csv``, ``allocation-table-manufacturer.csv``,
  ``allocation-table-pharmacy.csv``: identical tables (serial number, random number, drug code,
  group label; never the treatment), one per holder;
- ``level1-key.csv`` (random number -> group label) and ``level2-key.csv`` (group label -> arm);
- a ``<file>.sha256`` beside each of these, in ``sha256sum`` format, so a holder checks a copy
  with ``sha256sum -c <file>.sha256`` and no Annulus installation;
- ``README.txt`` naming the protocol, seed, algorithm, generation date and the check command.

The directory is the statistician's complete set: the seed and the level-2 key unblind every
participant, so only a holder's own table and its checksum leave it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .sequence import Sequence
from .stratified import StratifiedSequence

HOLDERS = ("designer", "manufacturer", "pharmacy")
ALLOCATION_COLUMNS = ("serial_number", "random_number", "drug_code", "group_label")
LEVEL1_FILE = "level1-key.csv"
LEVEL2_FILE = "level2-key.csv"
README_FILE = "README.txt"


def allocation_table_name(holder: str) -> str:
    return f"allocation-table-{holder}.csv"


def checked_files() -> list[str]:
    """Every file that carries a ``.sha256`` checksum, in a stable order."""
    return [allocation_table_name(h) for h in HOLDERS] + [LEVEL1_FILE, LEVEL2_FILE]


class DocumentsError(ValueError):
    """The documents cannot be written (for example, the directory already holds a set)."""


def _csv_bytes(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> bytes:
    buf = io.StringIO()
    # "\n" line ends so the bytes, and therefore the checksums, do not depend on the platform.
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_line(data: bytes, name: str) -> bytes:
    # sha256sum text-mode format: "<hex><space><space><name>\n".
    return f"{sha256_hex(data)}  {name}\n".encode("ascii")


STRATIFIED_COLUMNS = ("stratum", "stratum_levels") + ALLOCATION_COLUMNS


def _is_stratified(seq) -> bool:
    return getattr(seq, "strata", None) is not None


MINIMISATION_COLUMNS = ("serial_number", "random_number", "drug_code")


def _is_minimisation(seq) -> bool:
    return getattr(seq, "method", None) == "minimisation"


def allocation_table_bytes(seq) -> bytes:
    if _is_minimisation(seq):
        # the pool of drug codes, one per position; a position's group label exists only once
        # minimisation has allocated it, so the table has no label column
        return _csv_bytes(MINIMISATION_COLUMNS, [(e["serial"], e["random_number"], e["drug_code"]) for e in seq.pool])
    if _is_stratified(seq):
        # one table for all strata, stratum after stratum; the serial number counts within the
        # stratum and the random number carries the stratum ("2-014"), unique in the trial
        labels = {s["number"]: s["label"] for s in seq.strata}
        rows = [(e["stratum"], labels[e["stratum"]], e["serial"], e["random_number"], e["drug_code"],
                 e["group_label"]) for e in seq.entries]
        return _csv_bytes(STRATIFIED_COLUMNS, rows)
    rows = [(e["serial"], e["random_number"], e["drug_code"], e["group_label"]) for e in seq.entries]
    return _csv_bytes(ALLOCATION_COLUMNS, rows)


def level1_key_bytes(seq) -> bytes:
    if _is_minimisation(seq):
        # minimisation has no random number -> label table before it allocates: what fixes every
        # label, given the participants' levels, is the seed and the settings, sealed here
        return _csv_bytes(("setting", "value"), seq.settings_rows())
    rows = [(e["random_number"], e["group_label"]) for e in seq.entries]
    return _csv_bytes(("random_number", "group_label"), rows)


def level2_key_bytes(seq: Sequence) -> bytes:
    rows = sorted(seq.label_to_arm.items())
    return _csv_bytes(("group_label", "arm_id"), rows)


def _readme_text(seq: Sequence | StratifiedSequence, meta: Mapping[str, Any], generated_at: datetime) -> str:
    lines = ["Randomisation documents", "=======================", ""]
    for key in sorted(meta):
        lines.append(f"{key}: {meta[key]}")
    ratios = ":".join(str(r) for _, r in seq.arms)
    unit = sum(r for _, r in seq.arms)
    sizes = ", ".join(str(k * unit) for k in seq.block_multipliers)
    lines += [
        f"generated (UTC): {generated_at.astimezone(timezone.utc).isoformat(timespec='seconds')}",
        f"seed: {seq.seed}",
        f"random numbers: {seq.entries[0]['random_number']}{' to ' if _is_stratified(seq) else '-'}"
        f"{seq.entries[-1]['random_number']} ({seq.n})",
        f"arms: {len(seq.arms)}, ratio {ratios}",
        f"block sizes available: {sizes}",
        f"generator: {seq.generator}",
        "",
        "Algorithm:",
        seq.algorithm,
        "",
    ]
    if _is_stratified(seq):
        lines += [f"Strata ({len(seq.strata)}, {seq.per_stratum} random numbers each):"]
        lines += [f"  {s['number']}: {s['label']}" for s in seq.strata]
        lines += [""]
    lines += [
        "Files:",
    ]
    for holder in HOLDERS:
        lines.append(f"  {allocation_table_name(holder)}: allocation table, copy for the {holder}")
    lines += [
        f"  {LEVEL1_FILE}: level-1 key, random number -> group label",
        f"  {LEVEL2_FILE}: level-2 key, group label -> treatment arm",
        "",
        "Each file has a checksum beside it. Verify a copy with, for example:",
        f"  sha256sum -c {allocation_table_name('pharmacy')}.sha256",
        "or the whole set with:",
        "  annulus randomisation verify DIR",
        "",
        "The seed and the level-2 key reveal every participant's treatment. Give each holder only",
        "their own allocation table and its .sha256 file; the keys are held separately.",
        "",
    ]
    return "\n".join(lines)


def write_documents(
    seq: Sequence | StratifiedSequence,
    out_dir: str | os.PathLike[str],
    protocol_meta: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
) -> list[Path]:
    """Write the document set into ``out_dir`` and return the paths written.

    ``protocol_meta`` (for example ``{"protocol": "dlbp-admsc", "version": "1.0"}``) is listed in
    the README. ``out_dir`` must not exist or be empty: a set is never overwritten. The files are
    written to a temporary sibling directory first, so a failure leaves nothing behind.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DocumentsError(
            f"--out {out}: must be a new or empty directory (a document set is never replaced)"
        )
    if generated_at is None:
        generated_at = datetime.now(timezone.utc)
    elif generated_at.tzinfo is None:
        raise DocumentsError("generated_at: must be timezone-aware")

    contents: dict[str, bytes] = {}
    table = allocation_table_bytes(seq)
    for holder in HOLDERS:
        contents[allocation_table_name(holder)] = table
    contents[LEVEL1_FILE] = level1_key_bytes(seq)
    contents[LEVEL2_FILE] = level2_key_bytes(seq)
    for name in checked_files():
        contents[f"{name}.sha256"] = _sha256_line(contents[name], name)
    contents[README_FILE] = _readme_text(seq, protocol_meta or {}, generated_at).encode("utf-8")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in contents.items():
            (tmp / name).write_bytes(data)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / name for name in contents]


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def verify_documents(out_dir: str | os.PathLike[str]) -> list[str]:
    """Check a document set; return a list of problems (empty when everything verifies).

    Each problem names the file: a missing file or checksum, a malformed checksum file, a content
    mismatch, holder copies of the allocation table that differ from one another, or a level-1
    key that disagrees with the allocation table.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return [f"{out}: not a directory"]
    problems: list[str] = []
    for name in checked_files():
        path = out / name
        sha_path = out / f"{name}.sha256"
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        if not sha_path.is_file():
            problems.append(f"{name}.sha256: missing")
            continue
        text = sha_path.read_text(encoding="utf-8", errors="replace").strip()
        match = _SHA_LINE.match(text)
        if match is None or "\n" in text:
            problems.append(f"{name}.sha256: not a sha256sum line for {name}")
            continue
        expected, listed = match.group(1).lower(), match.group(2)
        if listed != name:
            problems.append(f"{name}.sha256: names {listed!r}, not {name!r}")
            continue
        if sha256_hex(path.read_bytes()) != expected:
            problems.append(f"{name}: checksum mismatch (file changed since it was generated)")
    # Copies re-checksummed after an edit pass one by one; they must also agree with each other.
    tables = [out / allocation_table_name(h) for h in HOLDERS]
    if all(t.is_file() for t in tables):
        digests = {t.name: sha256_hex(t.read_bytes()) for t in tables}
        counts = Counter(digests.values())
        majority, votes = counts.most_common(1)[0]
        for name, digest in digests.items():
            if votes > 1 and digest != majority:
                problems.append(f"{name}: differs from the other holders' copies")
            elif votes == 1:
                problems.append(f"{name}: the three holder copies all differ")
    level1 = out / LEVEL1_FILE
    if tables[-1].is_file() and level1.is_file():
        # The level-1 key must say what the tables say: random number -> group label.
        table_rows = _read_rows(tables[-1])
        header = table_rows[0] if table_rows else []
        try:  # the stratified table has two more columns in front
            rn, gl = header.index("random_number"), header.index("group_label")
        except ValueError:
            rn, gl = 1, 3
        table_pairs = [(row[rn], row[gl]) for row in table_rows if len(row) == len(header)]
        key_pairs = [tuple(row) for row in _read_rows(level1)]
        if table_pairs != key_pairs:
            problems.append(f"{LEVEL1_FILE}: does not match {tables[-1].name}")
    if not (out / README_FILE).is_file():
        problems.append(f"{README_FILE}: missing")
    return problems
