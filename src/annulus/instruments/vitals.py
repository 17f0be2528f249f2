"""Vital signs with plausibility limits (P-5.6).

The limits are not normal ranges: they catch values that cannot belong to a living adult
outpatient (a mistyped decimal point, pulse keyed into the blood-pressure box). A value outside
them is refused, naming the field. The protocol file may pass its own limits
(``{id: {"unit": ..., "min": ..., "max": ...}}`` or objects with those attributes).
Diastolic pressure must be below systolic.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import InstrumentError, Score, check_items, number
from .items import FormSpec, Item

NAME = "vitals"

# id -> (label, unit, min, max), in the order of the eCRF and of `annulus score vitals`.
DEFAULT_LIMITS: dict[str, tuple[str, str, float, float]] = {
    "temperature": ("body temperature", "°C", 34.0, 42.0),
    "pulse": ("pulse", "beats/min", 30.0, 200.0),
    "respiration": ("respiratory rate", "breaths/min", 6.0, 40.0),
    "systolic": ("systolic blood pressure", "mmHg", 60.0, 250.0),
    "diastolic": ("diastolic blood pressure", "mmHg", 30.0, 150.0),
}
ORDER = tuple(DEFAULT_LIMITS)
# Other ids a protocol file may use for the same measurements.
ALIASES = {
    "body_temperature": "temperature",
    "temp": "temperature",
    "heart_rate": "pulse",
    "respiratory_rate": "respiration",
    "resp_rate": "respiration",
    "systolic_bp": "systolic",
    "sbp": "systolic",
    "diastolic_bp": "diastolic",
    "dbp": "diastolic",
}


def _attr(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _limits(overrides: Mapping[str, Any] | None) -> dict[str, tuple[str, str, float, float]]:
    limits = dict(DEFAULT_LIMITS)
    for key, spec in (overrides or {}).items():
        key = ALIASES.get(key, key)
        if key not in limits:
            raise InstrumentError(f"limits.{key}", f"unknown vital sign; known: {', '.join(ORDER)}")
        label, unit, low, high = limits[key]
        limits[key] = (
            label,
            _attr(spec, "unit") or unit,
            float(_attr(spec, "min") if _attr(spec, "min") is not None else low),
            float(_attr(spec, "max") if _attr(spec, "max") is not None else high),
        )
    return limits


def check_vitals(
    values: Mapping[str, Any],
    limits: Mapping[str, Any] | None = None,
    units: Mapping[str, str] | None = None,
    field_names: Mapping[str, str] | None = None,
) -> Score:
    """Check one set of vital signs keyed by id; missing ones are listed, not refused.

    ``units`` (optional) gives the unit each value was entered in; a unit other than the
    protocol's is refused rather than converted, so nothing is silently rescaled.
    """
    table = _limits(limits)
    names = dict(field_names or {})
    values = {ALIASES.get(k, k): v for k, v in values.items()}
    units = {ALIASES.get(k, k): u for k, u in (units or {}).items()}

    def fname(key: str) -> str:
        return names.get(key, key)

    checked: dict[str, float | None] = {}
    missing: list[str] = []
    for key in values:
        if key not in table:
            raise InstrumentError(fname(key), f"unknown vital sign; known: {', '.join(ORDER)}")
    for key, (label, unit, low, high) in table.items():
        field_name = fname(key)
        raw = values.get(key)
        if raw is None:
            checked[key] = None
            missing.append(field_name)
            continue
        if units and key in units and units[key] != unit:
            raise InstrumentError(
                f"{field_name}.unit", f"{label} must be in {unit}, got {units[key]!r}"
            )
        value = number(raw, field_name, label)
        if not low <= value <= high:
            raise InstrumentError(
                field_name,
                f"{label} must be {low:g}–{high:g} {unit} (plausibility limit), got {raw!r}",
            )
        checked[key] = value
    sbp, dbp = checked.get("systolic"), checked.get("diastolic")
    if sbp is not None and dbp is not None and dbp >= sbp:
        raise InstrumentError(
            fname("diastolic"),
            f"diastolic blood pressure must be below systolic ({dbp:g} ≥ {sbp:g} mmHg)",
        )
    return Score(
        NAME,
        None,
        parts={k: {"value": v, "unit": table[k][1]} for k, v in checked.items()},
        missing=missing,
        reason=None,
        unit=None,
    )


def score_vitals(items: list[Any]) -> Score:
    """items: [temperature °C, pulse /min, respiration /min, systolic mmHg, diastolic mmHg]."""
    items = check_items("vital signs", items, len(ORDER))
    return check_vitals(
        dict(zip(ORDER, items)), field_names={k: f"items[{i}]" for i, k in enumerate(ORDER)}
    )


# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------


# the VSTESTCD of each vital sign the protocol may declare (SDTM controlled terminology); another
# sign's code is its id in capitals, cut to 8 characters
SDTM_CODES = {"temperature": "TEMP", "pulse": "PULSE", "respiration": "RESP", "systolic_bp": "SYSBP",
              "diastolic_bp": "DIABP"}


def vitals_form(protocol) -> FormSpec:
    return FormSpec(NAME, tuple(Item(v.id, v.name.en, v.name.zh, unit=v.unit, min=v.min, max=v.max,
                                     sdtm_code=SDTM_CODES.get(v.id, v.id.upper()[:8]))
                                for v in protocol.vital_signs),
                    "Seated, after 5 minutes' rest.", "静坐休息5分钟后测量。", sdtm_domain="VS")
