"""Where each item goes in an export (SDTM domain, test code, variable) — declared here, in one
place, for every form — and which items are source-verified at 100 % (the protocol's SDV plan; no Django).

SDTM codes are mapping hints for the export programmer (SDTMIG 3.3 naming), not a validated
define.xml: a test code is at most 8 characters; events and special-purpose domains name the
variable instead (``AE/AETERM``, ``DM/BRTHDTC``). Values an export must not carry (names, phone)
have no hint.
"""

from __future__ import annotations

# ---- SDV: the plan's 100 % part -------------------------------------------------------------
# The protocol file's ``sdv.critical`` list decides; a protocol without an SDV plan gets the issue's
# plan: eligibility evidence, consent, the primary end point (VAS), transplant record and SAEs.
DEFAULT_CRITICAL = (("screening", (), False), ("eligibility", (), False), ("consent", (), False),
                    ("vas", ("vas_mm",), False), ("transplant", (), False), ("adverse_event", (), True))


def critical_rules(protocol) -> tuple:
    """((form, items, serious_only), ...): from the protocol's SDV plan, else the default."""
    plan = getattr(protocol, "sdv", None)
    if plan is None:
        return DEFAULT_CRITICAL
    return tuple((r.form, tuple(r.items), r.serious_only) for r in plan.critical)


def sdv(rules: tuple, form: str, item: str) -> tuple[bool, str]:
    """(critical, condition) of one item: condition "serious" when only serious events count."""
    for rule_form, items, serious_only in rules:
        if rule_form == form and (not items or item in items):
            return True, "serious" if serious_only else ""
    return False, ""


# ---- SDTM -------------------------------------------------------------------------------------
VITALS = {"temperature": "TEMP", "pulse": "PULSE", "respiration": "RESP", "systolic_bp": "SYSBP",
          "diastolic_bp": "DIABP"}
LABS = {"wbc": "WBC", "neut": "NEUT", "hgb": "HGB", "plt": "PLAT", "alt": "ALT", "ast": "AST", "tbil": "BILI",
        "alb": "ALB", "crea": "CREAT", "bun": "UREA", "crp": "CRP", "esr": "ESR", "igg": "IGG", "c3": "C3",
        "u_protein": "PROT", "u_glucose": "GLUC", "u_rbc": "RBC", "u_wbc": "WBC"}
IMAGING = {"modic_superior": "MODICSUP", "modic_inferior": "MODICINF", "pfirrmann": "PFIRGRD",
           "height_index_mm": "DSCHTIDX", "height_above_mm": "DSCHTABV", "height_below_mm": "DSCHTBLW",
           "rom_flexion_deg": "SGANGFLX", "rom_extension_deg": "SGANGEXT"}
INSTRUMENT_PREFIX = {"odi": "ODI", "joa": "JOA", "sf36": "SF36"}  # + item number: ODI01, JOA14, SF3636
# the JOA items are named, not numbered: their number is their place on the JOA form
JOA_ITEMS = ("low_back_pain", "leg_pain", "gait", "slr", "sensory", "motor", "turn_over", "standing", "washing",
             "leaning_forward", "sitting", "lifting", "walking", "bladder")
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
    ("liposuction", "performed_on"): ("PR", "", "PRSTDTC"),
    ("liposuction", "fat_volume_ml"): ("PR", "", "PRDOSE"),
    ("liposuction", "anaesthesia"): ("PR", "ANESTH", "QVAL"),  # SUPPPR
    ("liposuction", "observation_hours"): ("PR", "OBSHRS", "QVAL"),  # SUPPPR
    ("liposuction", "complications"): ("CO", "", "COVAL"),
    ("transplant", "transplanted_at"): ("EX", "", "EXSTDTC"),
    ("transplant", "drug_code_entered"): ("EX", "", "EXREFID"),
    ("transplant", "disc_level"): ("EX", "", "EXLOC"),
    ("transplant", "needle_gauge"): ("EX", "NEEDLEG", "QVAL"),  # SUPPEX
    ("transplant", "approach"): ("EX", "APPROACH", "QVAL"),  # SUPPEX
    ("transplant", "imaging"): ("EX", "IMGGUID", "QVAL"),  # SUPPEX
    ("transplant", "volume_ml"): ("EX", "", "EXDOSE"),
    ("transplant", "notes"): ("CO", "", "COVAL"),
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


def _number(item_id: str) -> int:
    digits = "".join(c for c in item_id if c.isdigit())
    return int(digits) if digits else 0


def sdtm(form: str, item: str, *, instrument: str = "", panel: str = "", group: str = "",
         criterion: str = "") -> tuple[str, str, str]:
    """(domain, test code, variable) for one item; ("", "", "") when it is not exported. Screening
    evidence without a finding domain of its own goes to IE under the criterion it decides."""
    if (form, item) in RECORDS:
        return RECORDS[(form, item)]
    if form == "screening":
        return EVIDENCE.get(item, ("IE", criterion, "IEORRES") if criterion else ("SC", item.upper()[:8], "SCORRES"))
    key = instrument or form
    if key == "vas":
        return "QS", "VAS", "QSORRES"
    if key == "joa" and item in JOA_ITEMS:
        return "QS", f"JOA{JOA_ITEMS.index(item) + 1:02d}", "QSORRES"
    if key in INSTRUMENT_PREFIX:
        return "QS", f"{INSTRUMENT_PREFIX[key]}{_number(item):02d}", "QSORRES"
    if key == "imaging":
        return "MK", IMAGING.get(item, item.upper()[:8]), "MKORRES"
    if key == "vitals":
        return "VS", VITALS.get(item, item.upper()[:8]), "VSORRES"
    if panel:
        analyte = group or item
        code = LABS.get(analyte, analyte.upper()[:8])
        if item.endswith("__unit"):
            return "LB", code, "LBORRESU"
        if item.endswith("__cs"):
            return "LB", code, "LBCLSIG"
        return "LB", code, "LBORRES"
    if form == "adverse_events":
        return ("AE", "", "AEYN") if item == "new_events" else ("CO", "", "COVAL")
    return "", "", ""
