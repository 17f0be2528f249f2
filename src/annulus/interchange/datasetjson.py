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


def _value(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


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

    def write_row(self, row) -> None:
        if len(row) != len(self.columns):
            raise DatasetJsonError(f"a row has {len(row)} values for {len(self.columns)} columns")
        self._file.write(("\n" if self.rows == 0 else ",\n") + json.dumps([_value(v) for v in row], ensure_ascii=False))
        self.rows += 1

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.write(f"\n], \"records\": {self.rows}}}\n")
        self._file.close()

    def __enter__(self) -> DatasetJsonWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
