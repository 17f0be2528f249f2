"""Imaging read-outs at the treated level (P-5.5).

- Modic type per vertebral endplate: none, I, II, III (Modic MT et al., Radiology
  1988;166:193–199 and 1988;168:177–186).
- Pfirrmann grade per disc on T2-weighted MRI: I–V (Pfirrmann CW et al., Spine
  2001;26:1873–1878).
- Disc height in mm on the lateral radiograph, and the percent loss against the mean height of
  the adjacent normal discs: loss % = (reference − index) / reference × 100, reference = mean
  of the adjacent discs judged normal (the reader leaves an abnormal neighbour empty).
- Flexion–extension range of motion at L4-5: the segmental angle on the flexion film minus the
  angle on the extension film, in degrees (absolute value, so the sign convention of the
  reading software does not matter).

Modic and Pfirrmann are read, not computed; the code only checks and normalises the category so
that "2", 2 and "II" are stored alike.
"""

from __future__ import annotations

from typing import Any

from .base import InstrumentError, Score, check_items, number
from .items import FormSpec, Item, codes

MODIC_TYPES = ("none", "I", "II", "III")
PFIRRMANN_GRADES = ("I", "II", "III", "IV", "V")
# Plausibility limits: adult lumbar discs are about 8–16 mm; anything outside these is a typo.
DISC_HEIGHT_MM = (0.5, 25.0)
SEGMENT_ANGLE_DEG = (-45.0, 45.0)
ENDPLATES = ("superior_endplate", "inferior_endplate")


def _roman_or_int(
    value: Any, field_name: str, label: str, names: tuple[str, ...], first: int
) -> str:
    """Map 'II', 'ii', 2, '2' to the canonical name; ``first`` is the integer of names[0]."""
    original = value
    if isinstance(value, bool):
        value = None  # never accept True/False as a category (True == 1 in Python)
    if isinstance(value, str):
        text = value.strip()
        for name in names:
            if text.upper() == name.upper():
                return name
        if text.isascii() and text.isdecimal():
            value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and first <= value < first + len(names):
        return names[value - first]
    raise InstrumentError(
        field_name, f"{label} must be one of {', '.join(names)}, got {original!r}"
    )


def modic_type(value: Any, field_name: str = "modic") -> str:
    """'none', 'I', 'II' or 'III' (0–3 accepted as numbers)."""
    return _roman_or_int(value, field_name, "Modic type", MODIC_TYPES, 0)


def pfirrmann_grade(value: Any, field_name: str = "pfirrmann") -> str:
    """'I'–'V' (1–5 accepted as numbers)."""
    return _roman_or_int(value, field_name, "Pfirrmann grade", PFIRRMANN_GRADES, 1)


def _disc_height(value: Any, field_name: str) -> float:
    mm = number(value, field_name, "disc height (mm)")
    low, high = DISC_HEIGHT_MM
    if not low <= mm <= high:
        raise InstrumentError(field_name, f"disc height must be {low:g}–{high:g} mm, got {value!r}")
    return mm


def disc_height_loss(index_mm: Any, adjacent_normal_mm: list[Any]) -> float | None:
    """Percent loss of the index disc's height against the mean of the adjacent normal discs.

    Positive = the index disc is lower than its normal neighbours. ``None`` without a reference.
    """
    index = _disc_height(index_mm, "index_mm")
    refs = [
        _disc_height(v, f"adjacent_normal_mm[{i}]")
        for i, v in enumerate(adjacent_normal_mm)
        if v is not None
    ]
    if not refs:
        return None
    reference = sum(refs) / len(refs)
    return (reference - index) / reference * 100.0


def _angle(value: Any, field_name: str, label: str) -> float:
    deg = number(value, field_name, label)
    low, high = SEGMENT_ANGLE_DEG
    if not low <= deg <= high:
        raise InstrumentError(
            field_name, f"{label} must be {low:g}–{high:g} degrees, got {value!r}"
        )
    return deg


def range_of_motion(flexion_deg: Any, extension_deg: Any) -> float:
    """Flexion–extension range of motion (degrees) from the two segmental angles."""
    flexion = _angle(flexion_deg, "flexion_deg", "segmental angle in flexion")
    extension = _angle(extension_deg, "extension_deg", "segmental angle in extension")
    return abs(flexion - extension)


# Item-list entry points used by the registry and `annulus score`.


def score_modic(items: list[Any]) -> Score:
    """items: [superior endplate, inferior endplate] of the index disc."""
    items = check_items("Modic", items, len(ENDPLATES))
    parts: dict[str, str | None] = {}
    missing = []
    for i, (value, endplate) in enumerate(zip(items, ENDPLATES)):
        if value is None:
            missing.append(f"items[{i}]")
            parts[endplate] = None
        else:
            parts[endplate] = modic_type(value, f"items[{i}]")
    reason = "endplate not read" if missing else None
    return Score("modic", None, parts=parts, missing=missing, reason=reason, unit="category")


