"""The protocol as data: a pydantic schema for the declarative trial file (X-1.3).

Every model forbids unknown keys, so a typo in the YAML is an error, not a silently ignored
setting. Cross-field rules (ratios, dose recipes, visit references) are checked in validators so
that ``annulus protocol validate`` reports them with the path of the field.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in English and Simplified Chinese."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def get(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en


class EmergencyContact(Strict):
    """Who answers, day and night, when an emergency letter is opened (printed on every letter)."""

    name: Text
    phone: str = Field(min_length=3, max_length=40)


class TrialInfo(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    registry_number: str
    title: Text
    short_title: Text
    # the disease or condition the trial treats (SDTM TS INDIC)
    indication: Text | None = None
    phase: str
    design: Text
    site: Text
    timezone: str = "Asia/Shanghai"
    sponsor: Text | None = None
    # the 24-hour contact printed on each emergency letter (else settings.ANNULUS_EMERGENCY_CONTACT)
    emergency_contact: EmergencyContact | None = None


DEFAULT_SITE_ID = "01"


def derived_drug_code_prefix(trial_id: str) -> str:
    """The drug-code prefix of a protocol that declares none: the trial id up to its first hyphen,
    in capitals, at most 8 characters, and a hyphen (``dlbp-admsc`` -> ``DLBP-``)."""
    return trial_id.split("-", 1)[0][:8].upper() + "-"


class Site(Strict):
    """A site taking part in the trial: a short code (printed next to participant numbers and used
    to scope users to their site) and its name in both languages."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,11}$")
    name: Text


class SampleSize(Strict):
    per_arm: int = Field(gt=0)
    total: int = Field(gt=0)
    delta: float = Field(gt=0, description="clinically relevant difference (unit of the primary end point)")
    sd: float = Field(gt=0, description="SD of a single measurement of the primary end point")
    alpha: float = Field(gt=0, lt=1)
    power: float = Field(gt=0, lt=1)
    dropout: float = Field(ge=0, lt=1)


class StratumFactor(Strict):
    """A factor that defines strata (stratified blocks) or is balanced (minimisation).

    ``from`` names where a participant's level comes from: ``site`` (the participant's site) or
    the id of an eligibility evidence field. A choice field's choices are its levels; a boolean
    field's levels are ``no`` and ``yes``; a number field is cut into ``levels`` at ``cuts``
    (ascending; a value below ``cuts[0]`` is ``levels[0]``, a value equal to a cut belongs to the
    level above it)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    source: str = Field(alias="from", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    levels: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,30}$")]] = Field(min_length=2, max_length=20)
    cuts: list[float] | None = None

    @model_validator(mode="after")
    def _levels_and_cuts(self):
        problems = []
        if len(set(self.levels)) != len(self.levels):
            problems.append("levels: each level must be listed once")
        if self.cuts is not None:
            if len(self.cuts) != len(self.levels) - 1:
                problems.append(f"cuts: {len(self.levels)} levels need {len(self.levels) - 1} cut points "
                                f"(got {len(self.cuts)})")
            elif any(b <= a for a, b in zip(self.cuts, self.cuts[1:])):
                problems.append("cuts: must be in increasing order")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def level_for(self, value) -> str:
        """The level of a participant whose source value is ``value`` (the site id, or the
        evidence field's value)."""
        if self.cuts is not None:
            index = sum(1 for cut in self.cuts if float(value) >= cut)
            return self.levels[index]
        if isinstance(value, bool):
            return "yes" if value else "no"
        if str(value) not in self.levels:
            raise ValueError(f"{self.id}: {value!r} is not one of {', '.join(self.levels)}")
        return str(value)


class MinimisationFactor(StratumFactor):
    weight: float = Field(default=1.0, gt=0, le=100)


class MinimisationSettings(Strict):
    """The random element and the imbalance measure (Pocock & Simon 1975)."""

    p: float = Field(default=0.8, gt=0, le=1, description="probability of the arm(s) minimising imbalance")
    measure: Literal["range", "variance"] = "range"


class Randomisation(Strict):
    """How participants are allocated.

    ``permuted_blocks`` (the default): one list of permuted blocks. ``stratified_blocks``: one
    such list per stratum, the strata being every combination of the ``strata`` factors' levels;
    each list has ``stratum_list_length`` random numbers (default: the sample size).
    ``minimisation``: Pocock-Simon minimisation over ``factors`` with their weights and the
    ``minimisation`` settings; it has no list.

    ``case_numbers``: ``global`` (the default) numbers the enrolled participants of every site in
    one series (001, 002, ...); ``per_site`` gives each site its own series, prefixed with the
    site id (A-001, B-001, ...). The unstratified ``permuted_blocks`` list opens the envelope whose
    random number is the case number, so ``per_site`` needs a method that allocates by site.

    ``drug_code_prefix`` (optional): what every drug code on a label, sachet or kit starts with,
    followed by 6 random characters. Capital letters, digits and hyphens, up to 13 characters
    (``KOA-``). Left out, it is the trial id up to its first hyphen, in capitals, with a hyphen:
    ``dlbp-admsc`` gives ``DLBP-`` (the codes of the first trial's sealed lists), ``knee-oa-drug``
    ``KNEE-`` (``Protocol.drug_code_prefix``). The prefix is read when a list is generated; a
    sealed list keeps the codes it was generated with.
    """

    method: Literal["permuted_blocks", "stratified_blocks", "minimisation"] = "permuted_blocks"
    block_sizes: list[int] = Field(default=[4, 8], min_length=1)
    case_number_width: int = Field(default=3, ge=3, le=6)
    case_numbers: Literal["global", "per_site"] = "global"
    level1_key_holder: str = "designer"
    level2_key_holder: str = "pharmacist"
    strata: list[StratumFactor] | None = Field(default=None, min_length=1, max_length=4)
    stratum_list_length: int | None = Field(default=None, gt=0, le=100_000)
    factors: list[MinimisationFactor] | None = Field(default=None, min_length=1, max_length=10)
    minimisation: MinimisationSettings | None = None
    drug_code_prefix: str | None = Field(default=None, pattern=r"^[A-Z0-9][A-Z0-9-]{0,12}$")

    @model_validator(mode="after")
    def _method_settings(self):
        problems = []
        given = self.model_fields_set
        if self.method == "stratified_blocks" and not self.strata:
            problems.append("strata: stratified_blocks needs the factors that define the strata")
        if self.method == "minimisation" and not self.factors:
            problems.append("factors: minimisation needs the factors to balance")
        if self.case_numbers == "per_site" and self.method == "permuted_blocks":
            problems.append("case_numbers: per_site case numbers need allocation by site (method stratified_blocks "
                            "with a stratum from: site); the unstratified permuted_blocks list opens the envelope "
                            "whose random number is the case number, which per-site numbers repeat")
        wrong = {
            "permuted_blocks": ("strata", "stratum_list_length", "factors", "minimisation"),
            "stratified_blocks": ("factors", "minimisation"),
            "minimisation": ("strata", "stratum_list_length", "block_sizes"),
        }[self.method]
        for key in wrong:
            if key in given:
                problems.append(f"{key}: not used by method {self.method}")
        for key in ("strata", "factors"):
            ids = [f.id for f in getattr(self, key) or []]
            if len(set(ids)) != len(ids):
                problems.append(f"{key}: factor ids must be unique")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def p(self) -> float:
        return (self.minimisation or MinimisationSettings()).p

    @property
    def measure(self) -> str:
        return (self.minimisation or MinimisationSettings()).measure


class Recipe(Strict):
    """Volumes making up one injection (mL)."""

    cell_suspension_ml: float = Field(ge=0)
    saline_ml: float = Field(ge=0)
    ha_hydrogel_ml: float = Field(ge=0)

    @property
    def total_ml(self) -> float:
        return round(self.cell_suspension_ml + self.saline_ml + self.ha_hydrogel_ml, 6)


class Arm(Strict):
    """An arm. ``recipe`` and ``cells_per_disc`` belong to a cell product (``product.kind:
    cell_suspension``), where every arm needs them; ``kit`` to a product dispensed in kits
    (``product.kind: kit``): what the arm's kit holds, printed on nothing a blinded user sees."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    name: Text
    ratio: int = Field(gt=0, le=10)
    cells_per_disc: int = Field(default=0, ge=0)
    recipe: Recipe | None = None
    kit: Text | None = None
    control: bool = False
    dose_score: float = Field(ge=0, description="dose for trend tests (10^6 cells, mg/day, ...)")


class ReleaseCriterion(Strict):
    """A check a record must pass: a release criterion of a cell product, or a kit check at
    dispensing (``confirmed``: a yes/no the person dispensing must answer yes)."""

    id: str
    label: Text
    kind: Literal["equals", "min", "max", "range", "negative", "normal", "confirmed"]
    value: float | int | str | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None


class Product(Strict):
    """A cell product prepared per participant and released against ``release_criteria``
    (``kind: cell_suspension``, the default for files written before ``kind`` existed)."""

    kind: Literal["cell_suspension"] = "cell_suspension"
    name: Text
    concentration_cells_per_ml: int = Field(gt=0)
    injection_volume_ml: float = Field(gt=0)
    needle_gauge: int = 22
    approach: str = "posterolateral"
    imaging_guidance: str = "C-arm fluoroscopy"
    target_level: str = "L4-5"
    activity_restriction_days: int = 14
    # how long the prepared sachet keeps at 2-8 °C after dispensing (assumption: the protocol is
    # silent); the sachet label prints the expiry date and time from it
    shelf_life_hours: int = Field(default=24, gt=0, le=24 * 14)
    release_criteria: list[ReleaseCriterion]


class Compliance(Strict):
    """Adherence from the units dispensed and returned: taken = dispensed - returned (lost units
    count as taken unless recorded), expected = ``units_per_day`` x days between dispensing and
    return; compliance % = 100 x taken / expected, acceptable within ``min_percent``-``max_percent``."""

    units_per_day: float = Field(gt=0)
    min_percent: float = Field(default=80, ge=0, le=100)
    max_percent: float = Field(default=120, ge=100, le=1000)

    def percent(self, dispensed: int, returned: int, days: int) -> float | None:
        """Compliance in % (``None`` when no day has passed); a negative count or more units
        returned than dispensed is refused."""
        if dispensed < 0 or returned < 0:
            raise ValueError("units dispensed and returned must not be negative")
        if returned > dispensed:
            raise ValueError(f"returned: {returned} units returned but only {dispensed} dispensed")
        if days <= 0:
            return None
        return 100.0 * (dispensed - returned) / (self.units_per_day * days)

    def acceptable(self, percent: float | None) -> bool | None:
        return None if percent is None else self.min_percent <= percent <= self.max_percent


class KitProduct(Strict):
    """An investigational product supplied in identical, numbered kits (drug and placebo look
    alike): what one kit holds, how it is stored, the checks at dispensing (``kit_checks``) and
    the compliance rule of the returns. It has no release criteria."""

    kind: Literal["kit"]
    name: Text
    dosage_form: Text
    route: Literal["oral", "topical", "subcutaneous", "intramuscular", "intravenous", "intra_articular", "inhaled"]
    units_per_kit: int = Field(gt=0, le=10_000)
    kit_days: int = Field(gt=0, le=366, description="days of treatment one kit covers")
    storage: Text
    kit_checks: list[ReleaseCriterion] = Field(min_length=1)
    compliance: Compliance

    @property
    def release_criteria(self) -> list[ReleaseCriterion]:
        """A kit is not released per participant: no release criteria."""
        return []


AnyProduct = Annotated[Union[Product, KitProduct], Field(discriminator="kind")]


# ---- evidence fields and the rules that decide eligibility ----------------------------------

FieldType = Literal["date", "integer", "decimal", "boolean", "choice", "text"]


class EvidenceField(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    label: Text
    type: FieldType
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    choices: list[str] | None = None
    help: Text | None = None

    @model_validator(mode="after")
    def _choices_for_choice(self):
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice field needs 'choices'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class AgeAtLeast(Strict):
    kind: Literal["age_at_least"]
    field: str
    years: int = Field(ge=0)


class NumberRule(Strict):
    """Holds when the value lies within the bounds (inclusive unless *_exclusive)."""

    kind: Literal["number"]
    field: str
    min: float | None = None
    max: float | None = None
    min_exclusive: float | None = None
    max_exclusive: float | None = None


class OneOf(Strict):
    kind: Literal["one_of"]
    field: str
    values: list[str] = Field(min_length=1)


class AllEqual(Strict):
    """Holds when every field has the value (e.g. every serology test negative)."""

    kind: Literal["all_equal"]
    fields: list[str] = Field(min_length=1)
    value: str | bool


class CountTrue(Strict):
    kind: Literal["count_true"]
    fields: list[str] = Field(min_length=1)
    min: int = Field(ge=1)


class Flag(Strict):
    """Holds when a yes/no field has the given answer."""

    kind: Literal["flag"]
    field: str
    value: bool = True


class AnyOf(Strict):
    kind: Literal["any"]
    rules: list["Rule"] = Field(min_length=1)


class AllOf(Strict):
    kind: Literal["all"]
    rules: list["Rule"] = Field(min_length=1)


Rule = Annotated[
    Union[AgeAtLeast, NumberRule, OneOf, AllEqual, CountTrue, Flag, AnyOf, AllOf],
    Field(discriminator="kind"),
]
AnyOf.model_rebuild()
AllOf.model_rebuild()


class Criterion(Strict):
    id: str = Field(pattern=r"^[IE][0-9]{1,2}$")
    text: Text
    fields: list[str] = Field(min_length=1)
    rule: Rule


class Eligibility(Strict):
    fields: list[EvidenceField]
    inclusion: list[Criterion] = Field(min_length=1)
    exclusion: list[Criterion]

    @model_validator(mode="after")
    def _fields_declared(self):
        problems = []
        known = {f.id for f in self.fields}
        if len(known) != len(self.fields):
            problems.append("fields: evidence field ids must be unique")
        ids = [c.id for c in self.inclusion + self.exclusion]
        if len(set(ids)) != len(ids):
            problems.append("inclusion: criterion ids must be unique across inclusion and exclusion")
        for box, criteria in (("inclusion", self.inclusion), ("exclusion", self.exclusion)):
            for i, c in enumerate(criteria):
                for name in sorted(set(c.fields) | _rule_fields(c.rule)):
                    if name not in known:
                        problems.append(f"{box}[{i}]: criterion {c.id} uses undeclared field '{name}'")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def field(self, field_id: str) -> EvidenceField:
        return next(f for f in self.fields if f.id == field_id)


def _rule_fields(rule) -> set[str]:
    if isinstance(rule, (AnyOf, AllOf)):
        return set().union(*(_rule_fields(r) for r in rule.rules))
    if isinstance(rule, (AllEqual, CountTrue)):
        return set(rule.fields)
    return {rule.field}


# ---- schedule -------------------------------------------------------------------------------


class Window(Strict):
    before_days: int = Field(ge=0)
    after_days: int = Field(ge=0)


class Visit(Strict):
    """A visit of the schedule: its target day is ``offset_days`` from the date of ``anchor`` (the
    consent or a procedure the protocol declares), within ``window``. A visit with ``procedure``
    is the day that procedure is done; it may leave out ``anchor``, ``offset_days`` and ``window``,
    which then come from the procedure's ``timing`` (a procedure without timing is its own anchor,
    day 0). ``baseline: true`` marks the visit whose values are the baseline of the analysis."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    name: Text
    anchor: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    offset_days: int
    window: Window
    forms: list[str] = Field(default_factory=list)
    procedure: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,20}$")
    follow_up: bool = False
    baseline: bool = False


