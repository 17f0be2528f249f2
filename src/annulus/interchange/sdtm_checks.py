"""Conformance checks of an SDTM export directory (no Django).

The CDISC CORE rules engine (``cdisc-rules-engine``) needs its rules cache, filled from the CDISC
Library API with an API key; this installation has neither the package index entry nor network
access to the Library, so it cannot run here. These are the checks we can stand behind without it,
each a plain rule of SDTMIG 3.3 / the SAS transport format:

* ``required``: every Required variable of the domain (our table of SDTMIG 3.3 "Req" variables
  for the domains written) is present, and has a value on every row;
* ``seq``: ``--SEQ`` unique within ``USUBJID`` in each domain;
* ``usubjid``: every ``USUBJID`` of a subject-level domain is in DM (and DM has one row each);
* ``domain``: ``DOMAIN`` equals the dataset name;
* ``iso8601``: every ``--DTC`` value is ISO 8601 (complete or right-truncated date/time);
* ``names``: variable and dataset names at most 8 characters, upper case, starting with a letter;
  variable and dataset labels at most 40 characters;
* ``testcd``: ``--TESTCD`` (and ``TSPARMCD``, ``IETESTCD``) at most 8 characters, starting with a
  letter, letters/digits/underscore only; ``--TESTCD`` and ``--TEST`` one-to-one;
* ``ct``: values of controlled variables are terms of the CDISC codelist (the published subset
  passed in ``ct_terms``, e.g. ``tests/fixtures/cdisc_ct_subset.json``): an error for a
  non-extensible codelist, a warning for an extensible one.

``check(out_dir, ct_terms=None) -> list[Finding]``; without ``ct_terms`` the terms of
``annulus.interchange.ct`` are used.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# SDTMIG 3.3 Required variables of the domains Annulus writes
REQUIRED = {
    "DM": ("STUDYID", "DOMAIN", "USUBJID", "SUBJID", "SITEID", "SEX", "COUNTRY"),
    "DS": ("STUDYID", "DOMAIN", "USUBJID", "DSSEQ", "DSTERM", "DSDECOD"),
    "SV": ("STUDYID", "DOMAIN", "USUBJID", "VISITNUM"),
    "AE": ("STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AETERM", "AEDECOD"),
    "EX": ("STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT"),
    "PR": ("STUDYID", "DOMAIN", "USUBJID", "PRSEQ", "PRTRT"),
    "QS": ("STUDYID", "DOMAIN", "USUBJID", "QSSEQ", "QSTESTCD", "QSTEST", "QSCAT"),
    "VS": ("STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSTEST"),
    "LB": ("STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST"),
    "MK": ("STUDYID", "DOMAIN", "USUBJID", "MKSEQ", "MKTESTCD", "MKTEST"),
    "TS": ("STUDYID", "DOMAIN", "TSSEQ", "TSPARMCD", "TSPARM"),
    "TA": ("STUDYID", "DOMAIN", "ARMCD", "ARM", "TAETORD", "ETCD", "EPOCH"),
    "TE": ("STUDYID", "DOMAIN", "ETCD", "ELEMENT", "TESTRL"),
    "TV": ("STUDYID", "DOMAIN", "VISITNUM", "TVSTRL"),
    "TI": ("STUDYID", "DOMAIN", "IETESTCD", "IETEST", "IECAT"),
}
# Required variables that may be empty for a stated reason (a warning, not an error)
EXPLAINED_NULL = {("AE", "AEDECOD"): "not coded yet: the eCRF stores the MedDRA PT code (AEPTCD), not the term"}
SUBJECT_LEVEL = ("DS", "SV", "AE", "EX", "PR", "QS", "VS", "LB", "MK")
TEST_PAIRS = {"QS": ("QSTESTCD", "QSTEST"), "VS": ("VSTESTCD", "VSTEST"), "LB": ("LBTESTCD", "LBTEST"),
              "MK": ("MKTESTCD", "MKTEST"), "TS": ("TSPARMCD", "TSPARM"), "TI": ("IETESTCD", "IETEST")}
# variable -> codelist(s) it draws on (names as in ct.CDISC / the fixture)
CONTROLLED = {
    "SEX": ("SEX",), "AGEU": ("AGEU",), "DTHFL": ("NY",), "ARMNRS": ("ARMNULRS",), "DOMAIN": ("DOMAIN",),
    "DSCAT": ("DSCAT",), "DSDECOD": ("NCOMPLT", "PROTMLST"), "EPOCH": ("EPOCH",), "AESER": ("NY",),
    "AESDTH": ("NY",), "AESLIFE": ("NY",), "AESHOSP": ("NY",), "AESDISAB": ("NY",), "AESCONG": ("NY",),
    "AESMIE": ("NY",), "AEOUT": ("OUT",), "EXROUTE": ("ROUTE",), "EXDOSFRM": ("FRM",), "EXDOSU": ("UNIT",),
    "EXLOC": ("LOC",), "PRLOC": ("LOC",), "VSTESTCD": ("VSTESTCD",), "VSTEST": ("VSTEST",),
    "VSORRESU": ("VSRESU",), "VSSTRESU": ("VSRESU",), "LBTESTCD": ("LBTESTCD",), "LBTEST": ("LBTEST",),
    "LBSTRESU": ("UNIT",), "LBNRIND": ("NRIND",), "LBSPEC": ("SPECTYPE",), "MKLOC": ("LOC",),
    "MKMETHOD": ("METHOD",), "MKSTRESU": ("UNIT",), "QSSTRESU": ("UNIT",), "IECAT": ("IECAT",),
    "TSPARMCD": ("TSPARMCD",), "TSPARM": ("TSPARM",),
    "QSBLFL": ("NY",), "VSBLFL": ("NY",), "LBBLFL": ("NY",), "MKBLFL": ("NY",),
    "QSDRVFL": ("NY",), "VSDRVFL": ("NY",), "LBDRVFL": ("NY",), "MKDRVFL": ("NY",),
}
NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
TESTCD = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
ISO8601 = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d+)?)?)?)?)?)?$")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "warning"
    dataset: str
    variable: str
    message: str
    row: int | None = None  # 1-based row of the first offending record

    def __str__(self) -> str:
        where = f"{self.dataset}.{self.variable}" + (f" row {self.row}" if self.row else "")
        return f"[{self.severity}] {self.rule} {where}: {self.message}"


def _read(path: Path) -> tuple[str, str, list[str], dict, list[list]]:
    """(name, label, columns, {column: label}, rows) of one dataset file."""
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        cols = [c["name"] for c in data["columns"]]
        return data["name"], data["label"], cols, {c["name"]: c["label"] for c in data["columns"]}, data.get("rows", [])
    import pyreadstat

    df, meta = pyreadstat.read_xport(str(path), encoding="utf-8")
    rows = [[None if (isinstance(v, float) and v != v) or v == "" else v for v in r]
            for r in df.itertuples(index=False, name=None)]
    return (meta.table_name or path.stem.upper(), meta.file_label or "", list(df.columns),
            dict(zip(meta.column_names, meta.column_labels)), rows)


def _terms(ct_terms: dict | None) -> dict:
    """codelist name -> (extensible, set of terms)."""
    if ct_terms is None:
        from . import ct

        return {name: (cl.extensible, set(cl.terms)) for name, cl in ct.CDISC.items()}
    out = {}
    for name, cl in ct_terms["codelists"].items():
        out[name] = (cl["extensible"], set(cl["terms"]) | set(ct_terms.get("unconfirmed", {}).get(name, [])))
    return out


def check(out_dir, ct_terms: dict | None = None) -> list[Finding]:
    """Every finding on the SDTM datasets (``*.xpt`` or ``*.json``) in ``out_dir``."""
    out_dir = Path(out_dir)
    files = sorted(out_dir.glob("*.xpt")) or sorted(p for p in out_dir.glob("*.json"))
    terms = _terms(ct_terms)
    findings: list[Finding] = []
    datasets = {}
    for path in files:
        name, label, cols, labels, rows = _read(path)
        datasets[name.upper()] = (cols, rows)
        findings += _names(name, label, cols, labels)
    dm_subjects: set = set()
    if "DM" in datasets:
        cols, rows = datasets["DM"]
        if "USUBJID" in cols:
            i = cols.index("USUBJID")
            seen = [r[i] for r in rows]
            dm_subjects = set(seen)
            if len(seen) != len(dm_subjects):
                findings.append(Finding("usubjid", "error", "DM", "USUBJID", "DM has more than one row for a subject"))
    else:
        findings.append(Finding("usubjid", "error", "DM", "", "no DM dataset"))
    for name, (cols, rows) in datasets.items():
        findings += _required(name, cols, rows)
        findings += _domain(name, cols, rows)
        findings += _seq(name, cols, rows)
        if name in SUBJECT_LEVEL:
            findings += _in_dm(name, cols, rows, dm_subjects)
        findings += _dates(name, cols, rows)
        findings += _testcd(name, cols, rows)
        findings += _ct(name, cols, rows, terms)
    return findings


def _names(name, label, cols, labels) -> list[Finding]:
    out = []
    if not NAME.match(name):
        out.append(Finding("names", "error", name, "", f"dataset name {name!r} is not 1-8 upper-case characters"))
    if len(label) > 40:
        out.append(Finding("names", "error", name, "", f"dataset label longer than 40 characters: {label!r}"))
    for c in cols:
        if not NAME.match(c):
            out.append(Finding("names", "error", name, c, f"variable name {c!r} is not 1-8 upper-case characters"))
        if len(labels.get(c) or "") > 40:
            out.append(Finding("names", "error", name, c, f"label longer than 40 characters: {labels[c]!r}"))
    return out


def _first_null(cols, rows, var) -> int | None:
    i = cols.index(var)
    return next((n for n, r in enumerate(rows, start=1) if r[i] is None or r[i] == ""), None)


def _required(name, cols, rows) -> list[Finding]:
    out = []
    for var in REQUIRED.get(name, ()):
        if var not in cols:
            out.append(Finding("required", "error", name, var, "Required variable missing"))
            continue
        row = _first_null(cols, rows, var)
        if row is not None:
            reason = EXPLAINED_NULL.get((name, var))
            out.append(Finding("required", "warning" if reason else "error", name, var,
                               f"Required variable is empty ({reason})" if reason else "Required variable is empty",
                               row))
    return out


def _domain(name, cols, rows) -> list[Finding]:
    if "DOMAIN" not in cols:
        return []
    i = cols.index("DOMAIN")
    bad = next((n for n, r in enumerate(rows, start=1) if r[i] != name), None)
    return [Finding("domain", "error", name, "DOMAIN", f"DOMAIN is {rows[bad - 1][i]!r}, not {name!r}", bad)] \
        if bad else []


def _seq(name, cols, rows) -> list[Finding]:
    var = f"{name}SEQ"
    if var not in cols or "USUBJID" not in cols:
        return []
    i, u = cols.index(var), cols.index("USUBJID")
    seen = set()
    for n, r in enumerate(rows, start=1):
        key = (r[u], r[i])
        if key in seen:
            return [Finding("seq", "error", name, var, f"{var} {r[i]!r} repeated for {r[u]}", n)]
        seen.add(key)
    return []


def _in_dm(name, cols, rows, dm_subjects) -> list[Finding]:
    if "USUBJID" not in cols:
        return []
    u = cols.index("USUBJID")
    for n, r in enumerate(rows, start=1):
        if r[u] not in dm_subjects:
            return [Finding("usubjid", "error", name, "USUBJID", f"{r[u]!r} is not in DM", n)]
    return []


def _dates(name, cols, rows) -> list[Finding]:
    out = []
    for i, c in enumerate(cols):
        if not c.endswith("DTC"):
            continue
        for n, r in enumerate(rows, start=1):
            v = r[i]
            if v not in (None, "") and not ISO8601.match(str(v)):
                out.append(Finding("iso8601", "error", name, c, f"{v!r} is not an ISO 8601 date/time", n))
                break
    return out


def _testcd(name, cols, rows) -> list[Finding]:
    out = []
    for c in cols:
        if not (c.endswith("TESTCD") or c == "TSPARMCD"):
            continue
        i = cols.index(c)
        for n, r in enumerate(rows, start=1):
            if r[i] is not None and not TESTCD.match(str(r[i])):
                out.append(Finding("testcd", "error", name, c, f"{r[i]!r}: at most 8 characters, starting with a "
                                                              "letter, letters, digits or _", n))
                break
    pair = TEST_PAIRS.get(name)
    if pair and all(p in cols for p in pair):
        a, b = cols.index(pair[0]), cols.index(pair[1])
        forward, backward = defaultdict(set), defaultdict(set)
        for r in rows:
            forward[r[a]].add(r[b])
            backward[r[b]].add(r[a])
        for code, names in forward.items():
            if len(names) > 1:
                out.append(Finding("testcd", "error", name, pair[0], f"{code!r} has several {pair[1]}: "
                                                                     f"{sorted(map(str, names))}"))
        for test, codes in backward.items():
            if len(codes) > 1:
                out.append(Finding("testcd", "error", name, pair[1], f"{test!r} has several {pair[0]}: "
                                                                     f"{sorted(map(str, codes))}"))
    return out


def _ct(name, cols, rows, terms) -> list[Finding]:
    out = []
    for i, c in enumerate(cols):
        lists = CONTROLLED.get(c)
        if not lists or any(cl not in terms for cl in lists):
            continue
        allowed = set().union(*(terms[cl][1] for cl in lists))
        extensible = any(terms[cl][0] for cl in lists)
        for n, r in enumerate(rows, start=1):
            v = r[i]
            if v not in (None, "") and v not in allowed:
                out.append(Finding("ct", "warning" if extensible else "error", name, c,
                                   f"{v!r} is not a term of {'/'.join(lists)}"
                                   + (" (extensible codelist: a sponsor term)" if extensible else ""), n))
                break
    return out
