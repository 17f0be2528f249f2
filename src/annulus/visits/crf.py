"""The eCRF forms: their items (labels in English and Simplified Chinese), how raw answers are
read, and how each form is scored with ``annulus.instruments``. No Django models here; the
service stores what this module returns.

Every error is a ``RuleViolation`` naming the item as it appears on the form (``vas_mm``,
``s4``, ``q7``, ``hgb__unit``), never an instrument's internal position (``items[3]``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from annulus import dates
from annulus.errors import Problems, RuleViolation, RuleViolations
from annulus.instruments import InstrumentError, joa, koos, nrs, odi, score, sf36, vas
from annulus.instruments.forms import AE_REVIEW, STATIC_SPECS, spec_for
from annulus.instruments.imaging import FORM as IMAGING
from annulus.instruments.imaging import modic_type, pfirrmann_grade
from annulus.instruments.items import FormSpec, Item
from annulus.instruments.joa import FORM as JOA
from annulus.instruments.koos import FORM as KOOS
from annulus.instruments.labs import assess_panel
from annulus.instruments.labs import lab_form as lab_spec
from annulus.instruments.nrs import FORM as NRS
from annulus.instruments.odi import FORM as ODI
from annulus.instruments.sf36 import FORM as SF36
from annulus.instruments.vas import FORM as VAS
from annulus.instruments.vitals import ALIASES as VITAL_ALIASES
from annulus.instruments.vitals import NAME as VITALS
from annulus.instruments.vitals import check_vitals
from annulus.instruments.vitals import vitals_form as vitals_spec

__all__ = ["AE_REVIEW", "IMAGING", "JOA", "KOOS", "NRS", "ODI", "SCORING", "SF36", "STATIC_SPECS", "VAS", "FormSpec",
           "Item", "Scoring", "compute", "completion_problem", "headline", "instrument_of", "lab_spec", "spec_for",
           "vitals_spec"]


# ---- reading raw answers ----------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _to_number(item: Item, raw: Any) -> float | int:
    if isinstance(raw, bool):
        raise RuleViolation(item.id, f"{item.en} must be a number, got {raw!r}")
    if isinstance(raw, (int, float)):
        value = raw
    else:
        text = str(raw).strip().replace("\u2212", "-")
        if not _NUMBER.match(text):
            raise RuleViolation(item.id, f"{item.en} must be a number, got {raw!r}")
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleViolation(item.id, f"{item.en} must be a finite number")
    if item.min is not None and item.max is not None and not item.min <= value <= item.max:
        unit = f" {item.unit}" if item.unit else ""
        raise RuleViolation(item.id, f"{item.en} must be {item.min:g}–{item.max:g}{unit}, got {raw!r}")
    if isinstance(value, float) and value.is_integer() and item.step == "1":
        value = int(value)
    return value


_READINGS = {"modic_superior": modic_type, "modic_inferior": modic_type, "pfirrmann": pfirrmann_grade}


def clean(spec: FormSpec, raw: dict) -> dict:
    """Raw answers (strings from a web form, or JSON values) -> typed answers; blanks are dropped.
    An unknown item, a non-number or a code the form does not print is refused, naming the item;
    every such item at once (``RuleViolations``)."""
    if not isinstance(raw, dict):
        raise RuleViolation("items", "must be an object of item -> answer")
    out: dict[str, Any] = {}
    problems = Problems()
    for key in raw:
        if spec.item(key) is None:
            problems.add(key, f"is not an item of the {spec.id} form")
    for item in spec.items:
        value = raw.get(item.id)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        with problems.check():
            out[item.id] = _clean_item(item, value)
    problems.raise_any()
    return out


def _clean_when(item: Item, value) -> str:
    """A date (``YYYY-MM-DD``) or a date and time (ISO 8601; a time without offset is the site's
    local time) -> its ISO text, with the offset for a time; implausible ones are refused."""
    from django.utils import timezone

    if isinstance(value, datetime) and item.kind == "date":
        value = value.date()
    text = value.isoformat() if isinstance(value, (date, datetime)) else str(value).strip()
    try:
        if item.kind == "date":
            parsed = date.fromisoformat(text)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        example = "2026-03-01" if item.kind == "date" else "2026-03-01T09:30"
        raise RuleViolation(item.id, f"{item.en} must be a {'date' if item.kind == 'date' else 'date and time'} "
                                     f"such as {example}, got {value!r}") from None
    if item.kind == "datetime" and parsed.tzinfo is None:
        try:
            parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
        except (OverflowError, ValueError):
            raise RuleViolation(item.id, f"{item.en} {dates.OUT_OF_RANGE}") from None
    problem = dates.problem(parsed)
    if problem:
        raise RuleViolation(item.id, f"{item.en} {problem}")
    if item.kind == "date":
        return parsed.isoformat()
    return timezone.localtime(parsed, timezone.get_default_timezone()).isoformat(timespec="minutes")


def _clean_item(item: Item, value) -> Any:
    if item.kind in ("date", "datetime"):
        return _clean_when(item, value)
    if item.kind == "number":
        return _to_number(item, value)
    if item.kind == "code":
        allowed = [c[0] for c in item.choices]
        text = str(value).strip()
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        text = text.replace("\u2212", "-")
        if text not in allowed:
            raise RuleViolation(item.id, f"{item.en} must be one of {', '.join(allowed)}, got {value!r}")
        return int(text)
    if item.kind == "choice" and item.id in _READINGS:
        # "2", 2 and "II" are the same reading; the instrument core normalises them
        try:
            return _READINGS[item.id](value, item.id)
        except InstrumentError as exc:
            raise RuleViolation(item.id, exc.message) from None
    if item.kind == "choice":
        allowed = [c[0] for c in item.choices if c[0] != ""]
        text = str(value).strip()
        match = next((a for a in allowed if a.lower() == text.lower()), None)
        if match is None:
            raise RuleViolation(item.id, f"{item.en} must be one of {', '.join(allowed)}, got {value!r}")
        return match
    text = str(value).strip()
    if len(text) > 2000:
        raise RuleViolation(item.id, "must be at most 2000 characters")
    return text


def missing_items(spec: FormSpec, answers: dict) -> list[RuleViolation]:
    """The items a complete form needs that have no answer, each naming the item."""
    def blank(v):
        return v is None or (isinstance(v, str) and not v.strip())

    return [RuleViolation(item.id, f"{item.en} is needed to complete the form") for item in spec.items
            if item.required and blank(answers.get(item.id)) and not item.id.endswith(("__unit", "__cs"))]


# ---- scoring ----------------------------------------------------------------------------------
#
# A form is scored by its instrument: the protocol's ``instrument`` of the form, else the form's
# own id; a laboratory form by its panel. ``SCORING`` holds, per instrument, how the typed answers
# are scored, what keeps a scored form from being completed and which few numbers a page shows.


def _rename(exc: InstrumentError, names: dict[str, str]) -> RuleViolation:
    """Map an instrument's field (``items[3]``) to the form's item id (``s4``)."""
    return RuleViolation(names.get(exc.field, exc.field), exc.message)


def _items_score(instrument: str, ids: list[str], items: dict, **options) -> dict:
    values = [items.get(i) for i in ids]
    names = {f"items[{n}]": i for n, i in enumerate(ids)}
    try:
        result = score(instrument, values, **options)
    except InstrumentError as exc:
        raise _rename(exc, names) from None
    d = result.to_dict()
    d["missing"] = [names.get(m, m) for m in d["missing"]]
    return d


def _form_items(name: str):
    """The scorer of an instrument whose items are the form's items in the published order."""
    def compute_form(protocol, spec: FormSpec, items: dict) -> dict:
        return _items_score(name, [i.id for i in spec.items], items)
    return compute_form


