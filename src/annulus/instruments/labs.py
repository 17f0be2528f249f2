"""Laboratory panels against the protocol's reference ranges (P-5.6).

Panels: blood routine, liver function, kidney function, immunology, urinalysis. The reference
ranges and units come from the protocol file and are passed in, either as a mapping
``{analyte: {"unit": "g/L", "low": 130, "high": 175}}`` (qualitative analytes:
``{"unit": "", "kind": "qualitative", "normal": "negative"}``) or as the protocol's panel object
(anything with ``.analytes``, each with ``id``, ``unit``, ``low``, ``high``, ``kind``, ``normal``).

Each value is flagged low / normal / high (qualitative: normal / abnormal). A value entered in
another unit than the protocol's is refused, naming the field: converting silently would hide a
transcription error, and the laboratory report states the unit.

Clinical significance is the investigator's judgement of an out-of-range value (the usual
"NCS / CS" annotation on a laboratory CRF); the code never decides it. "Not clinically
significant" may be noted on any value; "clinically significant" only on an out-of-range one. It reports which
abnormal values still need that judgement, and raises ``clinically_significant`` for the panel
when any value is judged significant, which prompts an adverse-event form.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import InstrumentError, Score, number
from .items import FormSpec, Item, codes

PANELS = {
    "blood_routine": "blood routine",
    "liver_function": "liver function",
    "kidney_function": "kidney function",
    "immunology": "immunology",
    "urinalysis": "urinalysis",
}


def _attr(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _ranges(ranges: Any) -> dict[str, Any]:
    """Accept a mapping by analyte id, or a protocol panel object with ``.analytes``."""
    analytes = _attr(ranges, "analytes")
    if analytes is not None:
        return {_attr(a, "id"): a for a in analytes}
    if isinstance(ranges, Mapping):
        return dict(ranges)
    raise TypeError("ranges must be a mapping of analyte -> range or a panel with .analytes")


def _unit_key(unit: Any) -> str:
    # Spelling variants of the same unit: spaces, letter case, micro sign vs Greek mu.
    return str(unit or "").replace(" ", "").replace("\u00b5", "\u03bc").lower()


def _split(entry: Any) -> tuple[Any, Any, bool]:
    """(value, unit, unit_given) from {"value", "unit"}, (value, unit) or a bare value."""
    if isinstance(entry, Mapping):
        return entry.get("value"), entry.get("unit"), "unit" in entry
    if isinstance(entry, tuple) and len(entry) == 2:
        return entry[0], entry[1], True
    return entry, None, False


def assess_panel(
    panel: str,
    values: Mapping[str, Any],
    ranges: Any,
    judgements: Mapping[str, bool] | None = None,
) -> Score:
    """Flag each value of one panel against its reference range.

    ``values``: ``{analyte: {"value": 142, "unit": "g/L"}}`` (or ``(142, "g/L")``, or a bare
    value taken to be in the protocol's unit). ``judgements``: ``{analyte: True/False}`` —
    the investigator's "clinically significant" call on out-of-range values.
    """
    table = _ranges(ranges)
    judgements = dict(judgements or {})
    for key in values:
        if key not in table:
            raise InstrumentError(
                f"{panel}.{key}", f"not an analyte of the {PANELS.get(panel, panel)} panel"
            )
    results: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for key, ref in table.items():
        field_name = f"{panel}.{key}"
        ref_unit = _attr(ref, "unit") or ""
        entry = values.get(key)
        value, unit, unit_given = _split(entry)
        if value is None:
            missing.append(field_name)
            continue
        if unit_given and _unit_key(unit) != _unit_key(ref_unit):
            raise InstrumentError(
                f"{field_name}.unit",
                f"{key} must be reported in {ref_unit or 'no unit'} (protocol reference range), "
                f"got {unit!r}",
            )
        if _attr(ref, "kind", "numeric") == "qualitative":
            normal = str(_attr(ref, "normal") or "negative")
            if not isinstance(value, str) or not value.strip():
                raise InstrumentError(
                    field_name, f"{key} must be a result such as {normal!r}, got {value!r}"
                )
            flag = "normal" if value.strip().lower() == normal.lower() else "abnormal"
            low = high = None
        else:
            value = number(value, field_name, key)
            low, high = _attr(ref, "low"), _attr(ref, "high")
            if low is not None and value < low:
                flag = "low"
            elif high is not None and value > high:
                flag = "high"
            else:
                flag = "normal"
        significant: bool | None
        if key in judgements:
            # "not clinically significant" (NCS) is true of any value and is accepted for a
            # normal one too; "clinically significant" needs an out-of-range value (a change
            # within the range that matters clinically is recorded as an adverse event).
            if flag == "normal" and judgements[key]:
                raise InstrumentError(
                    f"{field_name}.clinically_significant",
                    "a value within the reference range is not clinically significant; "
                    "choose 'not clinically significant' or leave it empty",
                )
            significant = bool(judgements[key])
        else:
            significant = False if flag == "normal" else None  # None: awaiting judgement
        results[key] = {
            "value": value,
            "unit": ref_unit,
            "low": low,
            "high": high,
            "flag": flag,
            "clinically_significant": significant,
        }
    for key in judgements:
        if key not in results:
            raise InstrumentError(
                f"{panel}.{key}.clinically_significant", "no value to judge for this analyte"
            )
    abnormal = [k for k, r in results.items() if r["flag"] != "normal"]
    return Score(
        f"labs.{panel}",
        None,
        parts=results,
        missing=missing,
        summary={
            "abnormal": abnormal,
            "needs_judgement": [
                k for k in abnormal if results[k]["clinically_significant"] is None
            ],
            "clinically_significant": any(r["clinically_significant"] for r in results.values()),
        },
    )


# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

QUALITATIVE = codes(("negative", "negative", "阴性"), ("trace", "trace", "微量"), ("1+", "1+", "1+"),
                    ("2+", "2+", "2+"), ("3+", "3+", "3+"))
CLINICALLY_SIGNIFICANT = codes(("", "—", "—"), ("no", "not clinically significant", "无临床意义"),
                               ("yes", "clinically significant", "有临床意义"))


def lab_form(protocol, form_id: str, panel_id: str) -> FormSpec:
    panel = protocol.lab_panel(panel_id)
    items = []
    for a in panel.analytes:
        if a.kind == "qualitative":
            items.append(Item(a.id, a.name.en, a.name.zh, "choice", QUALITATIVE, group=a.id))
        else:
            items.append(Item(a.id, a.name.en, a.name.zh, unit=a.unit, group=a.id))
            items.append(Item(f"{a.id}__unit", "unit", "单位", "text", unit=a.unit, required=False, group=a.id))
        items.append(Item(f"{a.id}__cs", "Clinically significant?", "是否有临床意义？", "choice",
                          CLINICALLY_SIGNIFICANT, required=False, group=a.id))
    return FormSpec(form_id, tuple(items), "Enter each result in the unit printed on the laboratory report. "
                    "Judge every value outside the reference range.",
                    "按化验单上的单位录入结果；对每个超出参考范围的值判断其临床意义。",
                    extra={"panel": panel})
