"""Where each item goes in an export (SDTM domain, test code, variable) — declared where the item
is: on the instruments' forms, on the protocol's procedure fields, and here for the laboratory
analytes, the screening evidence and Annulus's own records — and which items are source-verified
at 100 % (the protocol's SDV plan; no Django).

SDTM codes are mapping hints for the export programmer (SDTMIG 3.3 naming), not a validated
define.xml: a test code is at most 8 characters; events and special-purpose domains name the
variable instead (``AE/AETERM``, ``DM/BRTHDTC``). Values an export must not carry (names, phone)
have no hint.
"""

from __future__ import annotations

# ---- SDV: the plan's 100 % part -------------------------------------------------------------
# The protocol file's ``sdv.critical`` list decides; a protocol without an SDV plan gets the issue's
# plan: eligibility evidence, consent, the primary end point's form, the record of the procedure that
# gives the treatment, and serious adverse events.
ALWAYS_CRITICAL = (("screening", (), False), ("eligibility", (), False), ("consent", (), False))
SERIOUS_EVENTS = ("adverse_event", (), True)


def default_critical(protocol) -> tuple:
    """The plan's 100 % part when the protocol declares none: the screening records, the form of
    the primary end point (``analysis.primary.parameter``), the treatment procedure's record (the
    schedule form that records it) and serious adverse events."""
    rules = list(ALWAYS_CRITICAL)
    analysis = getattr(protocol, "analysis", None)
    primary = getattr(analysis, "primary", None)
    source = analysis.parameter_source(primary.parameter) if primary is not None else None
    if source is not None:
        rules.append((source[0], (), False))
    treatment = protocol.treatment_procedure
    if treatment is None and protocol.procedure_list:  # a file without procedures: its last one
        treatment = protocol.procedure_list[-1]
    if treatment is not None:
        form = protocol.procedure_form(treatment.id)
        rules.append((form.id if form is not None else treatment.id, (), False))
    rules.append(SERIOUS_EVENTS)
    return tuple(rules)


def critical_rules(protocol) -> tuple:
    """((form, items, serious_only), ...): from the protocol's SDV plan, else the default."""
    plan = getattr(protocol, "sdv", None)
    if plan is None:
        return default_critical(protocol)
    return tuple((r.form, tuple(r.items), r.serious_only) for r in plan.critical)


def sdv(rules: tuple, form: str, item: str) -> tuple[bool, str]:
    """(critical, condition) of one item: condition "serious" when only serious events count."""
    for rule_form, items, serious_only in rules:
        if rule_form == form and (not items or item in items):
            return True, "serious" if serious_only else ""
    return False, ""


# ---- SDTM -------------------------------------------------------------------------------------
# The instruments' forms carry their items' codes (``FormSpec.sdtm_domain``/``sdtm_prefix``,
# ``Item.sdtm_code``, a questionnaire's domain is QS: ``annulus.instruments.qs``); a procedure's
# record its fields' (``sdtm`` of a protocol procedure field, else the defaults below); the
# laboratory analytes, the screening evidence and the records Annulus keeps are declared here.
LABS = {"wbc": "WBC", "neut": "NEUT", "hgb": "HGB", "plt": "PLAT", "alt": "ALT", "ast": "AST", "tbil": "BILI",
        "alb": "ALB", "crea": "CREAT", "bun": "UREA", "crp": "CRP", "esr": "ESR", "igg": "IGG", "c3": "C3",
        "u_protein": "PROT", "u_glucose": "GLUC", "u_rbc": "RBC", "u_wbc": "WBC"}
EVIDENCE = {"date_of_birth": ("DM", "", "BRTHDTC"), "vas_mm": ("QS", "VAS", "QSORRES"),
            # viral serology is microbiology in CDISC CT (MBTESTCD): HBsAg, HIV-1/2 antibody, and IgM
            # antibodies for the protocol's "active infection" with cytomegalovirus and rubella
            "odi_percent": ("QS", "ODITOT", "QSORRES"), "hbsag": ("MB", "HBSAG", "MBORRES"),
            "hiv": ("MB", "HIV12AB", "MBORRES"), "cmv": ("MB", "CMVIGMAB", "MBORRES"),
            "rubella": ("MB", "RUBIGMAB", "MBORRES"), "pfirrmann_grade": ("MK", "PFIRGRD", "MKORRES"),
            "modic_type": ("MK", "MODIC", "MKORRES"), "disc_height_loss_percent": ("MK", "DSCHTLS", "MKORRES"),
            "bmd_t_score": ("MK", "BMDT", "MKORRES"), "collected_on": ("SC", "", "SCDTC")}