def _imaging(protocol, spec: FormSpec, items: dict) -> dict:
    return {
        "modic": _items_score("modic", ["modic_superior", "modic_inferior"], items),
        "pfirrmann": _items_score("pfirrmann", ["pfirrmann"], items),
        "disc_height": _items_score("disc_height", ["height_index_mm", "height_above_mm", "height_below_mm"], items),
        "rom": _items_score("rom", ["rom_flexion_deg", "rom_extension_deg"], items),
    }


def _vitals(protocol, spec: FormSpec, items: dict) -> dict:
    limits = {v.id: v for v in protocol.vital_signs}
    names = {VITAL_ALIASES.get(v.id, v.id): v.id for v in protocol.vital_signs}
    try:
        result = check_vitals({k: items.get(k) for k in limits}, limits=limits, field_names=names)
    except InstrumentError as exc:
        field_name = exc.field.removesuffix(".unit")
        raise RuleViolation(field_name, exc.message) from None
    return result.to_dict()


def _panel(protocol, spec: FormSpec, items: dict) -> dict:
    panel = spec.extra["panel"]
    values, judgements = {}, {}
    for a in panel.analytes:
        if items.get(a.id) is None:
            if items.get(f"{a.id}__cs") is not None:
                raise RuleViolation(f"{a.id}__cs", f"no {a.name.en} value to judge")
            continue
        entry = {"value": items[a.id]}
        if a.kind != "qualitative":
            entry["unit"] = items.get(f"{a.id}__unit", a.unit)
        values[a.id] = entry
        cs = items.get(f"{a.id}__cs")
        if cs is not None:
            judgements[a.id] = cs == "yes"
    try:
        result = assess_panel(panel.id, values, panel, judgements)
    except InstrumentError as exc:
        parts = exc.field.split(".")
        key = parts[1] if len(parts) > 1 else exc.field
        if exc.field.endswith(".unit"):
            key += "__unit"
        elif exc.field.endswith(".clinically_significant"):
            key += "__cs"
        raise RuleViolation(key, exc.message) from None
    d = result.to_dict()
    d["missing"] = [m.split(".", 1)[1] for m in d["missing"]]
    return d


