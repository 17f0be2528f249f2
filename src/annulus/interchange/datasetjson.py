"""A streaming CDISC Dataset-JSON v1.1 writer (no Django).

    with DatasetJsonWriter(path, name="AE", label="Adverse Events", columns=[...], meta={...}) as out:
        for row in rows:
            out.write_row(row)

The file is one JSON object written in three parts so that memory stays flat however many rows a
dataset has: first the top-level keys (``datasetJSONCreationDateTime``, ``datasetJSONVersion``
"1.1.0", ``fileOID``, ``dbLastModifiedDateTime``, ``originator``, ``sourceSystem``, ``studyOID``,
``metaDataVersionOID``, ``metaDataRef``, ``itemGroupOID``, ``name``, ``label`` and ``columns``),
then ``rows`` one array at a time, then ``records`` (the row count, known only at the end). JSON
objects are unordered, so ``records`` after ``rows`` is valid Dataset-JSON; a reader that needs
the count before the rows reads the whole file anyway (``json.load``) or uses the NDJSON variant.

Each column is ``{itemOID, name, label, dataType, targetDataType?, length?, keySequence?}``:
``dataType`` one of the v1.1 logical types ("string", "integer", "decimal", "float", "double",
"boolean", "datetime", "date", "time", "URI"); ``targetDataType`` "decimal" marks a decimal
carried as a JSON string (not used here: numbers are written as JSON numbers with
``dataType`` "double"/"integer"). Values are ``None`` (JSON ``null``) when missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

VERSION = "1.1.0"
DATA_TYPES = ("string", "integer", "decimal", "float", "double", "boolean", "datetime", "date", "time", "URI")


class DatasetJsonError(ValueError):
    pass


_INF = math.inf
BUFFER = 1 << 14  # characters of rows a writer collects before it writes them to the file


def _list_encoder():
    """``json.dumps(values, ensure_ascii=False)`` of a list of values, the encoder made once (the C
    one json.dumps itself uses, without the check for circular references a flat row cannot have)."""
    encoder = json.JSONEncoder(ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has the C encoder
        return encoder.encode
    c_encode = make(None, encoder.default, json.encoder.encode_basestring, None, encoder.key_separator,
                    encoder.item_separator, False, False, True)
    return lambda values: "".join(c_encode(values, 0))


_dumps = _list_encoder()


def _values(row) -> list:
    """The row's values for JSON: NaN and infinite floats as None (``null``)."""
    return [None if isinstance(v, float) and (v != v or v == _INF or v == -_INF) else v for v in row]


class DatasetJsonWriter:
    """One dataset, one file; ``write_row(tuple)`` in the columns' order; ``close()`` ends it."""

    def __init__(self, path, *, name: str, label: str, columns: list[dict], meta: dict):
        for c in columns:
            if c.get("dataType") not in DATA_TYPES:
                raise DatasetJsonError(f"column {c.get('name')}: dataType {c.get('dataType')!r} is not a v1.1 type")
        self.path = Path(path)
        self.columns = columns
        self.rows = 0
        head = {"datasetJSONCreationDateTime": meta["datasetJSONCreationDateTime"],
                "datasetJSONVersion": VERSION}
        for key in ("fileOID", "dbLastModifiedDateTime", "originator", "sourceSystem", "studyOID",
                    "metaDataVersionOID", "metaDataRef"):
            if meta.get(key) is not None:
                head[key] = meta[key]
        head["itemGroupOID"] = meta["itemGroupOID"]
        head["name"] = name
        head["label"] = label
        head["columns"] = columns
        text = json.dumps(head, ensure_ascii=False)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._file.write(text[:-1] + ', "rows": [')
        self._buffer: list[str] = []  # rows not yet written...
        self._pending = 0  # ...and their characters (BUFFER at most, and a row)

    def write_row(self, row) -> None:
        if len(row) != len(self.columns):
            raise DatasetJsonError(f"a row has {len(row)} values for {len(self.columns)} columns")
        self._add(f"{',' if self.rows else ''}\n{_dumps(_values(row))}")

    def encoder(self, start: int, stop: int):
        """A function giving the JSON of the values of columns ``start:stop`` (a sequence, in the
        columns' order) as they stand in a row, for ``write_encoded``: a writer that builds rows
        from parts that repeat encodes each part once."""
        width = len(self.columns[start:stop])
        if not width:
            raise DatasetJsonError(f"no columns from {start} to {stop}")

        def encode(values) -> str:
            if len(values) != width:
                raise DatasetJsonError(f"{len(values)} values for {width} columns")
            return _dumps(_values(values))[1:-1]

        return encode

    def write_encoded(self, parts) -> None:
        """Writes a row given as the JSON of all its columns, in order, in parts (from ``encoder``)."""
        self._add(f"{',' if self.rows else ''}\n[{', '.join(parts)}]")

    def write_encoded_rows(self, rows) -> None:
        """``write_encoded`` of each of ``rows`` (a list of rows in parts; not empty)."""
        text = ("," if self.rows else "") + "\n[" + "],\n[".join(map(", ".join, rows)) + "]"
        self._buffer.append(text)
        self.rows += len(rows)
        self._pending += len(text)
        if self._pending >= BUFFER:
            self._flush()

    def _add(self, text: str) -> None:
        self._buffer.append(text)
        self.rows += 1
        self._pending += len(text)
        if self._pending >= BUFFER:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._file.write("".join(self._buffer))
            self._buffer.clear()
            self._pending = 0

    def close(self) -> None:
        if self._file.closed:
            return
        self._flush()
        self._file.write(f"\n], \"records\": {self.rows}}}\n")
        self._file.close()

    def __enter__(self) -> DatasetJsonWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
