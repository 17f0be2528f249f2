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
    phase: str
    design: Text
    site: Text
    timezone: str = "Asia/Shanghai"
    sponsor: Text | None = None
    # the 24-hour contact printed on each emergency letter (else settings.ANNULUS_EMERGENCY_CONTACT)
    emergency_contact: EmergencyContact | None = None


class SampleSize(Strict):
    per_arm: int = Field(gt=0)
    total: int = Field(gt=0)
    delta: float = Field(gt=0, description="clinically relevant difference (VAS mm)")
    sd: float = Field(gt=0, description="SD of a single VAS measurement (mm)")
    alpha: float = Field(gt=0, lt=1)
    power: float = Field(gt=0, lt=1)
    dropout: float = Field(ge=0, lt=1)


class Randomisation(Strict):
    method: Literal["permuted_blocks"] = "permuted_blocks"
    block_sizes: list[int] = Field(default=[4, 8], min_length=1)
    case_number_width: int = Field(default=3, ge=3, le=6)
    level1_key_holder: str = "designer"
    level2_key_holder: str = "pharmacist"


class Recipe(Strict):
    """Volumes making up one injection (mL)."""

    cell_suspension_ml: float = Field(ge=0)
    saline_ml: float = Field(ge=0)
    ha_hydrogel_ml: float = Field(ge=0)

    @property
    def total_ml(self) -> float:
        return round(self.cell_suspension_ml + self.saline_ml + self.ha_hydrogel_ml, 6)


class Arm(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    name: Text
    ratio: int = Field(gt=0, le=10)
    cells_per_disc: int = Field(ge=0)
    recipe: Recipe
    control: bool = False
    dose_score: float = Field(ge=0, description="dose for trend tests (10^6 cells)")


class ReleaseCriterion(Strict):
    id: str
    label: Text
    kind: Literal["equals", "min", "max", "range", "negative", "normal"]
    value: float | int | str | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None


class Product(Strict):
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
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,20}$")
    name: Text
    anchor: Literal["consent", "liposuction", "transplant"]
    offset_days: int
    window: Window
    forms: list[str] = Field(default_factory=list)
    procedure: Literal["liposuction", "transplant"] | None = None
    follow_up: bool = False


class FormDef(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    name: Text
    instrument: str | None = None
    panel: str | None = None


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
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def visit(self, visit_id: str) -> Visit:
        return next(v for v in self.visits if v.id == visit_id)


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


class Safety(Strict):
    sae_recipients: list[SaeRecipient] = Field(min_length=1)
    dsmb_thresholds: list[DsmbThreshold]
    dsmb_interim_months: int = Field(default=6, ge=1)
    related_causality: list[str] = ["possible", "probable", "definite"]
    susar: SusarReporting = Field(default_factory=SusarReporting)

    @model_validator(mode="after")
    def _susar_id(self):
        if self.susar.id in {r.id for r in self.sae_recipients}:
            raise ValueError(f"susar.id: '{self.susar.id}' is already an SAE recipient id")
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


class AeBeforeTransplant(_EditCheck):
    """An adverse event whose onset lies before the transplantation, with causality to the product
    among ``safety.related_causality`` (the event's onset is queried)."""

    kind: Literal["ae_before_transplant"]


EditCheck = Annotated[
    Union[ChangeBetweenVisits, Above, LabOutsideRange, VisitBeforeConsent, AeBeforeTransplant],
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


class AnalysisPlan(Strict):
    """The statistical analysis plan, as far as the software runs it."""

    per_visit: PerVisitPlan


class Protocol(Strict):
    """A whole protocol version."""

    schema_version: Literal[1] = 1
    version: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$")
    effective_date: date
    trial: TrialInfo
    sample_size: SampleSize
    randomisation: Randomisation
    product: Product
    arms: list[Arm] = Field(min_length=2)
    recruitment_sources: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] = Field(min_length=1)
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
        for i, arm in enumerate(self.arms):
            if abs(arm.recipe.total_ml - self.product.injection_volume_ml) > 1e-9:
                problems.append(
                    f"arms[{i}].recipe: volumes add up to {arm.recipe.total_ml} mL, "
                    f"the injection is {self.product.injection_volume_ml} mL"
                )
            expected = round(arm.recipe.cell_suspension_ml * self.product.concentration_cells_per_ml)
            if expected != arm.cells_per_disc:
                problems.append(
                    f"arms[{i}].cells_per_disc: {arm.cells_per_disc} does not match "
                    f"{arm.recipe.cell_suspension_ml} mL x {self.product.concentration_cells_per_ml} cells/mL"
                )
        blinded = {r.id: r.blinded for r in self.roles}
        for key in ("level1_key_holder", "level2_key_holder"):
            holder = getattr(self.randomisation, key)
            if holder not in blinded:
                problems.append(f"randomisation.{key}: '{holder}' is not a declared role")
            elif blinded[holder]:
                # a key holder sees labels or treatments: naming a blinded role would unblind it
                problems.append(f"randomisation.{key}: role '{holder}' is blinded; a key holder must be an "
                                "unblinded role")
        problems.extend(self._edit_check_problems())
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