RECORDS = {
    ("prescreening", "sex"): ("DM", "", "SEX"),
    ("prescreening", "recruitment_source"): ("SC", "RECRSRC", "SCORRES"),
    ("prescreening", "prescreened_on"): ("SC", "", "SCDTC"),
    ("consent", "consented_at"): ("DS", "", "DSSTDTC"),
    ("consent", "consent_version"): ("DS", "ICFVER", "QVAL"),  # SUPPDS
    ("eligibility", "outcome"): ("DS", "", "DSDECOD"),
    ("adverse_event", "term"): ("AE", "", "AETERM"),
    ("adverse_event", "meddra_pt_code"): ("AE", "", "AEPTCD"),
    ("adverse_event", "meddra_version"): ("TS", "MEDDRAVR", "TSVAL"),
    ("adverse_event", "description"): ("CO", "", "COVAL"),
    ("adverse_event", "onset_at"): ("AE", "", "AESTDTC"),
    ("adverse_event", "end_at"): ("AE", "", "AEENDTC"),
    ("adverse_event", "serious"): ("AE", "", "AESER"),
    ("adverse_event", "serious_criteria"): ("AE", "", "AESDTH, AESLIFE, AESHOSP, AESDISAB, AESCONG, AESMIE"),
    ("adverse_event", "first_knowledge_at"): ("AE", "AEAWARDT", "QVAL"),  # SUPPAE
    ("adverse_event", "grade"): ("AE", "", "AETOXGR"),
    # each causality_<id> of the protocol's safety.causality_of: ("AE", its sdtm_qnam, "QVAL"), SUPPAE
    ("adverse_event", "causality_product"): ("AE", "", "AEREL"),
    ("adverse_event", "expectedness"): ("AE", "AEEXPECT", "QVAL"),  # SUPPAE
    ("adverse_event", "action_taken"): ("AE", "", "AEACN"),
    ("adverse_event", "outcome"): ("AE", "", "AEOUT"),
    ("end_of_study", "status"): ("DS", "", "DSDECOD"),
    ("end_of_study", "withdrawn_on"): ("DS", "", "DSSTDTC"),
    ("end_of_study", "category"): ("DS", "", "DSDECOD"),
    ("end_of_study", "details"): ("DS", "", "DSTERM"),
}


NO_HINT = ("", "", "")
# a kit's fields by what they mean to the checks: drug accountability (DA)
MEANS = {"kit_number": ("DA", "", "DAREFID"), "units_dispensed": ("DA", "DISPAMT", "DAORRES"),
         "units_returned": ("DA", "RETAMT", "DAORRES"), "units_lost": ("DA", "LOSTAMT", "DAORRES")}
# the AE review of each visit (``annulus.instruments.forms.AE_REVIEW``): the answer to "any new
# event?" and the notes
AE_REVIEW = {"new_events": ("AE", "", "AEYN")}
COMMENT = ("CO", "", "COVAL")


def _number(item_id: str) -> int:
    digits = "".join(c for c in item_id if c.isdigit())
    return int(digits) if digits else 0


def code(text: str) -> str:
    """Capitals and digits of ``text``, at most 8 characters (a test code or a QNAM)."""
    return "".join(c for c in text.upper() if c.isalnum())[:8]


def record(form: str, item: str) -> tuple[str, str, str]:
    """(domain, test code, variable) of an item of a record Annulus keeps (not a procedure's)."""
    return RECORDS.get((form, item), NO_HINT)


def evidence(item: str, criterion: str = "") -> tuple[str, str, str]:
    """A screening evidence field: its finding domain, else IE under the criterion it decides."""
    return EVIDENCE.get(item, ("IE", criterion, "IEORRES") if criterion else ("SC", item.upper()[:8], "SCORRES"))


def instrument_item(spec, item, *, questionnaire: bool) -> tuple[str, str, str]:
    """An instrument's item: in QS for a questionnaire of the library, else in the form's own
    domain (MK, VS); its test code the item's ``sdtm_code``, else the form's prefix and the
    item's number, else its id in capitals."""
    domain = "QS" if questionnaire else spec.sdtm_domain
    if not domain:
        return NO_HINT
    testcd = item.sdtm_code or (f"{spec.sdtm_prefix}{_number(item.id):02d}" if spec.sdtm_prefix
                                else item.id.upper()[:8])
    return domain, testcd, f"{domain}ORRES"


def lab_item(item: str, group: str = "") -> tuple[str, str, str]:
    """A laboratory panel's value, its unit (``__unit``) or the judgement of its significance (``__cs``)."""
    analyte = group or item
    testcd = LABS.get(analyte, analyte.upper()[:8])
    if item.endswith("__unit"):
        return "LB", testcd, "LBORRESU"
    if item.endswith("__cs"):
        return "LB", testcd, "LBCLSIG"
    return "LB", testcd, "LBORRES"


def ae_review_item(item: str) -> tuple[str, str, str]:
    return AE_REVIEW.get(item, COMMENT)


def procedure_field(protocol, procedure, field) -> tuple[str, str, str]:
    """A field of a procedure's record: the hint its protocol field declares (``sdtm``), else by
    what it means to the kit checks (DA), else a date by the procedure (the treatment's in EX,
    a kit's dispensing or return in DA, another procedure's in PR), else a free text as a
    comment; nothing for anything else."""
    if field.sdtm is not None:
        return field.sdtm.hint
    if field.means:
        return MEANS[field.means]
    if field.type in ("date", "datetime"):
        treatment = protocol.treatment_procedure
        if treatment is not None and treatment.id == procedure.id:
            return "EX", "", "EXSTDTC"
        if {"dispensing", "returns"} & set(procedure.checks):
            return "DA", "", "DADTC"
        return "PR", "", "PRSTDTC"
    if field.type == "text" and not field.required:
        return COMMENT
    return NO_HINT


def kit_check(check_id: str) -> tuple[str, str, str]:
    """A kit check answered at dispensing: a qualifier of the dispensing (SUPPDA) named after it."""
    return "DA", code(check_id), "QVAL"
