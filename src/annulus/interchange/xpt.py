"""A streaming SAS transport (XPORT version 5) writer, as laid out in SAS technical report TS-140
(no Django).

    with XptWriter(path, "QS", "Questionnaires", columns=[
            Column("USUBJID", "Unique Subject Identifier", "char", 20),
            Column("QSSTRESN", "Numeric Result", "num")]) as xpt:
        for row in rows:
            xpt.write_row(("CSC-001", 42.0))

Rows go to the file as they come, one 80-byte card at a time, so the memory is flat however many
rows a dataset has (pyreadstat's ``write_xport`` needs the whole dataset as one DataFrame). The
column spec is declared up front; that is all the header needs.

The file: the library header (3 cards), one member (member header, descriptor header, two cards of
member data, the NAMESTR header and one 140-byte NAMESTR per column, padded to 80), the OBS header
and the observations back to back, the last card padded with blanks. Numbers are 8-byte IBM/370
floating point (base 16, 7-bit excess-64 exponent, 56-bit fraction; every IEEE double in the IBM
range converts exactly because its 53-bit mantissa fits the 56-bit fraction); ``None`` and NaN are
the SAS missing value ``.`` (0x2E followed by zeros). Names are at most 8 characters, upper-cased,
a letter or ``_`` followed by letters, digits and ``_``; labels at most 40 bytes (a longer label is
cut at a character boundary); character columns 1–200 bytes.

Text: XPORT v5 is officially ASCII. This writer stores text as UTF-8 bytes (Chinese takes 3 bytes a
character; the declared length counts bytes); read it back with ``pyreadstat.read_xport(path,
encoding="utf-8")`` or ``pandas.read_sas(path, format="xport", encoding="utf-8")``. A value longer
than its column's length is a ``ValueError`` naming the column, never cut silently.

Readers: pyreadstat reads every file this writes. ``pandas.read_sas`` does too, except that for a
dataset whose rows are 80 bytes or shorter it takes every blank 8-byte block of the last card for
padding, so it may drop the last rows when their text ends in blanks (a pandas limitation; rows
longer than 80 bytes, as every export dataset of Annulus has, are counted exactly); it also reads a
zero (eight zero bytes, as SAS itself writes it) as 5.4e-79, and cannot read a member with no
observations (pyreadstat reads both right).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

CARD = 80
NAMESTR = 140
MAX_CHAR = 200
MISSING = b"\x2e" + b"\x00" * 7
_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,7}$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SAS_VERSION = b"9.4     "
_OS = b"Annulus "


class XptError(ValueError):
    """A column spec or a value the transport format cannot hold."""


@dataclass(frozen=True)
class Column:
    """One variable: ``type`` is ``"num"`` (8-byte IBM float) or ``"char"`` (``length`` bytes, 1-200)."""

    name: str
    label: str = ""
    type: str = "num"
    length: int = 8


def valid_name(name: str) -> bool:
    """Whether ``name`` is a SAS v5 name as written (upper case, at most 8 characters)."""
    return bool(_NAME.match(name))


def ibm_float(value: float) -> bytes:
    """The 8-byte IBM/370 double of ``value`` (``XptError`` when it is out of the IBM range)."""
    if value == 0:
        return b"\x00" * 8
    if math.isinf(value):
        raise XptError(f"{value} cannot be stored in a SAS transport file")
    sign = 0x80 if value < 0 else 0
    mantissa, exp2 = math.frexp(abs(value))  # abs(value) = mantissa * 2**exp2, 0.5 <= mantissa < 1
    exp16 = -((-exp2) // 4)  # ceil(exp2 / 4)
    shift = 4 * exp16 - exp2  # 0..3: fraction = mantissa / 2**shift, in [1/16, 1)
    fraction = int(mantissa * (1 << 53)) << (3 - shift)  # exact: 53 bits into 56
    biased = exp16 + 64
    if biased > 127:
        raise XptError(f"{value!r} is too large for a SAS transport file (IBM floating point)")
    if biased < 0:
        # below the normalised range: denormalise (loses low bits) or give up when nothing is left
        fraction >>= 4 * (-biased)
        biased = 0
        if fraction == 0:
            raise XptError(f"{value!r} is too small for a SAS transport file (IBM floating point)")
    return bytes([sign | biased]) + fraction.to_bytes(7, "big")


def _cut(text: str, size: int) -> bytes:
    """``text`` as UTF-8 in at most ``size`` bytes, cut at a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= size:
        return raw
    return raw[:size].decode("utf-8", "ignore").encode("utf-8")


def _pad(raw: bytes, size: int) -> bytes:
    return raw + b" " * (size - len(raw))


def _stamp(when: datetime) -> bytes:
    """``ddMMMyy:hh:mm:ss`` (16 bytes)."""
    return f"{when.day:02d}{_MONTHS[when.month - 1]}{when.year % 100:02d}:{when:%H:%M:%S}".encode("ascii")


