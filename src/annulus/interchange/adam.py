"""Analysis datasets in the ADaM spirit: ADSL and the long efficacy dataset ADEFF, with the safety
and conduct datasets ADAE, ADLB, ADSV and ADDV (no Django).

``write(subjects, ctx, out_dir)`` streams the participants once and writes, row by row:

- ``adsl.csv`` and ``adsl.xpt``: one row per participant who gave informed consent (screen
  failures included, so the CONSORT flow can be counted from it).
- ``adeff.csv`` and ``adeff.xpt``: one row per participant x parameter x visit with a value, for
  every efficacy end point of the protocol (VAS, ODI, JOA, SF-36 PCS and MCS, and imaging:
  Pfirrmann grade, Modic score, disc height loss, range of motion), baseline rows included.
- ``adeff_<paramcd>.csv`` (``adeff_vas.csv``, ``adeff_odi.csv``, ...): the analysis-ready subset of
  ADEFF for one parameter: the post-baseline rows of the ITT population (ITTFL = "Y", ABLFL
  empty), with the same columns. The statistics commands read a whole file and cannot filter by
  PARAMCD, so these are the files they are pointed at::

      annulus export --adam OUT          # = --format adam --out OUT
      annulus mmrm --data OUT/adeff_vas.csv --formula "CHG ~ BASE + TRT01P*AVISIT" \\
          --subject USUBJID --visit AVISIT --cov us
      annulus compare --data OUT/adeff_vas.csv --subject USUBJID --arm TRT01P --visit AVISITN \\
          --value AVAL --baseline BASE --control "Group A" --responder-threshold 15
      annulus dose --data OUT/adeff_vas.csv --subject USUBJID --arm TRT01PN --visit AVISITN \\
          --value AVAL --baseline BASE --control 0 --dose 0=0,5=5,10=10,20=20 --at 365

  (``compare`` and ``dose`` take ``AVISITN``, the scheduled day, so that visits are in time order;
  ``mmrm`` orders the protocol's visit ids ``w1``, ``m1`` ... ``m24`` by the schedule itself.
  ``TRT01PN``, the arm's dose score, exists only in an export that may show treatments.)
- ``adae.csv`` / ``.xpt`` (one row per adverse event recorded by the as-of time, its last revision
  by then) and ``adlb.csv`` / ``.xpt`` (participant x analyte x scheduled visit, flagged against
  the protocol's reference ranges): ``annulus.interchange.adam_safety``.
- ``adsv.csv`` / ``.xpt`` (randomised participant x scheduled visit: done, missed, not yet due or
  after the end of study; forms complete and source-verified, queries open and raised) and
  ``addv.csv`` / ``.xpt`` (the protocol deviations the monitors recorded):
  ``annulus.interchange.adam_conduct``. Those two modules' docstrings give every column and value.

The parameters come from the protocol (``params_for``): for each form of its schedule, those the
instruments library gives for the form's instrument (``annulus.instruments.results.PARAMETERS``:
code, score, ADSL baseline column and label, direction), then one per declaration of
``analysis.parameters`` (code, name, form, score key, direction), valued from the form's computed
score key, with its ADSL baseline column ``BL`` + the code's first six characters and
``adeff_<code>.csv``. Every baseline is the value at the visit marked ``baseline: true`` (a
schedule that marks none has no baseline values). ADSL then
has no ``LIPODT`` unless the treatment is a cell product made from a harvest, no ``PAINDUR``
unless the eligibility evidence has the pain-duration field, and ``SITEID`` is the participant's
site in a trial of several sites. Study day 0 is the treatment day (``treatment_day``): the
transplantation, or the treatment procedure's recorded day (``Subject.treated_on``); ``treated``
holds when either is set.

Populations (the seed protocol, "Statistical analysis" and "Outcome evaluation", names the
analyses but defines no populations; the protocol file's analysis plan states them as rules,
``analysis.populations``, see ``annulus.protocol.schema``). A population is the participants for
whom every rule of its ``rule`` list holds:

- ``randomised``: ``Subject.randomised_at`` set; ``treated``: received the injection, active or
  placebo (``Subject.transplanted_at`` set); ``eligible``: the signed eligibility decision is
  "eligible"; ``primary_visit_in_window``: the primary end point's primary visit
  (``analysis.primary.primary_visit``; ``PRIMARY_VISIT``, 12 months, without a plan) was attended
  inside its protocol window (``VisitInfo.window == "in"``); ``not_emergency_unblinded``: the
  treatment was not revealed by an emergency unblinding (the protocol, "Rules for unblinding",
  sets such participants apart for the evaluation of efficacy).
- ``ITTFL`` is the population with id ``itt``, ``PPROTFL`` the one with id ``pp``, ``SAFFL`` the one
  with role ``safety``. Without a plan (or a population missing from it) the rules of
  ``FALLBACK_POPULATIONS`` apply, which are those of the shipped protocol: ITT = randomised;
  safety = treated; per protocol = randomised, treated, eligible, primary visit in window, not
  emergency-unblinded. ``RANDFL`` is always "randomised".
- ``PPEXREAS``: why a randomised participant is not in the per-protocol population, the first rule
  of its list that fails, as a fixed text: "NOT TREATED", "NOT ELIGIBLE" (the decision says
  not eligible), "ELIGIBILITY NOT CONFIRMED" (no signed decision), "PRIMARY VISIT NOT YET DUE"
  (not recorded, and the export's as-of date is not past the end of its window),
  "DISCONTINUED BEFORE PRIMARY VISIT" (withdrawn or lost to follow-up without it, on or before the
  end of its window), "PRIMARY VISIT MISSED" (recorded as missed, or not recorded and its window
  is over), "PRIMARY VISIT OUT OF WINDOW" (attended early or late), "EMERGENCY UNBLINDING".
  Empty when the participant is in the per-protocol population or was not randomised. So a
  participant who has not yet reached the primary visit is "N", with the reason that says so.

Disposition: ``EOSSTT``, ``DCSREAS`` (CDISC-style words: "WITHDRAWAL BY SUBJECT" covers both a
withdrawal of consent and a participant's later request), ``DCSREASP`` (the category in words,
or the failed criteria of a screen failure) and ``DCSREASC``: the withdrawal category's code as
the end-of-study form records it (``participant_request``, ``declined_consent``,
``adverse_event``, ``other_disease``, ``investigator_decision``, ``other``), so that consent
withdrawn and a later withdrawal can be told apart; empty unless withdrawn. ``LASTVIS`` is the
last scheduled visit attended, ``LASTVISN`` its scheduled study day (as ``AVISITN``).

Baseline characteristics (Table 1): age and sex; the baseline (visit ``baseline``) VAS, ODI, JOA,
SF-36 PCS and MCS; the baseline imaging (``BASEPFIR`` Pfirrmann grade 1-5, ``BASEMODI`` Modic
score of the worse endplate 0 none / 1 type I / 2 type II / 3 type III, ``BASEDHT`` disc height
loss against the adjacent normal discs in %, ``BASEROM`` segmental range of motion in degrees,
from the baseline visit's imaging form); ``PAINDUR`` with its unit ``PAINDURU`` ("MONTHS"): the
screening evidence "duration of LBP after conservative treatment" (criterion I3), the only pain
duration the forms capture. Not captured by any form, so not in ADSL: height and weight (hence no
``BMIBL``), time since the first onset of back pain, race and ethnicity, occupation, smoking,
previous treatments other than an intradiscal injection within a year (a yes/no criterion).

Strata (a stratified randomisation only, ``randomisation.strata``; the first trial's ADSL and
ADEFF have no such columns): ``STRATAR`` the stratum the participant was randomised in, as the
randomisation prints it (``site=01; pain=severe``), and one column per factor, ``STRAT<n>R`` (n
the factor's position in ``strata``, from 1; its label names the factor), its level. They are the
levels recorded with the envelope opened for the participant (``Subject.strata``), not
recomputed from today's evidence; empty for a participant not randomised. ADEFF repeats them on
every row, so that the analysis plan's stratum covariates (``C(STRAT1R)``) are in the model's
file.

Flags are "Y"/"N" for populations and "Y"/empty for record flags (ABLFL, ANL01FL), as in ADaM.

ADEFF rows: a visit of the protocol schedule with the parameter's form filled and its score
computed. A missed visit, a form not filled, a score that could not be computed (too many items
unanswered) and a form still in draft produce no row; unscheduled visits produce no row (they have
no analysis visit). ``BASE`` is the parameter's value at the baseline visit (``baseline``: before
transplantation), ``CHG = AVAL - BASE`` (empty on the baseline row and when there is no
baseline), ``PCHG`` the percent change when ``BASE`` is not 0. ``AVISITN`` is the visit's
scheduled study day from the protocol (transplantation = day 0; baseline -1, 12 months 365),
``ADY`` the actual study day, ``AWLO``/``AWHI`` the window in study days, ``AWSTAT`` IN / EARLY /
LATE as the visit was recorded, ``ANL01FL`` "Y" when it was in its window. ``DTYPE`` is empty:
nothing is imputed here.

Blind: the treatment columns (``TRT01P``, ``TRT01A``; in a treatment-level export also
``TRT01PN``/``TRT01AN`` and ``GRPLBL``) are written only when ``ctx.blinding`` allows: "labels" ->
``TRT01P`` = "Group A" ... "Group D" (no dose); "arms" -> ``TRT01P`` = the arm's name,
``TRT01PN`` = its dose score from the protocol, ``GRPLBL`` = its group label. Blinded: the columns
do not exist. ``TRT01A`` (actual) is the planned treatment for participants who received the
product, empty otherwise. Drug codes are never part of the analysis datasets.

Dates: ISO ``YYYY-MM-DD`` in the trial's time zone in the CSV files; in the XPT files numeric SAS
dates (days since 1960-01-01), as ADaM's ``*DT`` variables are. Text in the XPT is UTF-8.
The provenance stamp goes in the export's manifest (the XPT dataset label has no room for it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from annulus.instruments.results import PARAMETERS as LIBRARY_PARAMETERS
from annulus.instruments.results import parameters_of

from .scores import score as score_decl

# the shipped protocol's primary visit, used with FALLBACK_POPULATIONS when there is no plan
PRIMARY_VISIT = "m12"
SITEID = "01"  # single-centre trial
STRATA_COLUMN = "STRATAR"  # the stratum as randomised (one column per factor beside it: STRAT<n>R)
SAS_EPOCH = date(1960, 1, 1)


@dataclass(frozen=True)
class Param:
    code: str  # PARAMCD (at most 8 characters)
    form: str  # the dictionary form
    score: str  # the score id in Record.computed (annulus.interchange.scores)
    baseline_column: str | None = None  # ADSL baseline covariate
    lower_is_better: bool = True
    name: object = None  # a declared parameter's name (en, zh: analysis.parameters), else the score's label
    instrument: str | None = None  # the library instrument whose results give the value (its labels)
    baseline_label: str | None = None  # the ADSL baseline column's label (else "Baseline" and the label)
    table_name: object = None  # the baseline's name in the report's baseline table (en, zh), else ``name``
    kind: str = "continuous"  # in that table: "continuous" | "categorical"
    categories: tuple[str, ...] = ()  # a categorical parameter's codes, in the order that table shows

    def label(self, language: str) -> str:
        if self.name is not None:
            return self.name.zh if (language or "").lower().startswith("zh") else self.name.en
        s = score_decl(self.instrument or self.form, self.score)
        text = s.label(language) if s else self.code
        return f"{text} ({s.unit})" if s and s.unit else text


def _library_param(p, form: str) -> Param:
    """A parameter of the instruments library (``annulus.instruments.results.PARAMETERS``) valued
    from the protocol's form ``form`` that uses its instrument."""
    return Param(p.code, form, p.score, p.baseline_column, p.lower_is_better, instrument=p.instrument,
                 baseline_label=p.baseline_label, table_name=p.table_name, kind=p.kind, categories=p.categories)


