"""A streaming SAS transport (XPORT version 5) writer, as laid out in SAS technical report TS-140
(no Django).

    with XptWriter(path, "QS", "Questionnaires", columns=[
            Column("USUBJID", "Unique Subject Identifier", "char", 20),
            Column("QSSTRESN", "Numeric Result", "num")]) as xpt:
        for row in rows:
            xpt.write_row(("CSC-001", 42.0))

Rows go to the file as they come (a few kilobytes at a time), so the memory is flat however many
rows a dataset has (pyreadstat's ``write_xport`` needs the whole dataset as one DataFrame). The
column spec is declared up front; that is all the header needs.

Speed: the writer compiles one encoder for its columns when it opens (straight-line code: text
encoded and padded in place, numbers looked up in a bounded cache of their encoded bytes, for
clinical numbers repeat) and falls back to encoding a value at a time only for a value the compiled
one does not take, which also gives the errors. A caller whose rows share parts (a participant's
ids, a test's result columns) encodes each part once with ``encoder(start, stop)`` and writes rows
as parts with ``write_encoded``.

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
from itertools import chain
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


# numbers' encoded values a writer keeps (emptied when full, so memory stays flat)
NUMBER_CACHE = 2048
# bytes of rows a writer collects before it writes them to the file
BUFFER = 1 << 14


# the types whose values the cache of numbers holds (a Decimal equal to a cached 1 is still refused)
_EXACT = frozenset({float, int, bool, type(None)})


class _Declined(ValueError):
    """A value the compiled encoder leaves to ``_encode_values`` (which encodes it or names the problem)."""


def _number_encoder(name: str, cache: dict):
    """Encodes a number ``cache.get`` did not find (the same bytes and errors as ``_encode_values``)
    and keeps the bytes of ``int``/``float``/``bool`` values in ``cache`` (emptied when full)."""

    def encode(value) -> bytes:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if isinstance(value, str) or not isinstance(value, (int, float)):
            raise XptError(f"column {name}: {value!r} is not a number")
        try:
            raw = ibm_float(float(value))
        except XptError as error:
            raise XptError(f"column {name}: {error}") from None
        if type(value) in (float, int, bool):
            if len(cache) >= NUMBER_CACHE:
                cache.clear()
                cache[None] = MISSING
            cache[value] = raw
        return raw

    return encode


def _text(value) -> bytes:
    """A text value's bytes before padding, when it is not a ``str``."""
    return b"" if value is None else str(value).encode("utf-8")


def _encode_values(columns, values) -> bytes:
    """The bytes of ``values`` in ``columns``, one at a time (``XptWriter._encode``)."""
    out = bytearray()
    for c, value in zip(columns, values):
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
        self._written = 0  # bytes of observations written to the file
        self._numbers = {None: MISSING}  # number -> its 8 bytes (bounded: NUMBER_CACHE)
        self._fast = self._compile()
        self._buffer: list[bytes] = []  # encoded rows (or their parts) not yet written...
        self._pending = 0  # ...and their bytes (BUFFER at most, and a row)
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
        """One row's bytes, a value at a time: the reference the compiled encoder (``_compile``)
        matches byte for byte, and the path for what that one declines (a bad value, a wrong number
        of values, an unhashable value) so that the errors stay the same."""
        if len(row) != len(self.columns):
            raise XptError(f"dataset {self.name}: a row has {len(row)} values for {len(self.columns)} columns")
        return _encode_values(self.columns, row)

    def _compile(self, start: int = 0, stop: int | None = None):
        """The encoder of columns ``start:stop`` (all by default), built once as straight-line code:
        text encoded and padded in place; numbers looked up in the writer's bounded cache of encoded
        numbers (clinical numbers repeat: sequence numbers, study days, scores; only ``int``,
        ``float`` and ``bool`` values, and None) and converted only when not found there
        (``_number_encoder``). It gives ``_encode_values``'s bytes; a value it
        does not take (too long, not a number, a wrong number of values, an unhashable number)
        raises ``ValueError`` or ``TypeError`` and is left to ``_encode_values``."""
        columns = self.columns[start:stop]
        if not columns:
            raise XptError(f"dataset {self.name}: no columns from {start} to {stop}")
        namespace = {"join": b"".join, "number": self._numbers.get, "exact": _EXACT, "text": _text,
                     "Declined": _Declined}
        args = ["join=join", "number=number", "exact=exact", "text=text", "Declined=Declined"]
        lines, parts, checks = [], [], []
        for i, c in enumerate(columns):
            if c.type == "num":
                namespace[f"m{i}"] = _number_encoder(c.name, self._numbers)
                args.append(f"m{i}=m{i}")
                parts.append(f"(number(v{i}) if v{i}.__class__ in exact else None) or m{i}(v{i})")
            else:
                lines.append(f"    e{i} = v{i}.encode() if v{i}.__class__ is str else text(v{i})")
                checks.append(f"len(e{i}) > {c.length}")
                parts.append(f"e{i}.ljust({c.length})")
        source = [f"def encode(row, {', '.join(args)}):",
                  f"    {', '.join(f'v{i}' for i in range(len(columns)))}, = row",
                  *lines]
        if checks:
            source += [f"    if {' or '.join(checks)}:", "        raise Declined"]
        source.append(f"    return join(({', '.join(parts)},))")
        exec(compile("\n".join(source) + "\n", f"<xpt row encoder of {self.name}>", "exec"), namespace)  # noqa: S102
        return namespace["encode"]

    def encoder(self, start: int, stop: int):
        """A function giving the bytes of the values of columns ``start:stop`` (a sequence, in the
        columns' order), for ``write_encoded``: a writer that builds rows from parts that repeat
        (a participant's id, a test's result columns) encodes each part once."""
        compiled = self._compile(start, stop)
        columns = self.columns[start:stop]

        def encode(values) -> bytes:
            try:
                return compiled(values)
            except (TypeError, ValueError):  # the reference encodes it or names the problem
                if len(values) != len(columns):
                    raise XptError(f"dataset {self.name}: {len(values)} values for the {len(columns)} columns "
                                   f"{columns[0].name}-{columns[-1].name}") from None
                return _encode_values(columns, values)

        return encode

    def write_encoded(self, parts) -> None:
        """Writes a row given as the bytes of all its columns, in order, in parts (from ``encoder``).
        (A row of the wrong length is an ``XptError`` when the writer closes.)"""
        self._buffer.extend(parts)
        self.rows += 1
        self._pending += self.row_length
        if self._pending >= BUFFER:
            self._flush()

    def write_encoded_rows(self, rows) -> None:
        """``write_encoded`` of each of ``rows`` (a list of rows in parts)."""
        self._buffer.extend(chain.from_iterable(rows))
        self.rows += len(rows)
        self._pending += len(rows) * self.row_length
        if self._pending >= BUFFER:
            self._flush()

    def write_row(self, row) -> None:
        try:
            data = self._fast(row)
        except (TypeError, ValueError):  # the reference encodes it or names the problem
            data = self._encode(row)
        self._buffer.append(data)
        self.rows += 1
        self._pending += len(data)
        if self._pending >= BUFFER:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._pending = 0
            self._file.write(data)
            self._written += len(data)

    def close(self) -> None:
        if self._file.closed:
            return
        self._flush()
        if self._written % CARD:
            self._file.write(b" " * (CARD - self._written % CARD))
        self._file.close()
        if self._written != self.rows * self.row_length:
            raise XptError(f"dataset {self.name}: {self._written} bytes of observations for {self.rows} rows of "
                           f"{self.row_length} bytes (write_encoded given parts that are not a row)")

    def __enter__(self) -> XptWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