def _header(kind: str, digits: str = "0" * 30) -> bytes:
    card = f"HEADER RECORD*******{kind:<8}HEADER RECORD!!!!!!!{digits}  ".encode("ascii")
    assert len(card) == CARD, card
    return card


class XptWriter:
    """Writes one dataset (one member) to ``path``, a row at a time.

    ``XptWriter(path, dataset_name, label, columns=[Column(...)])``; ``write_row(tuple)`` in the
    columns' order (numbers as int/float/bool or ``None``; text as ``str`` or ``None``);
    ``close()`` pads the last card. Usable as a context manager; ``rows`` counts what was written.
    """

    def __init__(self, path, dataset_name: str, label: str = "", columns=(), *, created: datetime | None = None):
        self.path = Path(path)
        self.name = dataset_name.upper()
        if not valid_name(self.name):
            raise XptError(f"dataset name {dataset_name!r}: SAS transport names are 1-8 letters, digits or _, "
                           "starting with a letter or _")
        self.columns = tuple(columns)
        if not self.columns:
            raise XptError(f"dataset {self.name}: at least one column is needed")
        seen = set()
        for c in self.columns:
            if not valid_name(c.name.upper()):
                raise XptError(f"column name {c.name!r}: SAS transport names are 1-8 letters, digits or _, "
                               "starting with a letter or _")
            if c.name.upper() in seen:
                raise XptError(f"column name {c.name!r} appears twice")
            seen.add(c.name.upper())
            if c.type not in ("num", "char"):
                raise XptError(f"column {c.name}: type must be 'num' or 'char', not {c.type!r}")
            if c.type == "char" and not 1 <= c.length <= MAX_CHAR:
                raise XptError(f"column {c.name}: character length must be 1-{MAX_CHAR}, not {c.length}")
        self.label = label
        self.created = created or datetime.now(timezone.utc)
        self.row_length = sum(8 if c.type == "num" else c.length for c in self.columns)
        self.rows = 0
        self._written = 0  # bytes of observations written
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        try:
            self._file.write(self._headers())
        except BaseException:
            self._file.close()
            raise

    # -- headers ----------------------------------------------------------------------------------
    def _headers(self) -> bytes:
        stamp = _stamp(self.created)
        out = bytearray()
        out += _header("LIBRARY")
        out += b"SAS     SAS     SASLIB  " + _SAS_VERSION + _OS + b" " * 24 + stamp
        out += _pad(stamp, CARD)
        out += _header("MEMBER", f"{0:017d}16{0:08d}{NAMESTR}")
        out += _header("DSCRPTR")
        out += b"SAS     " + _pad(self.name.encode("ascii"), 8) + b"SASDATA " + _SAS_VERSION + _OS + b" " * 24 + stamp
        out += stamp + b" " * 16 + _pad(_cut(self.label, 40), 40) + b" " * 8
        out += _header("NAMESTR", f"000000{len(self.columns):04d}{0:020d}")
        names = bytearray()
        position = 0
        for number, c in enumerate(self.columns, start=1):
            length = 8 if c.type == "num" else c.length
            names += struct.pack(
                ">hhhh8s40s8shhh2s8shhi52s",
                1 if c.type == "num" else 2, 0, length, number,
                _pad(c.name.upper().encode("ascii"), 8), _pad(_cut(c.label, 40), 40),
                b" " * 8, 0, 0, 0 if c.type == "num" else 0, b"\x00\x00",
                b" " * 8, 0, 0, position, b"\x00" * 52)
            position += length
        out += names
        if len(names) % CARD:
            out += b" " * (CARD - len(names) % CARD)
        out += _header("OBS")
        assert len(out) % CARD == 0
        return bytes(out)

    # -- rows -------------------------------------------------------------------------------------
    def _encode(self, row) -> bytes:
        if len(row) != len(self.columns):
            raise XptError(f"dataset {self.name}: a row has {len(row)} values for {len(self.columns)} columns")
        out = bytearray()
        for c, value in zip(self.columns, row):
            if c.type == "num":
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    out += MISSING
                    continue
                if isinstance(value, str) or not isinstance(value, (int, float)):
                    raise XptError(f"column {c.name}: {value!r} is not a number")
                try:
                    out += ibm_float(float(value))
                except XptError as error:
                    raise XptError(f"column {c.name}: {error}") from None
            else:
                raw = b"" if value is None else str(value).encode("utf-8")
                if len(raw) > c.length:
                    raise XptError(f"column {c.name}: a value of {len(raw)} bytes is longer than the column's "
                                   f"length {c.length}: {str(value)[:40]!r}")
                out += _pad(raw, c.length)
        return bytes(out)

    def write_row(self, row) -> None:
        data = self._encode(row)
        self._file.write(data)
        self._written += len(data)
        self.rows += 1

    def close(self) -> None:
        if self._file.closed:
            return
        if self._written % CARD:
            self._file.write(b" " * (CARD - self._written % CARD))
        self._file.close()

    def __enter__(self) -> XptWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