# the parameters the instruments library's results give, each from the form named as its instrument
PARAMS: tuple[Param, ...] = tuple(_library_param(p, p.instrument) for p in LIBRARY_PARAMETERS)


def params_for(protocol) -> tuple[Param, ...]:
    """The efficacy parameters of a protocol's analysis datasets: for each form of its schedule,
    in the schedule's order, the parameters the instruments library gives for the form's
    instrument (``annulus.instruments.results.PARAMETERS``); then one per declaration of
    ``analysis.parameters`` (its value the form's computed score key, its ADSL baseline column
    ``BL`` and the code's first six characters, numbered when two would share one)."""
    declared = list(getattr(getattr(protocol, "analysis", None), "parameters", None) or ())
    forms = getattr(getattr(protocol, "schedule", None), "forms", None)
    if forms is None:
        return PARAMS
    out = [_library_param(p, f.id) for f in forms for p in parameters_of(getattr(f, "instrument", None))]
    used = {p.baseline_column for p in out}
    for i, d in enumerate(declared, start=1):
        column = f"BL{d.code[:6]}"
        if column in used:
            column = f"BLPAR{i:02d}"
        used.add(column)
        out.append(Param(d.code, d.form, d.score, column, d.lower_is_better, d.name))
    return tuple(out)


def baseline_visit_of(protocol) -> str | None:
    """The visit whose values are the baseline (``baseline: true``; None in a file that marks
    none: then no value is a baseline)."""
    visit = getattr(protocol.schedule, "baseline_visit", None)
    return visit.id if visit is not None else None


