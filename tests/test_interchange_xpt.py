"""The streaming SAS transport v5 writer: read back with pyreadstat and pandas (X-7.6)."""

from __future__ import annotations

import math
import struct
import tracemalloc
from decimal import Decimal

import pandas as pd
import pyreadstat
import pytest

from annulus.interchange.xpt import CARD, Column, XptError, XptWriter, ibm_float

pytestmark = pytest.mark.req("X-7.6")

COLUMNS = [
    Column("USUBJID", "Unique Subject Identifier", "char", 20),
    Column("QSSTRESN", "Numeric Result in Standard Units", "num"),
    Column("QSORRES", "Result in Original Units 原始结果", "char", 60),
    Column("QSDY", "Study Day", "num", 8),
    Column("QSSEQ", "Sequence Number", "num"),
]
ROWS = [
    ("CSC-001", 42.0, "forty-two", 7, 1),
    ("CSC-001", -2.5, "负数 negative", -1, 2),
    ("CSC-002", None, "", None, 3),
    ("CSC-003", 0, None, 0, 4),
    ("CSC-004", 1e-70, "tiny", 1, 5),
    ("CSC-005", 1.2345e70, "huge", 365, 6),
    ("CSC-006", -123456789.125, "x" * 60, 730, 7),
    ("CSC-007", 0.1, "腰痛伴下肢麻木", 2, 8),
    ("CSC-008", 1 / 3, "third", 3, 9),
]


def _write(path, rows=ROWS, columns=COLUMNS, label="Questionnaires 问卷"):
    with XptWriter(path, "qs", label, columns=columns) as xpt:
        for row in rows:
            xpt.write_row(row)
    return xpt


def _same(a, b, zero=0.0):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or b == "" or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, str):
        return a == b
    return b == pytest.approx(float(a), rel=1e-15, abs=zero)


