"""Chinese completeness: every message of the source is translated, and no label names its unit twice.

The catalogue is re-extracted from the source into a scratch copy (Django's ``makemessages``,
GNU gettext), so a string added to a template or a module without a translation fails here, not in
front of a coordinator reading the page in Chinese.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "annulus"
PO = SRC / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def _entries(text: str) -> list[dict]:
    """The entries of a .po file: msgid, msgstr (plural forms joined), flags, references."""
    entries, current = [], None
    key = None

    def close():
        if current is not None and "msgid" in current:
            entries.append(current)

    for line in text.splitlines():
        if not line.strip():
            close()
            current, key = None, None
            continue
        if current is None:
            current = {"flags": "", "refs": "", "msgid": None, "msgstr": ""}
            current.pop("msgid")
        if line.startswith("#,"):
            current["flags"] += line[2:]
        elif line.startswith("#:"):
            current["refs"] += line[2:]
        elif line.startswith("#"):
            continue
        else:
            m = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d+\])?|msgctxt)\s+"(.*)"$', line)
            if m:
                key = m.group(1)
                if key.startswith("msgstr"):
                    current["msgstr"] += ("\x00" if current.get("_strs") else "") + m.group(2)
                    current["_strs"] = current.get("_strs", 0) + 1
                    key = "msgstr"
                else:
                    current[key] = m.group(2)
            elif line.startswith('"') and key:
                current[key] = current.get(key, "") + line[1:-1]
    close()
    return entries


def _problems(entries: list[dict]) -> list[str]:
    out = []
    for e in entries:
        if e["msgid"] == "" and not e.get("msgid_plural"):
            continue  # the header
        refs = e["refs"].strip() or "?"
        if "fuzzy" in e["flags"]:
            out.append(f"fuzzy: {e['msgid']!r} ({refs})")
        elif any(part == "" for part in e["msgstr"].split("\x00")):
            out.append(f"untranslated: {e['msgid']!r} ({refs})")
    return out


def test_po_parser_sees_untranslated_and_fuzzy_entries():
    text = ('msgid ""\nmsgstr "Content-Type: text/plain"\n\n'
            '#: a.html:1\nmsgid "Done"\nmsgstr "完成"\n\n'
            '#: b.html:2\nmsgid "Missing"\nmsgstr ""\n\n'
            '#, fuzzy\nmsgid "Guess"\nmsgstr "猜"\n\n'
            'msgid "one"\nmsgid_plural "many"\nmsgstr[0] ""\n')
    problems = _problems(_entries(text))
    assert problems == ["untranslated: 'Missing' (b.html:2)", "fuzzy: 'Guess' (?)", "untranslated: 'one' (?)"]


def test_shipped_catalogue_has_every_entry_translated():
    assert _problems(_entries(PO.read_text(encoding="utf-8"))) == []


def test_every_message_in_the_source_is_translated_to_chinese(tmp_path):
    if shutil.which("xgettext") is None:
        pytest.skip("GNU gettext (xgettext) is not installed")
    copy = tmp_path / "annulus"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo", "static"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "annulus.site.settings"}
    run = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--ignore", "migrations/*", "--no-obsolete"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    extracted = _entries((copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8"))
    assert len(extracted) > 500  # the catalogue really was extracted
    assert _problems(extracted) == []


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_no_label_names_its_unit_twice(protocol_version, language):
    from annulus.participants.forms import EvidenceForm
    from annulus.trial.selectors import active_protocol
    from annulus.visits import crf
    from annulus.visits.forms import CrfForm

    protocol = active_protocol()
    labels = {name: str(f.label) for name, f in EvidenceForm(protocol=protocol, language=language).fields.items()}
    units = {s.id: s.unit for s in protocol.eligibility.fields if s.unit}
    for form in protocol.schedule.forms:
        try:
            spec = crf.spec_for(protocol, form.id)
        except Exception:  # noqa: BLE001 - procedure records are not eCRF forms
            continue
        for name, f in CrfForm(spec=spec, language=language).fields.items():
            labels[f"{form.id}.{name}"] = str(f.label)
        for item in spec.items:
            if item.unit and item.kind == "number":
                units[f"{form.id}.{item.id}"] = item.unit
    from annulus.labels import unit_in

    checked = 0
    for name, label in labels.items():
        unit = unit_in(units[name], language) if name in units else None
        assert not re.search(r"\(([^()]+)\)\s*\(\1\)|（([^（）]+)）\s*[（(]\2[)）]", label), f"{name}: {label}"
        if unit:
            checked += 1
            assert label.count(unit) >= 1, f"{name}: {label}"
            word = re.compile(r"(?<![A-Za-z])" + re.escape(unit) + r"(?![A-Za-z])")
            bracketed = [b for b in re.findall(r"[(（]([^()（）]*)[)）]", label) if word.search(b)]
            assert len(bracketed) == 1, f"{name}: {label!r} names its unit {unit!r} {len(bracketed)} times"
    assert checked >= 5


def test_unit_rule():
    from annulus.labels import with_unit

    assert with_unit("VAS pain (0-100 mm)", "mm") == "VAS pain (0-100 mm)"
    assert with_unit("VAS疼痛评分（0-100 mm）", "mm", "zh-hans") == "VAS疼痛评分（0-100 mm）"
    assert with_unit("ODI（%）", "%", "zh-hans") == "ODI（%）"
    assert with_unit("Pain on the 100 mm line (mm from 'no pain')", "mm") == "Pain on the 100 mm line (mm from 'no pain')"
    assert with_unit("Urine red cells (per /uL)", "/uL") == "Urine red cells (per /uL)"
    assert with_unit("Height (cm)", "m") == "Height (cm) (m)"
    assert with_unit("Slip", "mm") == "Slip (mm)"
    assert with_unit("滑移", "mm", "zh-hans") == "滑移（mm）"
    assert with_unit("Slip", "") == "Slip"
    # a unit written as a word is read in the page's language; a symbol as written
    assert with_unit("Knee pain on most days for", "months") == "Knee pain on most days for (months)"
    assert with_unit("大多数日子膝痛持续时间", "months", "zh-hans") == "大多数日子膝痛持续时间（个月）"
    assert with_unit("疼痛持续时间（个月）", "months", "zh-hans") == "疼痛持续时间（个月）"
    assert with_unit("体重指数", "kg/m2", "zh-hans") == "体重指数（kg/m2）"