def treatment_day(subject, tz) -> str | None:
    """The treatment's date in the trial's time zone (study day 0): the cell product's
    transplantation time, else the treatment procedure's day (``Subject.treated_on``)."""
    return _local_date(subject.transplanted_at, tz) if subject.transplanted_at else subject.treated_on


def is_treated(subject) -> bool:
    return bool(subject.transplanted_at or subject.treated_on)


# the population rules of the protocol's analysis plan (annulus.protocol.schema.POPULATION_RULES)
# used when the plan does not state a population; they are the shipped protocol's
FALLBACK_POPULATIONS: dict[str, tuple[str, ...]] = {
    "ITTFL": ("randomised",),
    "SAFFL": ("treated",),
    "PPROTFL": ("randomised", "treated", "eligible", "primary_visit_in_window", "not_emergency_unblinded"),
}
# the screening evidence field with the duration of low back pain (criterion I3)
PAIN_DURATION_FIELD = "lbp_duration_months"

# Subject.end_reason (the end-of-study form's withdrawal category) -> CDISC-style reason
_REASONS = {
    "participant_request": "WITHDRAWAL BY SUBJECT",
    "declined_consent": "WITHDRAWAL BY SUBJECT",
    "adverse_event": "ADVERSE EVENT",
    "other_disease": "OTHER",
    "investigator_decision": "PHYSICIAN DECISION",
    "other": "OTHER",
}