def test_file_is_whole_80_byte_cards_with_the_ts140_headers(tmp_path):
    path = tmp_path / "qs.xpt"
    _write(path)
    raw = path.read_bytes()
    assert len(raw) % CARD == 0
    assert raw[:CARD].startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")
    assert b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!000000000000000001600000000140  " in raw
    assert b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!000000000500000000000000000000  " in raw
    obs = raw.index(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!")
    row_length = 20 + 8 + 60 + 8 + 8
    assert len(raw) - obs - CARD == -(-row_length * len(ROWS) // CARD) * CARD


def test_pyreadstat_reads_values_and_labels(tmp_path):
    path = tmp_path / "qs.xpt"
    writer = _write(path)
    assert writer.rows == len(ROWS)
    df, meta = pyreadstat.read_xport(str(path), encoding="utf-8")
    assert list(df.columns) == ["USUBJID", "QSSTRESN", "QSORRES", "QSDY", "QSSEQ"]
    assert meta.column_labels == [c.label for c in COLUMNS]
    assert meta.file_label == "Questionnaires 问卷"
    assert meta.table_name == "QS"
    assert len(df) == len(ROWS)
    for row, got in zip(ROWS, df.itertuples(index=False)):
        for want, value in zip(row, got):
            assert _same(want, value), (row, tuple(got))
    assert math.isnan(df["QSSTRESN"][2])
    assert df["QSORRES"][7] == "腰痛伴下肢麻木"
    assert df["QSSTRESN"][5] == 1.2345e70 and df["QSSTRESN"][4] == 1e-70


def test_pandas_reads_the_same(tmp_path):
    path = tmp_path / "qs.xpt"
    _write(path)
    df = pd.read_sas(path, format="xport", encoding="utf-8")
    assert len(df) == len(ROWS)
    for row, got in zip(ROWS, df.itertuples(index=False)):
        for want, value in zip(row, got):
            # pandas reads the IBM zero (eight zero bytes, as SAS writes it) as 16**-65 (5.4e-79)
            assert _same(want, value, zero=1e-78), (row, tuple(got))
    assert df["QSSTRESN"][3] < 1e-78 and df["QSSTRESN"][4] == pytest.approx(1e-70, rel=1e-15)


def test_ibm_float_bytes():
    assert ibm_float(1.0) == bytes.fromhex("4110000000000000")
    assert ibm_float(-118.625) == bytes.fromhex("C276A00000000000")
    assert ibm_float(0.0) == b"\0" * 8
    with pytest.raises(XptError):
        ibm_float(1e80)
    with pytest.raises(XptError):
        ibm_float(float("inf"))


def test_too_long_text_is_an_error_naming_the_column(tmp_path):
    with XptWriter(tmp_path / "a.xpt", "AE", "Adverse events", columns=[Column("AETERM", "Term", "char", 6)]) as x:
        x.write_row(("头痛",))  # 6 bytes in UTF-8: fits
        with pytest.raises(XptError, match="AETERM"):
            x.write_row(("头痛头",))  # 9 bytes
        with pytest.raises(XptError, match="AETERM"):
            x.write_row(("abcdefg",))
    df, _ = pyreadstat.read_xport(str(tmp_path / "a.xpt"), encoding="utf-8")
    assert df["AETERM"].tolist() == ["头痛"]


def test_bad_specs_are_refused(tmp_path):
    with pytest.raises(XptError, match="dataset name"):
        XptWriter(tmp_path / "a.xpt", "TOOLONGNAME", "", columns=[Column("A")])
    with pytest.raises(XptError, match="column name"):
        XptWriter(tmp_path / "a.xpt", "A", "", columns=[Column("1A")])
    with pytest.raises(XptError, match="length"):
        XptWriter(tmp_path / "a.xpt", "A", "", columns=[Column("A", "", "char", 201)])
    with pytest.raises(XptError, match="twice"):
        XptWriter(tmp_path / "a.xpt", "A", "", columns=[Column("A"), Column("a")])
    with XptWriter(tmp_path / "b.xpt", "B", "", columns=[Column("N")]) as x:
        with pytest.raises(XptError, match="N"):
            x.write_row(("text",))
        with pytest.raises(XptError, match="1 columns"):
            x.write_row((1, 2))


def test_long_label_is_cut_to_40_bytes_at_a_character_boundary(tmp_path):
    path = tmp_path / "l.xpt"
    label = "疼痛" * 10  # 60 bytes
    with XptWriter(path, "L", label, columns=[Column("A", label)]) as x:
        x.write_row((1,))
    _df, meta = pyreadstat.read_xport(str(path), encoding="utf-8")
    assert meta.column_labels == ["疼痛" * 6 + "疼"]  # 13 characters, 39 bytes
    assert meta.file_label == "疼痛" * 6 + "疼"


def test_empty_dataset_reads_back_with_columns_and_no_rows(tmp_path):
    path = tmp_path / "e.xpt"
    _write(path, rows=[])
    df, meta = pyreadstat.read_xport(str(path), encoding="utf-8")
    assert len(df) == 0 and meta.column_names == [c.name for c in COLUMNS]
    assert meta.column_labels == [c.label for c in COLUMNS]
    # pandas.read_sas cannot read a member without observations (it raises StopIteration); its
    # iterator form still gives the columns
    with pd.read_sas(path, format="xport", encoding="utf-8", iterator=True) as reader:
        assert [c.upper() for c in reader.columns] == [c.name for c in COLUMNS] and reader.nobs == 0


def test_rows_stream_with_flat_memory(tmp_path):
    def peak(n):
        tracemalloc.start()
        with XptWriter(tmp_path / f"m{n}.xpt", "M", "", columns=COLUMNS) as x:
            for i in range(n):
                x.write_row((f"CSC-{i:05d}", i * 0.5, "value", i, i))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2_000), peak(30_000)
    assert large < small * 2 + 50_000, (small, large)
    df, _ = pyreadstat.read_xport(str(tmp_path / "m30000.xpt"))
    assert len(df) == 30_000 and df["QSSTRESN"].iloc[-1] == 29_999 * 0.5


def test_namestr_positions(tmp_path):
    path = tmp_path / "p.xpt"
    _write(path)
    raw = path.read_bytes()
    start = raw.index(b"HEADER RECORD*******NAMESTR") + CARD
    positions = [struct.unpack(">i", raw[start + i * 140 + 84: start + i * 140 + 88])[0] for i in range(5)]
    assert positions == [0, 20, 28, 88, 96]


AWKWARD = [Column("T", "Text", "char", 6), Column("N", "Number", "num"), Column("U", "Chinese", "char", 6),
           Column("M", "Another number", "num")]


class _Text(str):
    def __str__(self):
        return "其他"


def _awkward_rows():
    """Values the compiled encoder must give the reference's bytes for: repeats, equal numbers of
    other types, zeros of both signs, NaN, None, text at its column's length, non-text in text."""
    rows = [("abc", 1, "腰痛", 1.0), ("abc", 1.0, "腰痛", True), ("", 0, None, -0.0), (None, -0.0, "", 0.0),
            ("abcdef", float("nan"), "腰痛", False), ("x", None, "ab", 1e-70), (7, 2.5, 1.5, -118.625),
            (["a"], True, _Text("x"), 10**15), (True, 3, "中", 2**53 + 1), ("a b ", 1e70, "  ", -1e-70)]
    rows += [(f"{i % 97}", i * 0.25, "重复", i) for i in range(3 * 2048)]  # past the cache's size
    return rows


def test_the_compiled_encoder_writes_the_references_bytes(tmp_path):
    from annulus.interchange.xpt import _encode_values

    rows = _awkward_rows()
    with XptWriter(tmp_path / "a.xpt", "A", "", columns=AWKWARD) as x:
        for row in rows:
            x.write_row(row)
    raw = (tmp_path / "a.xpt").read_bytes()
    obs = raw.index(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!") + CARD
    expected = b"".join(_encode_values(AWKWARD, row) for row in rows)
    assert raw[obs:obs + len(expected)] == expected
    assert raw[obs + len(expected):] == b" " * (len(raw) - obs - len(expected))


def test_errors_are_the_references_and_the_row_is_not_written(tmp_path):
    with XptWriter(tmp_path / "e.xpt", "E", "", columns=AWKWARD) as x:
        x.write_row(("ok", 1, "好", 2))
        for row, message in [(("abcdefg", 1, "", 2), "column T: a value of 7 bytes"),
                             (("a", "1", "", 2), "column N: '1' is not a number"),
                             (("a", 1, "腰痛腰", 2), "column U: a value of 9 bytes"),
                             (("a", 1, "", 1e80), "column M: 1e\\+80 is too large"),
                             (("a", 1, ""), "a row has 3 values for 4 columns"),
                             (("a", [1], "", 2), "column N: \\[1\\] is not a number"),
                             (("a", Decimal(1), "", 2), "column N: Decimal")]:  # though equal to a 1 written
            with pytest.raises(XptError, match=message):
                x.write_row(row)
        x.write_row(("ok", 1, "好", 2))
    df, _ = pyreadstat.read_xport(str(tmp_path / "e.xpt"), encoding="utf-8")
    assert df["T"].tolist() == ["ok", "ok"]


def test_rows_written_in_encoded_parts_are_the_rows_written_whole(tmp_path):
    rows = _awkward_rows()[:50]
    with XptWriter(tmp_path / "whole.xpt", "P", "", columns=AWKWARD) as whole:
        for row in rows:
            whole.write_row(row)
    with XptWriter(tmp_path / "parts.xpt", "P", "", columns=AWKWARD) as parts:
        head, tail = parts.encoder(0, 2), parts.encoder(2, 4)
        for row in rows:
            parts.write_encoded((head(row[:2]), tail(row[2:])))
        with pytest.raises(XptError, match="column T"):
            head(("abcdefgh", 1))
    assert (tmp_path / "parts.xpt").read_bytes() == (tmp_path / "whole.xpt").read_bytes()
    broken = XptWriter(tmp_path / "broken.xpt", "P", "", columns=AWKWARD)
    broken.write_encoded((broken.encoder(0, 2)(("a", 1)),))  # half a row
    with pytest.raises(XptError, match="not a row"):
        broken.close()
