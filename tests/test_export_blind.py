"""The blind in exported files (X-3.8, X-7.6): for every blinded role that may export, the export in
every format is asked for through the API, its zip downloaded and every file searched for an arm
(high, mid, low, control as whole values), an arm's name, a dose, a group label tied to a
participant, and a drug code. Binary statistics files (.sav, .dta, .xpt) are read with pyreadstat
(values, variable labels and value labels); the others are searched as text.

Trial-design datasets (SDTM TA, TE, TV, TI, TS and their define.xml entries) describe the
protocol's arms as the registry does, tied to no participant; like the protocol page they may name
the arms, but never a preparation recipe."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import zipfile

import pytest
from django.test import Client

from annulus.allocation.models import Envelope
from annulus.exports.capabilities import CAPABILITIES
from annulus.exports.models import ExportJob
from annulus.interchange import FORMATS
from annulus.trial.selectors import active_protocol

# the crawl's trial (8 randomised, 2 per arm), built once for this module too (with its users)
from .test_blind_crawl import ARM_IDS, RECIPE_WORDS, crawl_trial, trial, users  # noqa: F401

BLINDED_EXPORTERS = sorted(CAPABILITIES["export.run"] - {"pharmacist"})
DESIGN = re.compile(r"(^|/)(ta|te|tv|ti|ts)\.(xpt|json|csv)$", re.I)
GROUP_COLUMN = re.compile(r"group|arm|trt|label", re.I)
GROUP_VALUE = re.compile(r"^(group\s*)?[A-D]$|^组\s*[A-D]$", re.I)
DOSES = ["cells_per_disc", "dose_score", "20000000", "10000000", "5000000", "2.0e7", "1.0e7", "5.0e6",
         "2×10⁷", "1×10⁷", "5×10⁶"]


def available_formats() -> list[str]:
    return [fmt for fmt, module in FORMATS.items() if importlib.util.find_spec(module) is not None]


@pytest.fixture(autouse=True)
def _inline(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


def _words(protocol) -> list[str]:
    words = []
    for arm in protocol.arms:
        words += [arm.name.en, arm.name.zh]
    return [w for w in words if w] + DOSES + RECIPE_WORDS


def _cells_leak(name: str, columns: list[str], rows, codes: list[str]) -> list[str]:
    found = []
    for row in rows:
        for col, value in zip(columns, row):
            if value is None:
                continue
            text = str(value).strip()
            if text.lower() in ARM_IDS:
                found.append(f"{name}: {col}={text!r}")
            elif GROUP_COLUMN.search(str(col)) and GROUP_VALUE.match(text):
                found.append(f"{name}: {col}={text!r} (a group label)")
            elif text in codes:
                found.append(f"{name}: {col}={text!r} (a drug code)")
    return found


def _text_leak(name: str, text: str, words: list[str], codes: list[str], design: bool) -> list[str]:
    found = [f"{name}: recipe {w!r}" for w in RECIPE_WORDS if w in text]
    if design:
        return found
    found += [f"{name}: {w!r}" for w in words if w in text]
    found += [f"{name}: drug code {c}" for c in codes if c in text]
    # an arm id as a whole value: an XML text or attribute, a JSON string, a CSV cell
    for arm in ARM_IDS:
        pattern = rf'(>\s*{arm}\s*<)|(=\s*"{arm}")|("{arm}")|((^|,){arm}(,|\r?$))'
        if re.search(pattern, text, re.I | re.M):
            found.append(f"{name}: arm id {arm!r} as a value")
    return found


def _stat_leak(name: str, data: bytes, words, codes, tmp_path) -> list[str]:
    import pyreadstat

    path = tmp_path / name.replace("/", "_")
    path.write_bytes(data)
    reader = {".sav": pyreadstat.read_sav, ".dta": pyreadstat.read_dta, ".xpt": pyreadstat.read_xport}[path.suffix.lower()]
    df, meta = reader(str(path))
    design = bool(DESIGN.search(name))
    found = [] if design else _cells_leak(name, list(df.columns), df.itertuples(index=False, name=None), codes)
    labels = " ".join(str(x) for x in (meta.column_labels or []) if x)
    labels += " " + json.dumps(getattr(meta, "variable_value_labels", {}) or {}, ensure_ascii=False)
    labels += " " + str(getattr(meta, "file_label", "") or "") + " " + " ".join(getattr(meta, "notes", []) or [])
    found += [f"{name} labels: {w!r}" for w in (RECIPE_WORDS if design else words) if w in labels]
    return found


def _file_leaks(name: str, data: bytes, words, codes, tmp_path) -> list[str]:
    suffix = name.rsplit(".", 1)[-1].lower()
    if suffix in ("sav", "dta", "xpt"):
        # the bytes too: a text label inside the binary file
        found = _stat_leak(name, data, words, codes, tmp_path)
        text = data.decode("latin-1")
        return found + [f"{name} bytes: drug code {c}" for c in codes if c in text]
    text = data.decode("utf-8", "replace")
    design = bool(DESIGN.search(name)) or name.endswith("define.xml")
    found = _text_leak(name, text, words, codes, design)
    if suffix == "csv" and not design:
        import csv

        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        if rows:
            found += _cells_leak(name, rows[0], rows[1:], codes)
    return found


def _export(role, users, fmt) -> zipfile.ZipFile:
    from annulus.accounts.services import issue_token

    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user=users[role], name='blind test')}"}
    resp = client.post("/api/v1/exports", json.dumps({"format": fmt}), content_type="application/json", **auth)
    assert resp.status_code == 202, (role, fmt, resp.content)
    job = resp.json()
    assert job["status"] == "done", (role, fmt, job["error"])
    assert job["blinding"] == "blinded" and job["subjects"] == 10
    dl = client.get(job["download_url"], **auth)
    assert dl.status_code == 200
    return zipfile.ZipFile(io.BytesIO(b"".join(dl.streaming_content)))


@pytest.mark.req("X-3.8", "X-7.6")
@pytest.mark.parametrize("role", BLINDED_EXPORTERS)
def test_no_blinded_export_reveals_an_allocation(role, users, trial, tmp_path):
    formats = available_formats()
    assert "csv" in formats
    words = _words(active_protocol())
    codes = [e.drug_code for e in Envelope.objects.filter(participant__isnull=False)]
    assert len(codes) == 8
    problems = []
    for fmt in formats:
        zf = _export(role, users, fmt)
        assert zf.namelist()
        for name in zf.namelist():
            problems += [f"{role} {fmt} {p}" for p in _file_leaks(name, zf.read(name), words, codes, tmp_path)]
    assert ExportJob.objects.count() == len(formats)
    assert not problems, "\n".join(problems[:40])


@pytest.mark.req("X-3.8")
def test_the_search_finds_a_leak(users, trial, tmp_path, monkeypatch):
    """The search is only worth something if it fails when the blind breaks: an export made as if
    the statistician were unblinded to treatments carries the arms and is caught."""
    from annulus.allocation import selectors

    monkeypatch.setattr(selectors, "export_blinding", lambda user, at_most="arms": "arms")
    words = _words(active_protocol())
    codes = [e.drug_code for e in Envelope.objects.filter(participant__isnull=False)]
    from annulus.accounts.services import issue_token

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user=users['statistician'], name='t')}"}
    job = client.post("/api/v1/exports", json.dumps({"format": "csv"}), content_type="application/json", **auth).json()
    assert job["status"] == "done", job["error"]
    zf = zipfile.ZipFile(io.BytesIO(b"".join(client.get(job["download_url"], **auth).streaming_content)))
    problems = [p for name in zf.namelist() for p in _file_leaks(name, zf.read(name), words, codes, tmp_path)]
    assert any("arm id" in p or "=" in p for p in problems), problems


@pytest.mark.req("X-3.8")
def test_the_pharmacist_export_carries_drug_codes(users, trial, tmp_path):
    """The level-2 key holder's export carries drug codes (and only it): the search above would
    find them, so their absence in the blinded exports means something."""
    from annulus.accounts.services import issue_token

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user=users['pharmacist'], name='t')}"}
    job = client.post("/api/v1/exports", json.dumps({"format": "csv"}), content_type="application/json", **auth).json()
    assert job["status"] == "done", job["error"]
    zf = zipfile.ZipFile(io.BytesIO(b"".join(client.get(job["download_url"], **auth).streaming_content)))
    text = "".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist())
    codes = [e.drug_code for e in Envelope.objects.filter(participant__isnull=False)]
    assert any(c in text for c in codes)