# --- columns ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    name: str
    label: str
    type: str = "char"  # "char" | "num" | "date"
    length: int = 8


def _trt_columns(ctx) -> list[Col]:
    if ctx.blinding == "labels":
        return [Col("TRT01P", "Planned Treatment for Period 01", length=20),
                Col("TRT01A", "Actual Treatment for Period 01", length=20)]
    if ctx.blinding == "arms":
        names = [_arm_name(a, ctx.language) for a in ctx.protocol.arms]
        width = max([20, *(len(n.encode("utf-8")) for n in names)])
        return [Col("TRT01P", "Planned Treatment for Period 01", length=width),
                Col("TRT01PN", "Planned Treatment for Period 01 (N)", "num"),
                Col("TRT01A", "Actual Treatment for Period 01", length=width),
                Col("TRT01AN", "Actual Treatment for Period 01 (N)", "num"),
                Col("GRPLBL", "Group label", length=20)]
    return []


def _baseline_columns(protocol) -> list[Col]:
    out = []
    for p in params_for(protocol):
        if p.baseline_column:
            label = p.baseline_label or f"Baseline {p.label('en')}"
            out.append(Col(p.baseline_column, label[:40], "num"))
    return out


def strata_of(protocol) -> list[str]:
    """The ids of the randomisation's stratification factors, in protocol order (none unless the
    randomisation is stratified)."""
    return [f.id for f in getattr(getattr(protocol, "randomisation", None), "strata", None) or ()]


def stratum_columns(factor_ids) -> dict[str, str]:
    """Stratification factor id -> its ADSL and ADEFF column ``STRAT<n>R``, n the factor's
    position in ``randomisation.strata`` (from 1)."""
    return {f: f"STRAT{n}R" for n, f in enumerate(factor_ids, start=1)}


def _strata_columns(protocol) -> list[Col]:
    """``STRATAR`` and one ``STRAT<n>R`` per stratification factor (none for an unstratified
    randomisation), each as wide as its longest value."""
    strata = list(getattr(getattr(protocol, "randomisation", None), "strata", None) or ())
    if not strata:
        return []
    widths = [max(len(level.encode("utf-8")) for level in f.levels) for f in strata]
    whole = sum(len(f.id.encode("utf-8")) + 1 + w for f, w in zip(strata, widths)) + 2 * (len(strata) - 1)
    columns = [Col(STRATA_COLUMN, "Strata as Randomized", length=max(8, whole))]
    names = stratum_columns(f.id for f in strata)
    for n, (f, w) in enumerate(zip(strata, widths), start=1):
        columns.append(Col(names[f.id], f"Stratum {n} as Randomized: {f.id}"[:40], length=max(8, w)))
    return columns


def _strata_values(subject, factor_ids: list[str]) -> dict:
    """The participant's stratum as randomised (the levels recorded with the envelope opened for
    them): ``STRATAR`` as the randomisation prints a stratum (``site=01; pain=severe``) and each
    factor's level; empty for a participant not randomised."""
    if not factor_ids:
        return {}
    from annulus.randomisation.stratified import stratum_label

    levels = getattr(subject, "strata", None) or {}
    row = {column: levels.get(f) or None for f, column in stratum_columns(factor_ids).items()}
    whole = all(levels.get(f) for f in factor_ids)
    row[STRATA_COLUMN] = stratum_label(levels, factor_ids) if whole else None
    return row


def _has_harvest(protocol) -> bool:
    """Whether the treatment is a cell product made from a harvest (its date: ``LIPODT``)."""
    pages = getattr(protocol, "page_procedures", None)
    return pages is None or "harvest" in pages.values()


def _has_pain_duration(protocol) -> bool:
    fields = getattr(getattr(protocol, "eligibility", None), "fields", None)
    return fields is None or any(f.id == PAIN_DURATION_FIELD for f in fields)