# the event every schedule may anchor on without declaring it
CONSENT_ANCHOR = "consent"


# What a field of a kit procedure's record means to its checks: the kit's number, the units
# given out with it, the units brought back, the units reported lost.
FieldMeaning = Literal["kit_number", "units_dispensed", "units_returned", "units_lost"]
# the fields a check needs (dispensing: which kit and how much of it; returns: which kit, what came back)
CHECK_FIELDS = {"dispensing": ("kit_number", "units_dispensed"), "returns": ("kit_number", "units_returned")}


class SdtmHint(Strict):
    """Where a field goes in an SDTM export (a mapping hint of the data dictionary, SDTMIG 3.3
    naming): the ``domain`` (two capitals), the ``variable`` that holds the value, and for a
    finding or a supplemental qualifier its ``testcd`` (the test code, or the ``QNAM`` of a
    ``QVAL``; at most 8 characters). ``{domain: PR, variable: PRSTDTC}``, ``{domain: EX, testcd:
    NEEDLEG, variable: QVAL}`` (SUPPEX), ``{domain: CO, variable: COVAL}`` (a comment)."""

    domain: str = Field(pattern=r"^[A-Z]{2}$")
    variable: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    testcd: str = Field(default="", pattern=r"^([A-Z][A-Z0-9]{0,7})?$")

    @model_validator(mode="after")
    def _variable_of_the_domain(self):
        if self.variable == "QVAL":
            if not self.testcd:
                raise ValueError("testcd: a supplemental qualifier (variable QVAL) names its QNAM in testcd")
        elif not self.variable.startswith(self.domain):
            raise ValueError(f"variable: {self.variable} is not a variable of the {self.domain} domain "
                             f"(it starts with {self.domain}, or is QVAL)")
        return self

    @property
    def hint(self) -> tuple[str, str, str]:
        """(domain, test code, variable), as the data dictionary holds it."""
        return self.domain, self.testcd, self.variable


