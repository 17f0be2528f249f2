"""The dictionary as rows, CSV (UTF-8, header row, both languages as columns) and JSON (no Django)."""

from __future__ import annotations

import csv
import io

from .model import Dictionary, Entry

COLUMNS = ("form", "form_name_en", "form_name_zh", "scope", "item", "label_en", "label_zh", "type", "unit",
           "min", "max", "ref_low", "ref_high", "required", "codelist", "codelist_en", "codelist_zh", "visits",
           "sdv_critical", "sdv_when", "sdtm_domain", "sdtm_testcd", "sdtm_variable", "group", "source")


def _num(v) -> str:
    return "" if v is None else f"{v:g}"


def row(d: Dictionary, e: Entry) -> dict:
    form = d.form(e.form)
    return {
        "form": e.form, "form_name_en": form.name_en, "form_name_zh": form.name_zh, "scope": form.scope,
        "item": e.item, "label_en": e.label_en, "label_zh": e.label_zh, "type": e.type, "unit": e.unit,
        "min": _num(e.min), "max": _num(e.max),
        "ref_low": _num(e.ref_low), "ref_high": _num(e.ref_high), "required": "yes" if e.required else "no",
        "codelist": "|".join(v for v, _en, _zh in e.codelist),
        "codelist_en": e.codelist_text("en"), "codelist_zh": e.codelist_text("zh"),
        "visits": " ".join(e.visits), "sdv_critical": "yes" if e.sdv_critical else "no", "sdv_when": e.sdv_when,
        "sdtm_domain": e.sdtm_domain, "sdtm_testcd": e.sdtm_testcd, "sdtm_variable": e.sdtm_variable,
        "group": e.group, "source": e.source,
    }


def rows(d: Dictionary) -> list[dict]:
    return [row(d, e) for e in d.entries]


def to_csv(d: Dictionary) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows(d))
    return out.getvalue()


def entry_dict(e: Entry) -> dict:
    return {"item": e.item, "label_en": e.label_en, "label_zh": e.label_zh, "type": e.type, "unit": e.unit,
            "min": e.min, "max": e.max, "ref_low": e.ref_low,
            "ref_high": e.ref_high, "required": e.required,
            "codelist": [{"value": v, "en": en, "zh": zh} for v, en, zh in e.codelist],
            "visits": list(e.visits), "sdv_critical": e.sdv_critical, "sdv_when": e.sdv_when,
            "sdtm_domain": e.sdtm_domain, "sdtm_testcd": e.sdtm_testcd, "sdtm_variable": e.sdtm_variable,
            "group": e.group, "source": e.source}


def as_dict(d: Dictionary) -> dict:
    return {"protocol_version": d.protocol_version,
            "forms": [{"id": f.id, "name_en": f.name_en, "name_zh": f.name_zh, "scope": f.scope,
                       "visits": list(f.visits), "source": f.source,
                       "items": [entry_dict(e) for e in f.items]} for f in d.forms]}