def adsl_columns(ctx) -> list[Col]:
    return [
        Col("STUDYID", "Study Identifier", length=max(8, len(ctx.study_id.encode("utf-8")))),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SUBJID", "Subject Identifier for the Study", length=20),
        Col("SCRNID", "Screening Number", length=20),
        Col("SITEID", "Study Site Identifier", length=8),
        Col("AGE", "Age", "num"),
        Col("AGEU", "Age Units", length=8),
        Col("SEX", "Sex", length=1),
        *_trt_columns(ctx),
        *_strata_columns(ctx.protocol),
        Col("RANDFL", "Randomized Population Flag", length=1),
        Col("ITTFL", "Intent-To-Treat Population Flag", length=1),
        Col("SAFFL", "Safety Population Flag", length=1),
        Col("PPROTFL", "Per-Protocol Population Flag", length=1),
        Col("PPEXREAS", "Reason Excluded from Per-Protocol", length=40),
        Col("ELIGFL", "Eligible (signed eligibility decision)", length=1),
        Col("SCRFCRIT", "Failed eligibility criteria", length=100),
        Col("EMUNBLFL", "Emergency Unblinding Flag", length=1),
        *_baseline_columns(ctx.protocol),
        *([Col("PAINDUR", "Duration of LBP after conservative trt", "num"),
           Col("PAINDURU", "Duration of LBP Units", length=8)] if _has_pain_duration(ctx.protocol) else []),
        Col("RFICDT", "Date of Informed Consent", "date"),
        Col("RANDDT", "Date of Randomization", "date"),
        *([Col("LIPODT", "Date of Liposuction", "date")] if _has_harvest(ctx.protocol) else []),
        Col("TRTSDT", "Date of Transplantation (Day 0)" if _has_harvest(ctx.protocol) else "Date of Treatment (Day 0)",
            "date"),
        Col("EOSDT", "End of Study Date", "date"),
        Col("LASTVIS", "Last scheduled visit attended", length=20),
        Col("LASTVISN", "Last visit attended: scheduled study day", "num"),
        Col("EOSSTT", "End of Study Status", length=12),
        Col("DCSREAS", "Reason for Discontinuation from Study", length=40),
        Col("DCSREASC", "Withdrawal category (code)", length=40),
        Col("DCSREASP", "Reason Spec for Discont from Study", length=200),
    ]


def adeff_columns(ctx) -> list[Col]:
    params = max(len(p.label(lang).encode("utf-8")) for p in params_for(ctx.protocol) for lang in ("en", "zh"))
    return [
        Col("STUDYID", "Study Identifier", length=max(8, len(ctx.study_id.encode("utf-8")))),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SITEID", "Study Site Identifier", length=8),
        *_trt_columns(ctx),
        *_strata_columns(ctx.protocol),
        Col("ITTFL", "Intent-To-Treat Population Flag", length=1),
        Col("SAFFL", "Safety Population Flag", length=1),
        Col("PPROTFL", "Per-Protocol Population Flag", length=1),
        Col("PARAMCD", "Parameter Code", length=8),
        Col("PARAM", "Parameter", length=min(200, params)),
        Col("PARAMN", "Parameter (N)", "num"),
        Col("AVISIT", "Analysis Visit", length=20),
        Col("AVISITN", "Analysis Visit (N): scheduled study day", "num"),
        Col("ADT", "Analysis Date", "date"),
        Col("ADY", "Analysis Relative Day", "num"),
        Col("AVAL", "Analysis Value", "num"),
        Col("BASE", "Baseline Value", "num"),
        Col("CHG", "Change from Baseline", "num"),
        Col("PCHG", "Percent Change from Baseline", "num"),
        Col("ABLFL", "Baseline Record Flag", length=1),
        Col("ANL01FL", "Analysis Flag 01: visit in window", length=1),
        Col("AWSTAT", "Analysis window status", length=8),
        Col("AWLO", "Analysis Window Beginning Timepoint", "num"),
        Col("AWHI", "Analysis Window Ending Timepoint", "num"),
        Col("AWU", "Analysis Window Unit", length=8),
        Col("DTYPE", "Derivation Type", length=8),
    ]


# --- values ---------------------------------------------------------------------------------------

def _arm_name(arm, language: str) -> str:
    name = arm.name
    return name.zh if (language or "").lower().startswith("zh") else name.en


def _local_date(value: str | None, tz: ZoneInfo) -> str | None:
    """The date in the trial's time zone of an ISO date or UTC date-time."""
    if not value:
        return None
    if len(value) == 10:
        return value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.date().isoformat()
    return moment.astimezone(tz).date().isoformat()


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _treatment(subject, ctx) -> dict:
    """The treatment columns' values (only those the blinding allows)."""
    if ctx.blinding == "labels":
        planned = f"Group {subject.group_label}" if subject.group_label else None
        actual = planned if is_treated(subject) else None
        return {"TRT01P": planned, "TRT01A": actual}
    if ctx.blinding == "arms":
        arm = next((a for a in ctx.protocol.arms if a.id == subject.arm), None)
        planned = _arm_name(arm, ctx.language) if arm else subject.arm
        dose = arm.dose_score if arm else None
        treated = is_treated(subject)
        return {"TRT01P": planned, "TRT01PN": dose, "TRT01A": planned if treated else None,
                "TRT01AN": dose if treated else None,
                "GRPLBL": f"Group {subject.group_label}" if subject.group_label else None}
    return {}


def _visit_map(subject) -> dict:
    return {v.visit: v for v in subject.visits if v.visit != "unscheduled" and not v.repeat}