def _ae_review(protocol, spec: FormSpec, items: dict) -> dict:
    return {"new_events": items.get("new_events")}


# -- what keeps a scored form from being completed

def _unscored(computed: dict, first: str | None = None) -> RuleViolation:
    first = first or (computed.get("missing") or ["items"])[0]
    return RuleViolation(first, f"cannot be scored: {computed.get('reason')}")


def _total_problem(computed: dict) -> RuleViolation | None:
    return _unscored(computed) if computed.get("score") is None else None


def _sf36_problem(computed: dict) -> RuleViolation | None:
    return _unscored(computed) if any(computed.get(k) is None for k in sf36.SCALES) else None


def _koos_problem(computed: dict) -> RuleViolation | None:
    """A subscale KOOS's own missing-item rule leaves unscored, named by its first unanswered item."""
    unscored = [key for key in koos.SUBSCALES if computed.get(key) is None]
    if not unscored:
        return None
    missing = set(computed.get("missing") or [])
    first = next((i for key in unscored for i in koos.SUBSCALES[key][1] if i in missing), None)
    return _unscored(computed, first)


def _imaging_problem(computed: dict) -> RuleViolation | None:
    if computed["disc_height"]["score"] is None:
        return RuleViolation("height_above_mm", "at least one adjacent normal disc is needed for the percent loss")
    return None


def _panel_problem(computed: dict) -> RuleViolation | None:
    pending = computed.get("needs_judgement") or []
    if pending:
        return RuleViolation(f"{pending[0]}__cs", f"{pending[0]} is outside the reference range: "
                             "judge whether it is clinically significant")
    return None


# -- the few numbers a page shows (labels in the page's language)

def _rounded(value, digits: int = 1):
    return None if value is None else round(value, digits)


def _with_change(rows: list, computed: dict) -> list:
    from django.utils.translation import gettext as _

    if computed.get("change_from_baseline") is not None:
        rows.append((_("change from baseline"), round(computed["change_from_baseline"], 1)))
    return rows


def _vas_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    return _with_change([(_("VAS (mm)"), computed.get("score"))], computed)


def _nrs_headline(computed: dict, names: dict) -> list:
    s = computed.get("score")
    return _with_change([("NRS (0–10)", None if s is None else int(s))], computed)


def _odi_headline(computed: dict, names: dict) -> list:
    return [("ODI %", _rounded(computed.get("score")))]


def _joa_headline(computed: dict, names: dict) -> list:
    return [("JOA", computed.get("score"))]


def _sf36_headline(computed: dict, names: dict) -> list:
    return [(k, _rounded(computed.get(k))) for k in (*sf36.SCALES, "PCS", "MCS")]