class ProcedureField(EvidenceField):
    """A field of a procedure's record: an evidence field that may also be a date and time, and
    may be optional (``required: false``). ``means`` tells the kit checks which field holds the
    kit number and the units (``CHECK_FIELDS``). ``sdtm``: where the field goes in an SDTM export
    (``SdtmHint``); without it the data dictionary gives a field that ``means`` something and a
    date its usual place (see ``annulus.dictionary.mapping``)."""

    type: Literal["date", "datetime", "integer", "decimal", "boolean", "choice", "text"]
    required: bool = True
    means: FieldMeaning | None = None
    sdtm: SdtmHint | None = None


class ProcedureTiming(Strict):
    """When a procedure is due: ``offset_days`` after the event ``after`` (``consent`` or another
    procedure), within ``window``."""

    after: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    offset_days: int
    window: Window


ProcedureCheck = Literal["release", "dispensing", "returns"]


class Procedure(Strict):
    """A procedure of the trial, declared as data: its record's fields, when it is due, which
    roles record it, and which checks apply to it.

    ``checks``: ``release`` - the cell product must have passed ``product.release_criteria``
    before it is given; ``dispensing`` - a kit is dispensed, checked against ``product.kit_checks``;
    ``returns`` - the units returned are counted and the compliance computed
    (``product.compliance``). ``treatment: true`` marks the procedure that gives the treatment
    (the safety population's ``treated``); exactly one procedure does. ``event_name``: the
    procedure as running text names it ("awaiting transplantation", "visit after the first dose"),
    in lower case; by default its ``name``."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    name: Text
    event_name: Text | None = None
    timing: ProcedureTiming | None = None
    recorded_by: list[Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,30}$")]] = Field(default_factory=list)
    fields: list[ProcedureField] = Field(default_factory=list)
    checks: list[ProcedureCheck] = Field(default_factory=list)
    treatment: bool = False

    def field_meaning(self, meaning: str) -> ProcedureField | None:
        """The field that holds ``meaning`` (``FieldMeaning``), or None."""
        return next((f for f in self.fields if f.means == meaning), None)

    @model_validator(mode="after")
    def _unique(self):
        problems = _repeats([f.id for f in self.fields], "fields")
        problems += _repeats(self.checks, "checks")
        problems += _repeats([f.means for f in self.fields if f.means], "fields[].means")
        for i, f in enumerate(self.fields):
            want = "text" if f.means == "kit_number" else "integer"
            if f.means and f.type != want:
                problems.append(f"fields[{i}].type: a field that means {f.means} is of type {want}")
        if self.timing is not None and self.timing.after == self.id:
            problems.append("timing.after: a procedure cannot be timed from itself")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class FormDef(Strict):
    """An eCRF form: an instrument's, a laboratory panel's, or (``procedure``) the record of a
    declared procedure, whose items are the procedure's fields. ``self_report_intro``: the
    introduction participants read when they answer it on their own (default: the instrument's)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    name: Text
    instrument: str | None = None
    panel: str | None = None
    procedure: str | None = None
    # what participants read before the first question when they answer the form themselves,
    # in place of the instrument's own introduction (to name the trial's condition, say)
    self_report_intro: Text | None = None


class Analyte(Strict):
    id: str
    name: Text
    unit: str
    low: float | None = None
    high: float | None = None
    kind: Literal["numeric", "qualitative"] = "numeric"
    normal: str | None = None


class LabPanel(Strict):
    id: str
    name: Text
    analytes: list[Analyte] = Field(min_length=1)


class VitalLimit(Strict):
    id: str
    name: Text
    unit: str
    min: float
    max: float


class Schedule(Strict):
    visits: list[Visit] = Field(min_length=1)
    forms: list[FormDef]
    submission_days: int = Field(default=3, ge=1, description="record to research leader")
    completion_days: int = Field(default=10, ge=1, description="all data to project leader")
    reminder_days_before: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _forms_declared(self):
        problems = []
        form_ids = {f.id for f in self.forms}
        ids = [v.id for v in self.visits]
        if len(set(ids)) != len(ids):
            problems.append("visits: visit ids must be unique")
        for i, v in enumerate(self.visits):
            for name in v.forms:
                if name not in form_ids:
                    problems.append(f"visits[{i}].forms: visit {v.id} names undeclared form '{name}'")
        baselines = [i for i, v in enumerate(self.visits) if v.baseline]
        for i in baselines[1:]:
            problems.append(f"visits[{i}].baseline: only one visit is the baseline (visit "
                            f"{self.visits[baselines[0]].id} already is)")
        problems += _repeats([f.id for f in self.forms], "forms")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def visit(self, visit_id: str) -> Visit:
        return next(v for v in self.visits if v.id == visit_id)

    @property
    def baseline_visit(self) -> Visit | None:
        """The visit marked ``baseline: true`` (``None`` in a file that marks none)."""
        return next((v for v in self.visits if v.baseline), None)


# ---- roles and safety -----------------------------------------------------------------------


class Role(Strict):
    id: str = Field(pattern=r"^[a-z][a-z_]{1,30}$")
    name: Text
    blinded: bool
    description: Text


class SaeRecipient(Strict):
    id: str
    name: Text
    hours: int = Field(gt=0)
    or_end_of_working_day: int | None = Field(default=None, ge=1)


class DsmbThreshold(Strict):
    id: str
    description: Text
    serious: bool | None = None
    fatal: bool | None = None
    min_grade: int | None = Field(default=None, ge=1, le=5)
    related_to_product: bool | None = None
    per_arm: bool = False
    count_at_least: int = Field(ge=1)


class SusarReporting(Strict):
    """Expedited report of a SUSAR (serious, unexpected, related to the product) in calendar days
    from first knowledge. Defaults: ICH E2A (7 days fatal or life-threatening, 15 days others)."""

    id: str = Field(default="susar_expedited", pattern=r"^[a-z][a-z_]{1,39}$")
    name: Text = Field(default_factory=lambda: Text(en="Expedited SUSAR report (regulatory authority)",
                                                    zh="SUSAR快速报告（药品监管部门）"))
    fatal_or_life_threatening_days: int = Field(default=7, ge=1, le=15)
    other_days: int = Field(default=15, ge=1, le=15)

    @model_validator(mode="after")
    def _order(self):
        if self.fatal_or_life_threatening_days > self.other_days:
            raise ValueError("fatal_or_life_threatening_days: must not be longer than other_days")
        return self


class CausalityItem(Strict):
    """A procedure of the trial whose causality the adverse-event record asks for, besides the
    product's (always asked): the record's item is ``causality_<id>``, its label "Causality:
    <name>". ``sdtm_qnam``: the SUPPAE qualifier it is exported as; by default ``AEREL`` and the
    first three letters of the id in capitals."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    name: Text
    procedure: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    sdtm_qnam: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9]{0,7}$")

    @property
    def field(self) -> str:
        return f"causality_{self.id}"

    @property
    def qnam(self) -> str:
        return self.sdtm_qnam or ("AEREL" + self.id.replace("_", "").upper()[:3])


class Safety(Strict):
    sae_recipients: list[SaeRecipient] = Field(min_length=1)
    dsmb_thresholds: list[DsmbThreshold]
    dsmb_interim_months: int = Field(default=6, ge=1)
    related_causality: list[str] = ["possible", "probable", "definite"]
    susar: SusarReporting = Field(default_factory=SusarReporting)
    # the procedures whose causality each adverse event is assessed for (the product's always is)
    causality_of: list[CausalityItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids(self):
        problems = []
        if self.susar.id in {r.id for r in self.sae_recipients}:
            problems.append(f"susar.id: '{self.susar.id}' is already an SAE recipient id")
        problems += _repeats([c.id for c in self.causality_of], "causality_of")
        for i, c in enumerate(self.causality_of):
            if c.id == "product":
                problems.append(f"causality_of[{i}].id: the product's causality is always assessed; "
                                "'product' cannot name a procedure")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class IcfVersion(Strict):
    """An informed-consent form version and the day the ethics committee approved it."""

    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,19}$")
    approved_on: date


class ConsentRules(Strict):
    """The informed-consent form versions the ethics committee approved; a consent names one of
    them, approved on or before the day it was signed."""

    icf_versions: list[IcfVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        names = [v.version for v in self.icf_versions]
        if len(set(names)) != len(names):
            raise ValueError("icf_versions: each version may be listed once")
        return self

    def approved(self, on: date) -> list[IcfVersion]:
        """The versions approved on or before ``on``, the newest approval first."""
        return sorted((v for v in self.icf_versions if v.approved_on <= on), key=lambda v: v.approved_on, reverse=True)


# ---- edit checks ----------------------------------------------------------------------------

_CHECK_ID = r"^[a-z][a-z0-9_]{1,39}$"


class _EditCheck(Strict):
    """A soft check (X-7.4): it never refuses a save; a finding raises a query on the item it
    names, assigned to the site, and the query is closed when the finding is gone."""

    id: str = Field(pattern=_CHECK_ID)
    message: Text


class ChangeBetweenVisits(_EditCheck):
    """The item changes by more than ``max_change`` between consecutive visits that have it."""

    kind: Literal["change_between_visits"]
    form: str = Field(min_length=1, max_length=40)
    item: str = Field(min_length=1, max_length=60)
    max_change: float = Field(gt=0)


class Above(_EditCheck):
    """The item (or, with ``score``, the form's computed score; ``item`` is then the item queried,
    empty for the whole form) is above ``max``."""

    kind: Literal["above"]
    form: str = Field(min_length=1, max_length=40)
    item: str = Field(default="", max_length=60)
    score: str | None = Field(default=None, min_length=1, max_length=40)
    max: float

    @model_validator(mode="after")
    def _item_or_score(self):
        if not self.item and not self.score:
            raise ValueError("item: give the item, or a score of the form")
        return self


class LabOutsideRange(_EditCheck):
    """A numeric laboratory value above ``factor`` x the high reference limit or below the low
    limit / ``factor`` (each analyte of ``forms``, or of every laboratory form)."""

    kind: Literal["lab_outside_range"]
    forms: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list)
    factor: float = Field(gt=1)


class VisitBeforeConsent(_EditCheck):
    """A visit dated before the participant's consent (the visit's date is queried)."""

    kind: Literal["visit_before_consent"]


class AeBeforeTreatment(_EditCheck):
    """An adverse event whose onset lies before the treatment (the ``treatment: true``
    procedure, once recorded), with causality to the product among ``safety.related_causality``
    (the event's onset is queried). ``ae_before_transplant`` is the same check under the name
    files written for the first trial give it."""

    kind: Literal["ae_before_treatment", "ae_before_transplant"]


EditCheck = Annotated[
    Union[ChangeBetweenVisits, Above, LabOutsideRange, VisitBeforeConsent, AeBeforeTreatment],
    Field(discriminator="kind"),
]


# ---- source-data verification -----------------------------------------------------------------

# forms outside the visit schedule that the SDV plan may name: the consent record, the screening
# evidence and the eligibility decision (visit "screening") and the adverse-event log (visit "")
SDV_RECORD_FORMS = ("consent", "screening", "eligibility", "adverse_event")


class SdvCritical(Strict):
    """A form verified in full for every participant (or only its named items; the adverse-event
    log only for serious events when ``serious_only``)."""

    form: str = Field(min_length=1, max_length=40)
    items: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list)
    serious_only: bool = False


class SdvPlan(Strict):
    """Source-data verification (P-7.1): the critical forms in full, and ``sample_percent`` of
    every other form drawn per participant, visit and form from a SHA-256 of ``seed``."""

    seed: str = Field(min_length=8, max_length=80)
    sample_percent: float = Field(ge=0, le=100)
    critical: list[SdvCritical] = Field(default_factory=list)


# ---- analysis plan ---------------------------------------------------------------------------


class PerVisitPlan(Strict):
    """The pre-specified comparison of each arm with the control at every visit (P-8.2), used by
    ``annulus compare --protocol``: the primary method, then the sensitivity analyses.

    ``ancova``: the end point (``endpoint``: the change from baseline or the value) ~ arm +
    ``covariate`` (``baseline``: the same measure at the baseline visit), difference of adjusted
    means with its CI; ``welch``: Welch t tests; ``rank``: Wilcoxon–Mann–Whitney tests with the
    Hodges–Lehmann shift and its CI, and Kruskal–Wallis; ``auto``: the test chosen by the data
    (Shapiro–Wilk and Levene), not a sound primary rule but kept for earlier analyses.
    """

    primary: Literal["ancova", "welch", "auto"]
    endpoint: Literal["change", "value"] = "change"
    covariate: Literal["baseline"] | None = None
    sensitivity: list[Literal["ancova", "welch", "rank", "auto"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        uses_ancova = self.primary == "ancova" or "ancova" in self.sensitivity
        if uses_ancova and self.covariate is None:
            problems.append("covariate: the ANCOVA needs its covariate (baseline)")
        if self.covariate is not None and not uses_ancova:
            problems.append("covariate: only the ANCOVA uses a covariate, and no analysis is an ANCOVA")
        seen = set()
        for i, m in enumerate(self.sensitivity):
            if m == self.primary:
                problems.append(f"sensitivity[{i}]: '{m}' is already the primary analysis")
            elif m in seen:
                problems.append(f"sensitivity[{i}]: '{m}' is listed twice")
            seen.add(m)
        if problems:
            raise ValueError("\n".join(problems))
        return self


# The efficacy parameters of the analysis datasets (PARAMCD of ``annulus.interchange.adam.PARAMS``,
# which must list the same codes, forms and directions): the eCRF form of the schedule that
# provides each, and whether a lower value is the better outcome. Kept here, in the pure protocol
# package, so that the schema does not import the interchange package (which imports the protocol).
EfficacyParameter = Literal["VAS", "ODI", "JOA", "SF36PCS", "SF36MCS", "PFIRRM", "MODIC", "DISCHT", "ROM"]
EFFICACY_PARAMETERS: dict[str, tuple[str, bool]] = {
    "VAS": ("vas", True),
    "ODI": ("odi", True),
    "JOA": ("joa", False),
    "SF36PCS": ("sf36", False),
    "SF36MCS": ("sf36", False),
    "PFIRRM": ("imaging", True),
    "MODIC": ("imaging", True),
    "DISCHT": ("imaging", True),
    "ROM": ("imaging", False),
}

# The population rules: each holds or not for one participant, from the analysis datasets' sources
# (``annulus.interchange.adam`` evaluates them; a population is those for whom every rule holds).
#   randomised               - allocated a case number and a group (``Subject.randomised_at``)
#   treated                  - received the injection, active or placebo (``Subject.transplanted_at``)
#   eligible                 - the signed eligibility decision is "eligible"
#   primary_visit_in_window  - the primary end point's ``primary_visit`` was attended inside its
#                              protocol window (not missed, not early, not late)
#   not_emergency_unblinded  - the participant's treatment was not revealed by an emergency unblinding
PopulationRule = Literal["randomised", "treated", "eligible", "primary_visit_in_window", "not_emergency_unblinded"]
POPULATION_RULES: tuple[str, ...] = ("randomised", "treated", "eligible", "primary_visit_in_window",
                                     "not_emergency_unblinded")
# the efficacy populations the analysis datasets carry a flag for (the safety population: SAFFL)
EFFICACY_POPULATION_FLAGS = {"itt": "ITTFL", "pp": "PPROTFL"}

# sensitivity analyses of the primary end point for missing data and protocol deviations:
#   per_protocol    - the primary MMRM repeated in the per-protocol population (id ``pp``)
#   observed_ancova - ANCOVA of the change at the primary visit on the participants observed there
#                     (baseline as covariate), nothing modelled or imputed for the missing
MISSING_DATA_SENSITIVITY: tuple[str, ...] = ("per_protocol", "observed_ancova")
# the candidate dose-response shapes of MCP-Mod (``annulus.stats.dose_response.SHAPES``)
MCPMOD_MODELS: tuple[str, ...] = ("linear", "emax", "exponential", "quadratic")


def _repeats(values, where: str) -> list[str]:
    """"where[i]: 'x' is listed twice" for each repeated value."""
    problems, seen = [], set()
    for i, v in enumerate(values):
        if v in seen:
            problems.append(f"{where}[{i}]: '{v}' is listed twice")
        seen.add(v)
    return problems


class Population(Strict):
    """An analysis population: the participants for whom every rule of ``rule`` holds.

    ``id`` names the flag of the analysis datasets: ``itt`` -> ITTFL, ``pp`` -> PPROTFL (both
    ``role: efficacy``); the one population with ``role: safety`` -> SAFFL."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    role: Literal["efficacy", "safety"]
    name: Text
    rule: list[PopulationRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        problems = _repeats(self.rule, "rule")
        if problems:
            raise ValueError("\n".join(problems))
        return self


# the covariate of a mixed model that is the parameter's value at the baseline visit (any other
# covariate is the id of a factor of ``randomisation.strata``)
BASELINE_COVARIATE = "baseline"


class MixedModel(Strict):
    """The mixed model for repeated measures of an end point (``annulus.stats.mmrm.fit_mmrm``):
    the change from baseline at the end point's visits ~ covariates + arm + visit + arm x visit.
    A covariate is ``baseline`` (the parameter's value at the baseline visit) or the id of a
    stratification factor of the randomisation (``randomisation.strata[].id``: the participant's
    stratum as randomised, a factor; ICH E9 asks the primary analysis to adjust for the factors
    the randomisation was stratified by; ``Protocol`` checks the ids), with the covariance of a
    participant's visits ``covariance`` (``us`` unstructured, ``cs`` compound symmetry, ``csh``
    heterogeneous CS, ``ar1``/``arh1`` first-order autoregressive, ``toep`` Toeplitz), fitted by
    ``estimation`` (REML or ML), with ``df`` degrees of freedom (Kenward-Roger or Satterthwaite)."""

    method: Literal["mmrm"]
    covariates: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")]]
    covariance: Literal["us", "cs", "csh", "ar1", "arh1", "toep"]
    estimation: Literal["reml", "ml"]
    df: Literal["kenward-roger", "satterthwaite"]

    @model_validator(mode="after")
    def _unique(self):
        problems = _repeats(self.covariates, "covariates")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class Responder(Strict):
    """A responder at the primary visit: change from baseline <= ``change_at_most`` (a decrease of
    at least -change_at_most, for a parameter where lower is better) or >= ``change_at_least``
    (an increase, where higher is better). Exactly one of the two is given."""

    change_at_most: float | None = None
    change_at_least: float | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.change_at_most is None) == (self.change_at_least is None):
            raise ValueError("change_at_most: give exactly one of change_at_most and change_at_least")
        return self


class ParameterDef(Strict):
    """An efficacy parameter the protocol declares beyond those the analysis datasets know
    (``EFFICACY_PARAMETERS``): its code (an ADaM PARAMCD, at most 8 characters), name, the eCRF
    form and the key of the form's score that give its value, and the direction of benefit."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")
    name: Text
    form: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    score: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    lower_is_better: bool


class Endpoint(Strict):
    """An efficacy end point (the primary and each secondary): the ADaM parameter, the population
    it is analysed in, the follow-up visits of the model, the visit of the main comparison, the
    model, the direction of benefit and, optionally, a responder definition."""

    parameter: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")
    population: str
    visits: list[str] = Field(min_length=1)
    primary_visit: str
    model: MixedModel
    lower_is_better: bool
    responder: Responder | None = None

    @model_validator(mode="after")
    def _consistent(self):
        problems = _repeats(self.visits, "visits")
        if self.primary_visit not in self.visits:
            problems.append(f"primary_visit: '{self.primary_visit}' is not one of the end point's visits")
        r = self.responder
        if r is not None:
            if self.lower_is_better:
                if r.change_at_most is None:
                    problems.append(f"responder.change_at_least: {self.parameter} improves downwards; a responder's "
                                    "change is at most a negative number (change_at_most)")
                elif r.change_at_most >= 0:
                    problems.append(f"responder.change_at_most: must be negative (a decrease), got {r.change_at_most:g}")
            else:
                if r.change_at_least is None:
                    problems.append(f"responder.change_at_most: {self.parameter} improves upwards; a responder's "
                                    "change is at least a positive number (change_at_least)")
                elif r.change_at_least <= 0:
                    problems.append(f"responder.change_at_least: must be positive (an increase), got "
                                    f"{r.change_at_least:g}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class McpMod(Strict):
    """MCP-Mod of the change at ``visit`` (Bretz, Pinheiro, Branson 2005; ``annulus dose``): the
    candidate shapes with their guesstimates as in ``DoseFinding::Mods`` (``linear: null``,
    ``emax``: ED50, ``exponential``: delta, ``quadratic``: b2/b1, negative for an umbrella), the
    one-sided level ``alpha`` and the clinically relevant effect ``delta`` for the target dose."""

    visit: str
    alpha: float = Field(gt=0, lt=0.5)
    models: dict[Literal["linear", "emax", "exponential", "quadratic"], float | None] = Field(min_length=1)
    delta: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _guesses(self):
        problems = []
        for name, guess in self.models.items():
            if name == "linear":
                if guess is not None:
                    problems.append("models.linear: the linear shape has no guesstimate (write null)")
            elif guess is None:
                problems.append(f"models.{name}: the {name} shape needs its guesstimate")
            elif name in ("emax", "exponential") and guess <= 0:
                problems.append(f"models.{name}: must be positive, got {guess:g}")
            elif name == "quadratic" and guess == 0:
                problems.append("models.quadratic: 0 is the linear shape; give b2/b1 (negative for an umbrella)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class DoseResponse(Strict):
    """Each dose against the control (``control``, the placebo arm's id): Dunnett-adjusted
    contrasts of the MMRM, the linear trend over the arms' dose scores, and MCP-Mod."""

    control: str
    dunnett: bool = True
    trend: bool = True
    mcpmod: McpMod | None = None


class MissingData(Strict):
    """How missing values are handled. ``mmrm_mar``: the MMRM uses every observed value and is
    valid when data are missing at random given the observed values and arm; nothing is imputed.
    ``sensitivity``: ``per_protocol`` and/or ``observed_ancova`` (see MISSING_DATA_SENSITIVITY)."""

    approach: Literal["mmrm_mar"]
    sensitivity: list[Literal["per_protocol", "observed_ancova"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        problems = _repeats(self.sensitivity, "sensitivity")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class SafetyAnalysis(Strict):
    """The descriptive safety tables: adverse events in ``population`` by arm, tabulated by each
    of ``by`` (``soc_term``: system organ class and term; ``grade``: worst CTCAE grade;
    ``relatedness``: related to the product or not; ``serious``), deaths, withdrawals for an
    adverse event, laboratory shift tables, with ``interval`` CIs of the proportions."""

    population: str
    by: list[Literal["soc_term", "grade", "relatedness", "serious"]] = Field(min_length=1)
    deaths: bool = True
    withdrawals_for_ae: bool = True
    lab_shifts: bool = True
    interval: Literal["clopper-pearson"] = "clopper-pearson"

    @model_validator(mode="after")
    def _unique(self):
        problems = _repeats(self.by, "by")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class AnalysisPlan(Strict):
    """The statistical analysis plan, as far as the software runs it.

    Every section but ``per_visit`` is optional, so that protocol versions stored before they
    existed still load; the trial report needs ``primary`` (and reads the rest when present).
    References between sections are checked here; references to the schedule and the arms in
    ``Protocol``."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="two-sided test level; CIs are 1 - alpha")
    populations: list[Population] = Field(default_factory=list)
    primary: Endpoint | None = None
    secondary: list[Endpoint] = Field(default_factory=list)
    dose_response: DoseResponse | None = None
    missing_data: MissingData | None = None
    safety: SafetyAnalysis | None = None
    per_visit: PerVisitPlan
    # efficacy parameters beyond EFFICACY_PARAMETERS (a second trial's own scales)
    parameters: list[ParameterDef] = Field(default_factory=list)

    def parameter_source(self, code: str) -> tuple[str, bool] | None:
        """(eCRF form, lower is better) of a parameter: a declared one, else one the analysis
        datasets know; ``None`` for an unknown code."""
        declared = next((p for p in self.parameters if p.code == code), None)
        if declared is not None:
            return declared.form, declared.lower_is_better
        return EFFICACY_PARAMETERS.get(code)

    @model_validator(mode="after")
    def _references(self):
        problems = self._population_problems()
        for i, p in enumerate(self.parameters):
            if p.code in EFFICACY_PARAMETERS:
                problems.append(f"parameters[{i}].code: {p.code} is already a parameter of the analysis datasets")
        problems += _repeats([p.code for p in self.parameters], "parameters")
        pops = {p.id: p for p in self.populations}
        if self.primary is None:
            for name in ("secondary", "dose_response", "missing_data"):
                if getattr(self, name):
                    problems.append(f"{name}: needs the primary end point (primary)")
        endpoints = [("primary", self.primary)] if self.primary is not None else []
        endpoints += [(f"secondary[{i}]", ep) for i, ep in enumerate(self.secondary)]
        seen: dict[str, str] = {}
        for where, ep in endpoints:
            pop = pops.get(ep.population)
            if pop is None:
                known = ", ".join(pops) or "none declared"
                problems.append(f"{where}.population: '{ep.population}' is not a declared population ({known})")
            elif pop.role != "efficacy":
                problems.append(f"{where}.population: '{ep.population}' is a safety population, not an efficacy one")
            source = self.parameter_source(ep.parameter)
            if source is None:
                known = ", ".join([*EFFICACY_PARAMETERS, *(p.code for p in self.parameters)])
                problems.append(f"{where}.parameter: '{ep.parameter}' is not a known parameter ({known}); declare a "
                                "new one under analysis.parameters")
            elif ep.lower_is_better != source[1]:
                better_low = source[1]
                problems.append(f"{where}.lower_is_better: for {ep.parameter} a {'lower' if better_low else 'higher'} "
                                f"value is better (lower_is_better: {'true' if better_low else 'false'})")
            if ep.parameter in seen:
                problems.append(f"{where}.parameter: {ep.parameter} is already the end point {seen[ep.parameter]}")
            seen.setdefault(ep.parameter, where)
        dr = self.dose_response
        if dr is not None and dr.mcpmod is not None and self.primary is not None:
            if dr.mcpmod.visit not in self.primary.visits:
                problems.append(f"dose_response.mcpmod.visit: '{dr.mcpmod.visit}' is not one of the primary end "
                                "point's visits")
            if dr.mcpmod.alpha > self.alpha / 2 + 1e-12:
                problems.append(f"dose_response.mcpmod.alpha: the one-sided level {dr.mcpmod.alpha:g} is above "
                                f"half the plan's two-sided alpha ({self.alpha / 2:g})")
        md = self.missing_data
        if md is not None:
            for i, kind in enumerate(md.sensitivity):
                if kind == "per_protocol" and "pp" not in pops:
                    problems.append(f"missing_data.sensitivity[{i}]: per_protocol needs the population 'pp'")
        if self.safety is not None:
            pop = pops.get(self.safety.population)
            if pop is None:
                known = ", ".join(pops) or "none declared"
                problems.append(f"safety.population: '{self.safety.population}' is not a declared population "
                                f"({known})")
            elif pop.role != "safety":
                problems.append(f"safety.population: '{self.safety.population}' is an efficacy population, not the "
                                "safety one")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _population_problems(self) -> list[str]:
        if not self.populations:
            return []
        problems, seen = [], set()
        for i, p in enumerate(self.populations):
            if p.id in seen:
                problems.append(f"populations[{i}].id: '{p.id}' is used twice")
            seen.add(p.id)
        for i, p in enumerate(self.populations):
            if p.role == "efficacy" and p.id not in EFFICACY_POPULATION_FLAGS:
                problems.append(f"populations[{i}].id: '{p.id}': the analysis datasets flag the efficacy populations "
                                "itt (ITTFL) and pp (PPROTFL) only")
            if p.id in EFFICACY_POPULATION_FLAGS and p.role != "efficacy":
                problems.append(f"populations[{i}].role: '{p.id}' is an efficacy population")
            if p.role == "efficacy" and "randomised" not in p.rule:
                problems.append(f"populations[{i}].rule: an efficacy population compares randomised arms; "
                                "it needs 'randomised'")
            if p.role == "safety" and "treated" not in p.rule:
                problems.append(f"populations[{i}].rule: the safety population is those who received the "
                                "injection; it needs 'treated'")
            if "primary_visit_in_window" in p.rule and self.primary is None:
                problems.append(f"populations[{i}].rule: primary_visit_in_window needs the primary end point "
                                "(primary.primary_visit)")
        if not any(p.id == "itt" for p in self.populations):
            problems.append("populations: the intention-to-treat population (id itt, role efficacy) is missing")
        n_safety = sum(p.role == "safety" for p in self.populations)
        if n_safety != 1:
            problems.append(f"populations: exactly one population must have the role safety (found {n_safety})")
        return problems

    # convenience lookups
    def population(self, population_id: str) -> Population:
        return next(p for p in self.populations if p.id == population_id)

    @property
    def endpoints(self) -> list[Endpoint]:
        """The primary end point, then the secondary ones."""
        return ([self.primary] if self.primary is not None else []) + list(self.secondary)

    @property
    def safety_population(self) -> Population | None:
        return next((p for p in self.populations if p.role == "safety"), None)


class Protocol(Strict):
    """A whole protocol version."""

    schema_version: Literal[1] = 1
    version: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$")
    effective_date: date
    trial: TrialInfo
    sample_size: SampleSize
    randomisation: Randomisation
    # a cell product released per participant (kind cell_suspension, the default) or numbered kits
    product: AnyProduct
    arms: list[Arm] = Field(min_length=2)
    # optional so that stored protocol versions without it still load: the procedures are then
    # the names the visits give as ``procedure`` (see ``procedure_list``)
    procedures: list[Procedure] | None = Field(default=None, min_length=1, max_length=40)
    recruitment_sources: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] = Field(min_length=1)
    # optional: without it the trial has one site, ``trial.site``, whose id is DEFAULT_SITE_ID
    sites: list[Site] | None = Field(default=None, min_length=1, max_length=500)
    # optional so that protocol versions stored before it existed still load; without it the
    # consent version is free text
    consent: ConsentRules | None = None
    eligibility: Eligibility
    schedule: Schedule
    lab_panels: list[LabPanel]
    vital_signs: list[VitalLimit]
    roles: list[Role] = Field(min_length=1)
    safety: Safety
    # optional: a protocol without it has no SDV plan (nothing to verify)
    sdv: SdvPlan | None = None
    # soft edit checks: each finding raises a query on its item
    edit_checks: list[EditCheck] = Field(default_factory=list)
    # optional so that stored protocol versions without it still load: without a plan,
    # `annulus compare` needs --method (default: the test chosen by the data)
    analysis: AnalysisPlan | None = None
    assumptions: list[Text] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_declarations(cls, data):
        """Two conveniences of the file, filled in before validation (the input is not changed):
        a product without ``kind`` is a cell product (files written before kits existed), and a
        visit that names a declared procedure takes the procedure's timing for any of ``anchor``,
        ``offset_days`` and ``window`` it leaves out (a procedure without timing is its own
        anchor, day 0, window 0/0)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        product = data.get("product")
        if isinstance(product, dict) and "kind" not in product:
            data["product"] = {"kind": "cell_suspension", **product}
        procedures = data.get("procedures")
        schedule = data.get("schedule")
        if not isinstance(procedures, list) or not isinstance(schedule, dict) or not isinstance(schedule.get("visits"), list):
            return data
        declared = {p.get("id"): p for p in procedures if isinstance(p, dict)}
        visits = []
        for v in schedule["visits"]:
            name = v.get("procedure") if isinstance(v, dict) else None
            proc = declared.get(name) if isinstance(name, str) else None
            if proc is None and isinstance(name, str):
                # an undeclared procedure: let the cross-checks name it rather than the missing keys
                proc = {"id": name}
            if proc is not None:
                timing = proc.get("timing")
                if isinstance(timing, dict):
                    implied = {"anchor": timing.get("after"), "offset_days": timing.get("offset_days"),
                               "window": timing.get("window")}
                else:
                    implied = {"anchor": proc.get("id"), "offset_days": 0,
                               "window": {"before_days": 0, "after_days": 0}}
                v = {**{k: val for k, val in implied.items() if val is not None}, **v}
            visits.append(v)
        data["schedule"] = {**schedule, "visits": visits}
        return data

    @model_validator(mode="after")
    def _cross_checks(self):
        # each problem is "relative.path: message" so the loader can print the field's path;
        # all problems are reported at once, not only the first
        problems = []
        ids = [a.id for a in self.arms]
        if len(set(ids)) != len(ids):
            problems.append("arms: arm ids must be unique")
        controls = sum(1 for a in self.arms if a.control)
        if controls != 1:
            problems.append(f"arms: exactly one arm must be the control arm (found {controls})")
        total_ratio = sum(a.ratio for a in self.arms)
        if self.sample_size.total % total_ratio:
            problems.append(
                f"sample_size.total: {self.sample_size.total} is not a multiple of the ratio sum {total_ratio} "
                f"of {len(self.arms)} arms"
            )
        for i, size in enumerate(self.randomisation.block_sizes if self.randomisation.method != "minimisation" else []):
            if size % total_ratio:
                problems.append(f"randomisation.block_sizes[{i}]: {size} is not a multiple of the ratio sum "
                                f"{total_ratio}")
        problems.extend(self._arm_product_problems())
        problems.extend(self._procedure_problems())
        blinded = {r.id: r.blinded for r in self.roles}
        for key in ("level1_key_holder", "level2_key_holder"):
            holder = getattr(self.randomisation, key)
            if holder not in blinded:
                problems.append(f"randomisation.{key}: '{holder}' is not a declared role")
            elif blinded[holder]:
                # a key holder sees labels or treatments: naming a blinded role would unblind it
                problems.append(f"randomisation.{key}: role '{holder}' is blinded; a key holder must be an "
                                "unblinded role")
        seen_sites = set()
        for i, site in enumerate(self.sites or []):
            if site.id in seen_sites:
                problems.append(f"sites[{i}].id: '{site.id}' is listed twice")
            seen_sites.add(site.id)
        problems.extend(self._randomisation_problems())
        problems.extend(self._edit_check_problems())
        declared = {p.id for p in self.procedure_list}
        for i, c in enumerate(self.safety.causality_of):
            if c.procedure not in declared:
                problems.append(f"safety.causality_of[{i}].procedure: '{c.procedure}' is not a declared procedure "
                                f"({', '.join(sorted(declared)) or 'none declared'})")
        if self.analysis is not None:
            problems.extend(self._analysis_problems())
        if self.sdv is not None:
            known = {f.id for f in self.schedule.forms} | set(SDV_RECORD_FORMS)
            seen = set()
            for i, c in enumerate(self.sdv.critical):
                if c.form not in known:
                    problems.append(f"sdv.critical[{i}].form: '{c.form}' is not a declared form")
                elif c.form in seen:
                    problems.append(f"sdv.critical[{i}].form: '{c.form}' is listed twice")
                seen.add(c.form)
                if c.serious_only and c.form != "adverse_event":
                    problems.append(f"sdv.critical[{i}].serious_only: only the adverse_event log has serious events")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _arm_product_problems(self) -> list[str]:
        """A cell product's arms each have a recipe of the injection volume whose cells match
        ``cells_per_disc``; a kit product's arms say what their kit holds and have no recipe."""
        problems = []
        product = self.product
        for i, arm in enumerate(self.arms):
            if isinstance(product, KitProduct):
                if arm.kit is None:
                    problems.append(f"arms[{i}].kit: a kit product's arms say what their kit holds")
                if arm.recipe is not None or arm.cells_per_disc:
                    problems.append(f"arms[{i}].recipe: a kit product's arms have no cell recipe")
                continue
            if arm.kit is not None:
                problems.append(f"arms[{i}].kit: only a kit product's arms have a kit")
            if arm.recipe is None:
                problems.append(f"arms[{i}].recipe: a cell product's arms need their recipe")
                continue
            if abs(arm.recipe.total_ml - product.injection_volume_ml) > 1e-9:
                problems.append(
                    f"arms[{i}].recipe: volumes add up to {arm.recipe.total_ml} mL, "
                    f"the injection is {product.injection_volume_ml} mL"
                )
            expected = round(arm.recipe.cell_suspension_ml * product.concentration_cells_per_ml)
            if expected != arm.cells_per_disc:
                problems.append(
                    f"arms[{i}].cells_per_disc: {arm.cells_per_disc} does not match "
                    f"{arm.recipe.cell_suspension_ml} mL x {product.concentration_cells_per_ml} cells/mL"
                )
        return problems

    def _procedure_problems(self) -> list[str]:
        """Procedures, the events the visits anchor on, and the procedure record forms.

        The events are the consent and each procedure. A visit anchors on an event; a procedure's
        timing counts from another event, without a cycle; a procedure that something counts from
        is done at exactly one visit (that visit's date is the event's date). Roles that record a
        procedure are declared roles; ``release`` needs a cell product, ``dispensing`` and
        ``returns`` a kit product; exactly one procedure gives the treatment."""
        problems = []
        visits = self.schedule.visits
        declared = self.procedures
        procedures = {p.id: p for p in self.procedure_list}
        events = {CONSENT_ANCHOR, *procedures}
        roles = {r.id for r in self.roles}
        if declared is not None:
            problems += _repeats([p.id for p in declared], "procedures")
            for i, p in enumerate(declared):
                where = f"procedures[{i}]"
                if p.id == CONSENT_ANCHOR:
                    problems.append(f"{where}.id: '{CONSENT_ANCHOR}' is the consent, not a procedure")
                for j, role in enumerate(p.recorded_by):
                    if role not in roles:
                        problems.append(f"{where}.recorded_by[{j}]: '{role}' is not a declared role")
                if not p.recorded_by:
                    problems.append(f"{where}.recorded_by: name the role(s) that record the procedure")
                if p.timing is not None and p.timing.after not in events:
                    problems.append(f"{where}.timing.after: '{p.timing.after}' is neither the consent nor a "
                                    f"declared procedure ({', '.join(sorted(events))})")
                for j, check in enumerate(p.checks):
                    if check == "release" and not isinstance(self.product, Product):
                        problems.append(f"{where}.checks[{j}]: release checks need a cell product with "
                                        "release_criteria (product.kind: cell_suspension)")
                    if check in ("dispensing", "returns") and not isinstance(self.product, KitProduct):
                        problems.append(f"{where}.checks[{j}]: {check} checks need a product supplied in kits "
                                        "(product.kind: kit)")
                    for meaning in CHECK_FIELDS.get(check, ()):
                        if p.field_meaning(meaning) is None:
                            problems.append(f"{where}.checks[{j}]: {check} needs a field with means: {meaning}")
            treatments = [p.id for p in declared if p.treatment]
            if len(treatments) != 1:
                problems.append(f"procedures: exactly one procedure gives the treatment (treatment: true; found "
                                f"{len(treatments)})")
            # a cycle of timings: a -> b -> a
            for i, p in enumerate(declared):
                seen, step = {p.id}, p
                while step is not None and step.timing is not None and step.timing.after in procedures:
                    step = procedures[step.timing.after]
                    if step.id in seen:
                        problems.append(f"procedures[{i}].timing.after: the timings of {' -> '.join(sorted(seen))} "
                                        "count from each other in a circle")
                        break
                    seen.add(step.id)
        done_at: dict[str, list[str]] = {}
        for i, v in enumerate(visits):
            if v.anchor not in events:
                problems.append(f"schedule.visits[{i}].anchor: '{v.anchor}' is neither the consent nor a declared "
                                f"procedure ({', '.join(sorted(events))})")
            if v.procedure is None:
                continue
            done_at.setdefault(v.procedure, []).append(v.id)
            p = procedures.get(v.procedure)
            if p is None:
                problems.append(f"schedule.visits[{i}].procedure: '{v.procedure}' is not a declared procedure "
                                f"({', '.join(sorted(procedures)) or 'none declared'})")
            elif declared is not None:
                if p.timing is not None:
                    want = (p.timing.after, p.timing.offset_days, p.timing.window)
                else:
                    want = (p.id, 0, Window(before_days=0, after_days=0))
                if (v.anchor, v.offset_days, v.window) != want:
                    problems.append(f"schedule.visits[{i}]: visit {v.id} is the {p.id} procedure but its anchor, "
                                    "offset_days or window differ from the procedure's timing (leave them out)")
        counted_from = {v.anchor for v in visits} | {p.timing.after for p in procedures.values() if p.timing}
        for name in sorted(counted_from - {CONSENT_ANCHOR}):
            if name in procedures and len(done_at.get(name, [])) != 1:
                problems.append(f"schedule.visits: the schedule counts from {name}, so exactly one visit must be the "
                                f"{name} procedure (found {len(done_at.get(name, []))})")
        for i, f in enumerate(self.schedule.forms):
            if f.procedure is None:
                continue
            if declared is None or f.procedure not in procedures:
                problems.append(f"schedule.forms[{i}].procedure: '{f.procedure}' is not a declared procedure")
            if f.instrument or f.panel:
                problems.append(f"schedule.forms[{i}].procedure: a procedure record has no instrument or panel")
        return problems

    @property
    def procedure_list(self) -> list[Procedure]:
        """The declared procedures; in a file without ``procedures:``, one procedure (no fields,
        no checks) per name the visits give as ``procedure``, named after its visit."""
        if self.procedures is not None:
            return list(self.procedures)
        out: dict[str, Procedure] = {}
        for v in self.schedule.visits:
            if v.procedure and v.procedure not in out:
                out[v.procedure] = Procedure(id=v.procedure, name=v.name)
        return list(out.values())

    def procedure(self, procedure_id: str) -> Procedure | None:
        return next((p for p in self.procedure_list if p.id == procedure_id), None)

    @property
    def anchors(self) -> list[str]:
        """The events the schedule can count from: the consent, then each procedure done at one
        visit of the schedule (that visit's date is the event's date). A procedure recorded at
        several visits (a kit return) is not an anchor."""
        done_at: dict[str, int] = {}
        for v in self.schedule.visits:
            if v.procedure:
                done_at[v.procedure] = done_at.get(v.procedure, 0) + 1
        return [CONSENT_ANCHOR, *(p.id for p in self.procedure_list if done_at.get(p.id) == 1)]

    @property
    def treatment_procedure(self) -> Procedure | None:
        """The procedure that gives the treatment (``None`` in a file without ``procedures:``)."""
        return next((p for p in self.procedures or [] if p.treatment), None)

    @property
    def treatment_event_name(self) -> Text | None:
        """The treatment as running text names it (``Procedure.event_name``, else its name)."""
        treatment = self.treatment_procedure
        if treatment is None:
            return None
        return treatment.event_name or treatment.name

    @property
    def page_procedures(self) -> dict[str, str]:
        """The procedures of an autologous cell product, recorded on the product's own pages
        rather than as eCRF forms: the treatment whose checks include ``release`` (the product
        given after its release checks) as ``"treatment"``, and the procedure its timing counts
        from (the harvest the product is made from) as ``"harvest"``; procedure id -> that part.
        Every other procedure is recorded as the eCRF form the schedule declares for it. A file
        written before ``procedures:`` had only this shape: its last procedure is the treatment
        and the earlier one the harvest."""
        if self.procedures is None:
            ids = [p.id for p in self.procedure_list]
            return {i: ("treatment" if n == len(ids) - 1 else "harvest") for n, i in enumerate(ids)}
        treatment = self.treatment_procedure
        if treatment is None or "release" not in treatment.checks:
            return {}
        out = {treatment.id: "treatment"}
        if treatment.timing is not None and treatment.timing.after != CONSENT_ANCHOR:
            out[treatment.timing.after] = "harvest"
        return out

    def page_procedure(self, part: str) -> str | None:
        """The id of the page procedure that is ``part`` ("harvest", "treatment":
        ``page_procedures``), or None (a protocol without such pages)."""
        return next((pid for pid, p in self.page_procedures.items() if p == part), None)

    def procedure_visit(self, procedure_id: str) -> Visit | None:
        """The visit of the schedule at which the procedure is done (its date is the event's
        date), or None when it is done at several visits or none."""
        found = [v for v in self.schedule.visits if v.procedure == procedure_id]
        return found[0] if len(found) == 1 else None

    def form_procedure(self, form_id: str) -> Procedure | None:
        """The procedure the schedule's form records, or None (a questionnaire, a panel, an
        unknown form)."""
        form = next((f for f in self.schedule.forms if f.id == form_id), None)
        return self.procedure(form.procedure) if form is not None and form.procedure else None

    def record_form_procedure(self, form_id: str) -> Procedure | None:
        """The procedure the form records as an eCRF form: ``form_procedure`` unless it is one
        of the cell product's ``page_procedures`` (recorded on its own pages)."""
        proc = self.form_procedure(form_id)
        return None if proc is None or proc.id in self.page_procedures else proc

    def procedure_form(self, procedure_id: str) -> FormDef | None:
        """The eCRF form that records the procedure."""
        return next((f for f in self.schedule.forms if f.procedure == procedure_id), None)

    @property
    def drug_code_prefix(self) -> str:
        """The prefix of the trial's drug codes: ``randomisation.drug_code_prefix`` when declared,
        else the trial id up to its first hyphen in capitals (at most 8 characters) and a hyphen."""
        declared = self.randomisation.drug_code_prefix
        if declared is not None:
            return declared
        return derived_drug_code_prefix(self.trial.id)

    @property
    def site_list(self) -> list[Site]:
        """The trial's sites: those the protocol declares, else the one site ``trial.site``."""
        return list(self.sites) if self.sites else [Site(id=DEFAULT_SITE_ID, name=self.trial.site)]

    def site_by_id(self, site_id: str) -> Site | None:
        return next((s for s in self.site_list if s.id == site_id), None)

    def _analysis_problems(self) -> list[str]:
        """The analysis plan against the schedule and the arms: an end point's visits are
        follow-up visits that collect its parameter's form (and the baseline visit collects it
        too, for the change from baseline); a model's covariates are the baseline or strata of the
        randomisation; the control is the protocol's control arm; MCP-Mod has at least three dose
        levels."""
        plan = self.analysis
        problems = []
        visits = {v.id: v for v in self.schedule.visits}
        baseline = self.schedule.baseline_visit
        endpoints = [("analysis.primary", plan.primary)] if plan.primary is not None else []
        endpoints += [(f"analysis.secondary[{i}]", ep) for i, ep in enumerate(plan.secondary)]
        for where, ep in endpoints:
            problems.extend(self._covariate_problems(f"{where}.model.covariates", ep.model.covariates))
            source = plan.parameter_source(ep.parameter)
            if source is None:
                continue  # reported by the plan itself
            form = source[0]
            if not any(f.id == form for f in self.schedule.forms):
                problems.append(f"{where}.parameter: {ep.parameter} comes from the {form} form, which the schedule "
                                "does not declare")
                continue
            if baseline is not None and form not in baseline.forms:
                problems.append(f"{where}.parameter: the baseline visit does not collect the {form} form "
                                f"({ep.parameter} has no baseline to change from)")
            for j, visit_id in enumerate(ep.visits):
                v = visits.get(visit_id)
                if v is None or not v.follow_up:
                    problems.append(f"{where}.visits[{j}]: '{visit_id}' is not a follow-up visit of the schedule")
                elif form not in v.forms:
                    problems.append(f"{where}.visits[{j}]: visit {visit_id} does not collect the {form} form "
                                    f"({ep.parameter})")
        dr = plan.dose_response
        if dr is not None:
            arm = next((a for a in self.arms if a.id == dr.control), None)
            if arm is None:
                problems.append(f"analysis.dose_response.control: '{dr.control}' is not an arm id "
                                f"({', '.join(a.id for a in self.arms)})")
            elif not arm.control:
                control = ", ".join(a.id for a in self.arms if a.control) or "none"
                problems.append(f"analysis.dose_response.control: arm '{dr.control}' is not the control arm "
                                f"({control})")
            levels = {a.dose_score for a in self.arms}
            if dr.mcpmod is not None and len(levels) < 3:
                problems.append(f"analysis.dose_response.mcpmod: MCP-Mod needs at least three dose levels "
                                f"(the arms' dose_score give {len(levels)})")
        return problems

    def _covariate_problems(self, where: str, covariates) -> list[str]:
        """A mixed model's covariates: each is ``baseline`` or a stratum of the randomisation."""
        strata = [f.id for f in self.randomisation.strata or []]
        problems = []
        for i, name in enumerate(covariates):
            if name == BASELINE_COVARIATE:
                continue
            if not strata:
                problems.append(f"{where}[{i}]: '{name}' is not a stratum of the randomisation, which has no strata "
                                f"(a covariate is {BASELINE_COVARIATE} or the id of a randomisation.strata factor)")
            elif name not in strata:
                problems.append(f"{where}[{i}]: '{name}' is not a stratum of the randomisation ({', '.join(strata)})")
        return problems

    def _randomisation_problems(self) -> list[str]:
        """Strata and minimisation factors against the eligibility fields and the arms: each
        factor's ``from`` is ``site`` or an evidence field whose values map onto the levels."""
        rand, problems = self.randomisation, []
        fields = {f.id: f for f in self.eligibility.fields}
        for key in ("strata", "factors"):
            for i, factor in enumerate(getattr(rand, key) or []):
                where = f"randomisation.{key}[{i}]"
                if key == "strata" and factor.id == BASELINE_COVARIATE:
                    problems.append(f"{where}.id: '{factor.id}' names the baseline covariate of the analysis plan's "
                                    "models; give the factor another id")
                if factor.source == "site":
                    if factor.cuts is not None:
                        problems.append(f"{where}.cuts: only a number field is cut into levels")
                    site_ids = [site.id for site in self.sites or []]
                    if site_ids and sorted(factor.levels) != sorted(site_ids):
                        problems.append(f"{where}.levels: must be the ids of the declared sites "
                                        f"({', '.join(site_ids)})")
                    continue
                field = fields.get(factor.source)
                if field is None:
                    problems.append(f"{where}.from: '{factor.source}' is neither site nor an eligibility field")
                elif field.type in ("integer", "decimal"):
                    if factor.cuts is None:
                        problems.append(f"{where}.cuts: number field '{field.id}' needs cut points for its levels")
                elif factor.cuts is not None:
                    problems.append(f"{where}.cuts: only a number field is cut into levels ('{field.id}' is {field.type})")
                elif field.type == "choice":
                    if sorted(factor.levels) != sorted(field.choices or []):
                        problems.append(f"{where}.levels: must be the choices of field '{field.id}' "
                                        f"({', '.join(field.choices or [])})")
                elif field.type == "boolean":
                    if sorted(factor.levels) != ["no", "yes"]:
                        problems.append(f"{where}.levels: a yes/no field's levels are no and yes")
                else:
                    problems.append(f"{where}.from: a {field.type} field cannot define levels")
        if rand.method == "minimisation" and not rand.p > 1 / len(self.arms):
            problems.append(f"randomisation.minimisation.p: must be greater than 1/{len(self.arms)} "
                            f"(one over the number of arms), got {rand.p:g}")
        return problems

    def _edit_check_problems(self) -> list[str]:
        """Each edit check names a declared eCRF form and one of its items; ids are unique."""
        from annulus.errors import RuleViolation
        from annulus.instruments.forms import spec_for

        problems, seen = [], set()
        lab_form_ids = {f.id for f in self.schedule.forms if f.panel}
        for i, c in enumerate(self.edit_checks):
            if c.id in seen:
                problems.append(f"edit_checks[{i}].id: '{c.id}' is used twice")
            seen.add(c.id)
            if isinstance(c, LabOutsideRange):
                for j, name in enumerate(c.forms):
                    if name not in lab_form_ids:
                        problems.append(f"edit_checks[{i}].forms[{j}]: '{name}' is not a declared laboratory form")
                continue
            if not isinstance(c, (ChangeBetweenVisits, Above)):
                continue
            if not any(f.id == c.form for f in self.schedule.forms):
                problems.append(f"edit_checks[{i}].form: '{c.form}' is not a declared form")
                continue
            try:
                spec = spec_for(self, c.form)
            except (RuleViolation, StopIteration):
                problems.append(f"edit_checks[{i}].form: '{c.form}' is a procedure record, not an eCRF form")
                continue
            if c.item and spec.item(c.item) is None:
                problems.append(f"edit_checks[{i}].item: '{c.item}' is not an item of the {c.form} form")
        return problems

    # convenience lookups
    def arm(self, arm_id: str) -> Arm:
        return next(a for a in self.arms if a.id == arm_id)

    @property
    def control_arm(self) -> Arm:
        return next(a for a in self.arms if a.control)

    def role(self, role_id: str) -> Role:
        return next(r for r in self.roles if r.id == role_id)

    def lab_panel(self, panel_id: str) -> LabPanel:
        return next(p for p in self.lab_panels if p.id == panel_id)