def _values(subject, params=PARAMS) -> dict:
    """(visit, PARAMCD) -> value for every scheduled visit's computed score (drafts left out)."""
    out = {}
    for r in subject.records:
        if r.state == "draft" or not r.visit or r.visit in ("unscheduled", "screening") or r.visit_repeat:
            continue
        for p in params:
            if p.form == r.form:
                v = r.computed.get(p.score)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[(r.visit, p.code)] = v
    return out


class _Populations:
    """The population flags from the protocol's analysis plan (``analysis.populations``), each
    population's rules evaluated for a participant; ``FALLBACK_POPULATIONS`` where the plan is
    silent."""

    def __init__(self, protocol, schedule, as_of: str | None, tz: ZoneInfo):
        plan = getattr(protocol, "analysis", None)
        self.rules = dict(FALLBACK_POPULATIONS)
        primary = getattr(plan, "primary", None)
        self.primary_visit = primary.primary_visit if primary is not None else PRIMARY_VISIT
        for pop in getattr(plan, "populations", None) or ():
            name = "SAFFL" if pop.role == "safety" else {"itt": "ITTFL", "pp": "PPROTFL"}.get(pop.id)
            if name:
                self.rules[name] = tuple(pop.rule)
        self.schedule = schedule
        self.tz = tz
        self.as_of = _local_date(as_of, tz)

    def _primary_visit(self, subject, visits) -> str | None:
        info = visits.get(self.primary_visit)
        if info is not None:
            if info.outcome == "missed":
                return "PRIMARY VISIT MISSED"
            return None if info.window == "in" else "PRIMARY VISIT OUT OF WINDOW"
        day0 = treatment_day(subject, self.tz)
        if not day0 or self.primary_visit not in self.schedule.high:
            return "PRIMARY VISIT NOT YET DUE"
        closes = (date.fromisoformat(day0) + timedelta(days=self.schedule.high[self.primary_visit])).isoformat()
        end = subject.end_status or (subject.status if subject.status in ("withdrawn", "lost_to_follow_up") else "")
        if end in ("withdrawn", "lost_to_follow_up") and (not subject.end_date or subject.end_date <= closes):
            return "DISCONTINUED BEFORE PRIMARY VISIT"
        if not end and self.as_of and self.as_of <= closes:
            return "PRIMARY VISIT NOT YET DUE"
        return "PRIMARY VISIT MISSED"

    def failure(self, rule: str, subject, visits) -> str | None:
        """Why ``rule`` does not hold for the participant (a fixed text), or None when it holds."""
        if rule == "randomised":
            return None if subject.randomised_at else "NOT RANDOMISED"
        if rule == "treated":
            return None if is_treated(subject) else "NOT TREATED"
        if rule == "eligible":
            if subject.eligible is True:
                return None
            return "NOT ELIGIBLE" if subject.eligible is False else "ELIGIBILITY NOT CONFIRMED"
        if rule == "primary_visit_in_window":
            return self._primary_visit(subject, visits)
        if rule == "not_emergency_unblinded":
            return "EMERGENCY UNBLINDING" if subject.emergency_unblinded else None
        raise ValueError(f"unknown population rule {rule!r}")

    def flags(self, subject, visits) -> tuple[dict, str | None]:
        """({ITTFL, SAFFL, PPROTFL}: "Y"/"N", PPEXREAS)."""
        flags, reason = {}, None
        for name, rules in self.rules.items():
            failures = [f for f in (self.failure(r, subject, visits) for r in rules) if f]
            flags[name] = _yn(not failures)
            if name == "PPROTFL" and failures and subject.randomised_at:
                reason = failures[0]
        return flags, reason


def _site(subject) -> str | None:
    """The participant's site (the pre-screening record's), in a trial of several sites."""
    for r in subject.records:
        if r.form == "prescreening" and not r.visit:
            return r.values.get("site") or None
    return None


def _withdrawal_code(subject) -> str | None:
    """The end-of-study form's withdrawal category code (``Subject.end_reason``) of a withdrawal."""
    end = subject.end_status or (subject.status if subject.status in ("completed", "withdrawn", "lost_to_follow_up")
                                 else "")
    return (subject.end_reason or None) if end == "withdrawn" else None


def _pain_duration(subject) -> int | float | None:
    """The screening evidence's duration of low back pain (the last saved screening record)."""
    for r in reversed(subject.records):
        if r.form == "screening" and r.visit == "screening" and r.state != "draft":
            v = r.values.get(PAIN_DURATION_FIELD)
            return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return None


def _pain_duration_unit(protocol) -> str | None:
    field = next((f for f in getattr(getattr(protocol, "eligibility", None), "fields", ()) or ()
                  if f.id == PAIN_DURATION_FIELD), None)
    if field is None or not field.unit:
        return None
    return field.unit.upper()