def _koos_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    labels = {"symptoms": _("KOOS symptoms"), "pain": _("KOOS pain"), "adl": _("KOOS daily living (ADL)"),
              "sport_rec": _("KOOS sport and recreation"), "qol": _("KOOS quality of life")}
    return [(labels[key], _rounded(computed.get(key))) for key in koos.SUBSCALES]


def _imaging_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    m = computed["modic"]["parts"]
    dh, rom = computed["disc_height"]["score"], computed["rom"]["score"]
    return [("Modic", f"{m.get('superior_endplate') or '—'}/{m.get('inferior_endplate') or '—'}"),
            ("Pfirrmann", computed["pfirrmann"]["parts"].get("grade")),
            (_("disc height loss (%)"), _rounded(dh)),
            (_("range of motion (°)"), _rounded(rom))]


def _panel_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    flags = computed.get("abnormal") or []
    return [(_("outside the reference range"), ", ".join(names.get(a, a) for a in flags) or _("none")),
            (_("clinically significant"), _("yes") if computed.get("clinically_significant") else _("no"))]


def _ae_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    return [(_("new adverse events"), {"yes": _("yes"), "no": _("no")}.get(computed.get("new_events"),
                                                                            computed.get("new_events")))]


def _procedure_headline(computed: dict, names: dict) -> list:
    """A procedure record's results: the compliance of a kit return."""
    from django.utils.translation import gettext as _

    c = computed.get("compliance")
    if not c:
        return []
    if c.get("percent") is None:
        return [(_("compliance"), _("not computed (returned on the day dispensed)"))]
    verdict = _("acceptable") if c.get("acceptable") else _("outside the protocol's range")
    return [(_("compliance"), f"{c['percent']:g} % ({verdict})"),
            (_("taken"), _("%(taken)d units in %(days)d days") % {
                "taken": c["dispensed"] - c["returned"] - c["lost"], "days": c["days"]})]


def _vitals_headline(computed: dict, names: dict) -> list:
    from django.utils.translation import gettext as _

    p = computed.get("parts", {})
    bp = (p.get("systolic", {}).get("value"), p.get("diastolic", {}).get("value"))
    return [(_("blood pressure"), f"{bp[0]:g}/{bp[1]:g}" if None not in bp else None),
            (_("pulse"), p.get("pulse", {}).get("value"))]


def _nothing(*args) -> None:
    return None


@dataclass(frozen=True)
class Scoring:
    """How one instrument's form is scored (``compute(protocol, spec, typed answers)``), what keeps
    it from being completed (``problem(computed)``), the numbers a page shows (``headline``) and,
    for a score compared with the baseline visit's, the change (``change(baseline, value)``)."""

    compute: Callable[[Any, FormSpec, dict], dict]
    problem: Callable[[dict], RuleViolation | None] = _nothing
    headline: Callable[[dict, dict], list] = lambda computed, names: []
    change: Callable[[Any, Any], float | int | None] | None = None


SCORING: dict[str, Scoring] = {
    vas.NAME: Scoring(_form_items(vas.NAME), _total_problem, _vas_headline, vas.change_from_baseline),
    nrs.NAME: Scoring(_form_items(nrs.NAME), _total_problem, _nrs_headline, nrs.change_from_baseline),
    odi.NAME: Scoring(_form_items(odi.NAME), _total_problem, _odi_headline),
    joa.NAME: Scoring(_form_items(joa.NAME), _total_problem, _joa_headline),
    sf36.NAME: Scoring(_form_items(sf36.NAME), _sf36_problem, _sf36_headline),
    koos.NAME: Scoring(_form_items(koos.NAME), _koos_problem, _koos_headline),
    IMAGING.id: Scoring(_imaging, _imaging_problem, _imaging_headline),
    VITALS: Scoring(_vitals, headline=_vitals_headline),
    AE_REVIEW.id: Scoring(_ae_review, headline=_ae_headline),
}
PANEL = Scoring(_panel, _panel_problem, _panel_headline)  # every laboratory form, whatever its panel
UNSCORED = Scoring(lambda protocol, spec, items: {})
PROCEDURE = Scoring(lambda protocol, spec, items: {}, headline=_procedure_headline)