def score_pfirrmann(items: list[Any]) -> Score:
    """items: [grade of the index disc]; the score is the grade as a number 1–5."""
    (value,) = check_items("Pfirrmann", items, 1)
    if value is None:
        return Score("pfirrmann", None, missing=["items[0]"], reason="grade not read", unit="grade")
    grade = pfirrmann_grade(value, "items[0]")
    return Score(
        "pfirrmann", float(PFIRRMANN_GRADES.index(grade) + 1), parts={"grade": grade}, unit="grade"
    )


def score_disc_height(items: list[Any]) -> Score:
    """items: [index disc mm, disc above mm, disc below mm]; a neighbour that is not normal is null.

    The score is the percent loss against the mean of the normal neighbours.
    """
    index, above, below = check_items("disc height", items, 3)
    if index is None:
        return Score(
            "disc_height", None, missing=["items[0]"], reason="index disc not measured", unit="%"
        )
    index_mm = _disc_height(index, "items[0]")
    refs = {}
    for i, v in ((1, above), (2, below)):
        if v is not None:
            refs[i] = _disc_height(v, f"items[{i}]")
    parts: dict[str, Any] = {
        "index_mm": index_mm,
        "adjacent_normal_mm": list(refs.values()),
    }
    if not refs:
        return Score(
            "disc_height",
            None,
            parts=parts,
            missing=["items[1]", "items[2]"],
            reason="no adjacent normal disc to compare with",
            unit="%",
        )
    reference = sum(refs.values()) / len(refs)
    parts["reference_mm"] = reference
    missing = [f"items[{i}]" for i in (1, 2) if i not in refs]
    loss = (reference - index_mm) / reference * 100.0
    return Score("disc_height", loss, parts=parts, missing=missing, unit="%")


def score_rom(items: list[Any]) -> Score:
    """items: [L4-5 segmental angle on flexion film, on extension film] in degrees."""
    flexion, extension = check_items("range of motion", items, 2)
    missing = [f"items[{i}]" for i, v in enumerate((flexion, extension)) if v is None]
    if missing:
        return Score("rom", None, missing=missing, reason="both films are needed", unit="degrees")
    f = _angle(flexion, "items[0]", "segmental angle in flexion")
    e = _angle(extension, "items[1]", "segmental angle in extension")
    parts = {"flexion_deg": f, "extension_deg": e, "level": "L4-5"}
    return Score("rom", abs(f - e), parts=parts, unit="degrees")


# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

_MODIC = codes(("none", "none", "无"), ("I", "type I", "I型"), ("II", "type II", "II型"), ("III", "type III", "III型"))
_PFIRRMANN = codes(*[(g, f"grade {g}", f"{g}级") for g in ("I", "II", "III", "IV", "V")])
FORM = FormSpec("imaging", (
    Item("modic_superior", "Modic type, superior endplate of L4-5", "L4-5 上终板 Modic 分型", "choice", _MODIC, sdtm_code="MODICSUP", group="mri"),
    Item("modic_inferior", "Modic type, inferior endplate of L4-5", "L4-5 下终板 Modic 分型", "choice", _MODIC, sdtm_code="MODICINF", group="mri"),
    Item("pfirrmann", "Pfirrmann grade of L4-5", "L4-5 Pfirrmann 分级", "choice", _PFIRRMANN, sdtm_code="PFIRGRD", group="mri"),
    Item("height_index_mm", "Disc height L4-5", "L4-5 椎间盘高度", unit="mm", min=0.5, max=25, sdtm_code="DSCHTIDX", group="height"),
    Item("height_above_mm", "Disc height L3-4 (empty if not normal)", "L3-4 椎间盘高度（非正常则留空）", unit="mm",
         min=0.5, max=25, required=False, sdtm_code="DSCHTABV", group="height"),
    Item("height_below_mm", "Disc height L5-S1 (empty if not normal)", "L5-S1 椎间盘高度（非正常则留空）", unit="mm",
         min=0.5, max=25, required=False, sdtm_code="DSCHTBLW", group="height"),
    Item("rom_flexion_deg", "L4-5 segmental angle, flexion film", "L4-5 节段角度（屈曲位片）", unit="°", min=-45, max=45, sdtm_code="SGANGFLX", group="rom"),
    Item("rom_extension_deg", "L4-5 segmental angle, extension film", "L4-5 节段角度（伸展位片）", unit="°", min=-45, max=45, sdtm_code="SGANGEXT", group="rom"),
), "MRI (Modic, Pfirrmann) and dynamic radiographs (disc height, range of motion).",
   "MRI（Modic、Pfirrmann）及动力位X线片（椎间盘高度、活动度）。", sdtm_domain="MK")  # MK: musculoskeletal findings