def _category_labels(dictionary, language: str) -> dict:
    """The end-of-study withdrawal categories' words from the data dictionary (code -> label)."""
    form = dictionary.form("end_of_study") if dictionary is not None else None
    item = next((e for e in getattr(form, "items", ()) if e.item == "category"), None)
    zh = (language or "").lower().startswith("zh")
    return {c[0]: (c[2] if zh else c[1]) for c in getattr(item, "codelist", ()) or ()}


def _disposition(subject, categories: dict) -> tuple[str, str | None, str | None]:
    end = subject.end_status or (subject.status if subject.status in ("completed", "withdrawn", "lost_to_follow_up")
                                 else "")
    if end == "completed":
        return "COMPLETED", None, None
    if end == "lost_to_follow_up":
        return "DISCONTINUED", "LOST TO FOLLOW-UP", None
    if end == "withdrawn":
        return ("DISCONTINUED", _REASONS.get(subject.end_reason, "OTHER"),
                categories.get(subject.end_reason, subject.end_reason) or None)
    if subject.status == "screen_failed" or subject.eligible is False:
        return "DISCONTINUED", "SCREEN FAILURE", ", ".join(subject.failed_criteria) or None
    return "ONGOING", None, None


def _treatment_event(protocol) -> str | None:
    """The id of the procedure that gives the treatment (study day 0)."""
    treatment = getattr(protocol, "treatment_procedure", None)
    if treatment is not None:
        return treatment.id
    pages = getattr(protocol, "page_procedures", None) or {}
    return next((k for k, part in pages.items() if part == "treatment"), None)


class _Schedule:
    """The protocol's visits as analysis visits: scheduled study day and window (transplant = 0)."""

    def __init__(self, protocol):
        visits = list(protocol.schedule.visits)
        treatment = _treatment_event(protocol)
        transplant_offset = next((v.offset_days for v in visits if v.procedure == treatment), 0)
        self.day, self.low, self.high, self.order = {}, {}, {}, {}
        for i, v in enumerate(visits):
            day = v.offset_days if v.anchor == treatment else v.offset_days - transplant_offset
            self.day[v.id] = day
            self.low[v.id] = day - v.window.before_days
            self.high[v.id] = day + v.window.after_days
            self.order[v.id] = i


def _last_visit(subject, schedule) -> str | None:
    """The last visit of the schedule the participant attended (for the CONSORT flow's losses by visit)."""
    attended = [v.visit for v in subject.visits if v.outcome == "attended" and v.visit in schedule.order]
    return max(attended, key=schedule.order.get) if attended else None