def instrument_of(protocol, form_id: str) -> str | None:
    """The instrument that scores a form: the protocol's ``instrument`` of the form, else the
    form's id; None for a laboratory form (scored by its panel)."""
    form = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    if form is None:
        return form_id
    if form.panel:
        return None
    return form.instrument or form.id


def scoring_of(protocol, form_id: str) -> Scoring:
    if protocol is None:  # no protocol at hand: the form is named after its instrument
        return SCORING.get(form_id, UNSCORED)
    if protocol.record_form_procedure(form_id) is not None:
        return PROCEDURE  # its results come from the procedure's checks (visits.procedures)
    instrument = instrument_of(protocol, form_id)
    return PANEL if instrument is None else SCORING.get(instrument, UNSCORED)


def has_change_from_baseline(protocol, form_id: str) -> bool:
    """Whether the form's score is reported with its change from the baseline visit's (VAS, NRS)."""
    return scoring_of(protocol, form_id).change is not None


def compute(protocol, form_id: str, items: dict, *, baseline: float | None = None) -> dict:
    """The scores of one form from its typed answers, by the form's instrument. ``baseline``: the
    same form's score at the baseline visit, for the change from baseline of an instrument that
    reports one. Nothing here is ever typed by a user."""
    spec = spec_for(protocol, form_id)
    scoring = scoring_of(protocol, form_id)
    out = scoring.compute(protocol, spec, items)
    if scoring.change is not None and baseline is not None and out.get("score") is not None:
        out["change_from_baseline"] = scoring.change(baseline, out["score"])
    return out


def completion_problem(protocol, form_id: str, items: dict, computed: dict) -> RuleViolation | None:
    """Why the form cannot be completed yet, naming the item (``RuleViolations`` when several
    items are missing), or None."""
    spec = spec_for(protocol, form_id)
    missing = missing_items(spec, items)
    if missing:
        return missing[0] if len(missing) == 1 else RuleViolations(missing)
    return scoring_of(protocol, form_id).problem(computed)


def headline(form_id: str, computed: dict, names: dict | None = None, *, protocol=None) -> list[tuple[str, Any]]:
    """The few numbers shown beside the items and in visit tables, labelled in the page's
    language; ``names`` gives the laboratory analytes' names (id -> name), never their ids.
    ``protocol`` names the form's instrument (without it, the form id is taken for it)."""
    if not computed:
        return []
    scoring = scoring_of(protocol, form_id)
    if scoring is UNSCORED and "abnormal" in computed:
        scoring = PANEL  # a laboratory form's results, read without the protocol
    return scoring.headline(computed, names or {})


def analyte_names(protocol, language: str | None) -> dict[str, str]:
    """Every laboratory analyte's name in the page's language, by id."""
    return {a.id: a.name.get(language) for panel in protocol.lab_panels for a in panel.analytes}


def answers_text(spec: FormSpec, items: dict, language: str | None) -> list[tuple[str, str]]:
    """A saved form's answers as (item label, answer) in the page's language: the choice's own
    words (an ODI statement), a number with its unit; never the item's key or a bare code."""
    out = []
    for key, value in items.items():
        item = spec.item(key)
        if item is None:
            continue
        if key.endswith("__unit"):
            continue  # shown with its value
        label = item.label(language)
        owner = spec.item(item.group) if item.group and item.group != key else None
        if owner is not None:  # "Clinically significant?" of one analyte
            label = f"{owner.label(language)} · {label}"
        if item.kind in ("code", "choice"):
            choice = next((c for c in item.choices if c[0] == str(value)), None)
            text = (choice[2] if (language or "").lower().startswith("zh") else choice[1]) if choice else str(value)
        else:
            unit = items.get(f"{key}__unit") or item.unit
            text = f"{value} {unit}".strip() if item.kind == "number" else str(value)
        out.append((label, text))
    return out


def significant_analytes(computed: dict) -> list[str]:
    """Analytes judged clinically significant (each prompts an adverse-event form)."""
    parts = computed.get("parts") or {}
    return [k for k, r in parts.items() if isinstance(r, dict) and r.get("clinically_significant")]