def _num(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _sas_date(iso: str | None):
    return None if not iso else (date.fromisoformat(iso) - SAS_EPOCH).days


class _Dataset:
    """One dataset written to a CSV file and, optionally, an XPT file, a row at a time."""

    def __init__(self, out_dir: Path, name: str, label: str, columns: list[Col], ctx, *, xpt: bool):
        self.columns = columns
        self._names = [c.name for c in columns]
        self._char = [c.type == "char" for c in columns]
        self._dates = [i for i, c in enumerate(columns) if c.type == "date"]
        self.paths = [out_dir / f"{name}.csv"]
        self._csv_file = open(self.paths[0], "w", newline="", encoding="utf-8-sig" if ctx.excel_bom else "utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow([c.name for c in columns])
        self._xpt = None
        if xpt and ctx.transport:
            from .xpt import Column, XptWriter

            self.paths.append(out_dir / f"{name}.xpt")
            spec = [Column(c.name, c.label, "char" if c.type == "char" else "num", c.length if c.type == "char" else 8)
                    for c in columns]
            self._xpt = XptWriter(self.paths[1], name.upper()[:8], label, columns=spec)

    def write(self, row: dict) -> list:
        """Writes the row; gives its CSV cells (``write_cells`` of a dataset with the same columns)."""
        values = list(map(row.get, self._names))
        cells = [("" if v is None else str(v)) if char else "" if v is None else str(v) if type(v) is int else _num(v)
                 for char, v in zip(self._char, values)]
        self._csv.writerow(cells)
        if self._xpt is not None:
            for i in self._dates:
                values[i] = _sas_date(values[i])
            self._xpt.write_row(values)
        return cells

    def write_cells(self, cells: list) -> None:
        self._csv.writerow(cells)

    def close(self) -> None:
        self._csv_file.close()
        if self._xpt is not None:
            self._xpt.close()


# --- the writer -------------------------------------------------------------------------------------

def write(subjects, ctx, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    tz = ZoneInfo(getattr(ctx.protocol.trial, "timezone", None) or "UTC")
    schedule = _Schedule(ctx.protocol)
    lang = ctx.language or "en"
    categories = _category_labels(ctx.dictionary, lang)
    populations = _Populations(ctx.protocol, schedule, ctx.as_of, tz)
    duration_unit = _pain_duration_unit(ctx.protocol)
    params = params_for(ctx.protocol)
    index = {p.code: i for i, p in enumerate(params)}
    base_visit = baseline_visit_of(ctx.protocol)
    harvest, pain_duration = _has_harvest(ctx.protocol), _has_pain_duration(ctx.protocol)
    sites = len(getattr(ctx.protocol, "sites", None) or ()) > 1
    strata = strata_of(ctx.protocol)
    adsl = _Dataset(out_dir, "adsl", "Subject-Level Analysis Dataset", adsl_columns(ctx), ctx, xpt=True)
    eff_cols = adeff_columns(ctx)
    adeff = _Dataset(out_dir, "adeff", "Efficacy Analysis Dataset", eff_cols, ctx, xpt=True)
    per_param = {p.code: _Dataset(out_dir, f"adeff_{p.code.lower()}", f"Efficacy {p.code}", eff_cols, ctx, xpt=False)
                 for p in params}
    from .adam_conduct import ConductDatasets
    from .adam_safety import SafetyDatasets

    # ADAE, ADLB, ADSV, ADDV: written from the same participants in the same pass
    more = [SafetyDatasets(ctx, out_dir, schedule, tz), ConductDatasets(ctx, out_dir, schedule, tz)]
    datasets = [adsl, adeff, *per_param.values(), *(d for m in more for d in m.datasets)]
    try:
        for s in subjects:
            visits = _visit_map(s)
            values = _values(s, params)
            site = _site(s) if sites else SITEID
            trt = _treatment(s, ctx)
            stratum = _strata_values(s, strata)
            randomised = bool(s.randomised_at)
            flags, pp_reason = populations.flags(s, visits)
            last = _last_visit(s, schedule)
            duration = _pain_duration(s)
            status, reason, detail = _disposition(s, categories)
            row = {"STUDYID": ctx.study_id, "USUBJID": s.subject, "SUBJID": s.case_number or s.screening_number,
                   "SCRNID": s.screening_number, "SITEID": site, "AGE": s.age,
                   "AGEU": "YEARS" if s.age is not None else None, "SEX": s.sex, **trt, **stratum,
                   "RANDFL": _yn(randomised), **flags, "PPEXREAS": pp_reason,
                   "ELIGFL": None if s.eligible is None else _yn(s.eligible),
                   "SCRFCRIT": ", ".join(s.failed_criteria) or None,
                   "EMUNBLFL": _yn(s.emergency_unblinded),
                   "RFICDT": _local_date(s.consented_at, tz), "RANDDT": _local_date(s.randomised_at, tz),
                   "LIPODT": _local_date(s.liposuction_on, tz), "TRTSDT": treatment_day(s, tz),
                   "EOSDT": _local_date(s.end_date, tz), "LASTVIS": last, "LASTVISN": schedule.day.get(last),
                   "EOSSTT": status, "DCSREAS": reason, "DCSREASC": _withdrawal_code(s), "DCSREASP": detail,
                   "PAINDUR": duration, "PAINDURU": duration_unit if duration is not None else None}
            if not harvest:
                del row["LIPODT"]
            if not pain_duration:
                del row["PAINDUR"], row["PAINDURU"]
            for p in params:
                if p.baseline_column:
                    row[p.baseline_column] = values.get((base_visit, p.code))
            adsl.write(row)
            common = {"STUDYID": ctx.study_id, "USUBJID": s.subject, "SITEID": site, **trt, **stratum, **flags}
            for m in more:
                m.write(s, trt, flags, site)
            rows = sorted(values.items(), key=lambda kv: (index[kv[0][1]], schedule.order.get(kv[0][0], 10**6)))
            for (visit, code), aval in rows:
                if visit not in schedule.day:
                    continue
                info = visits.get(visit)
                if info is None or info.outcome == "missed":
                    continue
                p = params[index[code]]
                base = values.get((base_visit, code))
                is_base = visit == base_visit
                chg = None if is_base or base is None else round(aval - base, 10)
                pchg = round(chg / base * 100, 10) if chg is not None and base else None
                erow = {**common, "PARAMCD": code, "PARAM": p.label(lang), "PARAMN": index[code] + 1,
                        "AVISIT": visit, "AVISITN": schedule.day[visit], "ADT": info.date, "ADY": info.day,
                        "AVAL": aval, "BASE": base, "CHG": chg, "PCHG": pchg, "ABLFL": "Y" if is_base else None,
                        "ANL01FL": "Y" if info.window == "in" else None,
                        "AWSTAT": info.window.upper() or None, "AWLO": schedule.low[visit],
                        "AWHI": schedule.high[visit], "AWU": "DAYS", "DTYPE": None}
                cells = adeff.write(erow)
                if not is_base and flags["ITTFL"] == "Y":
                    per_param[code].write_cells(cells)  # the same columns as adeff
    finally:
        for d in datasets:
            d.close()
    return [path for d in datasets for path in d.paths]
