"""SDTM-style domains (SDTMIG 3.3) as SAS transport v5 (``--format sdtm``) or Dataset-JSON v1.1
(``--format dataset-json``), each with a Define-XML 2.1 ``define.xml`` (no Django).

One pass over the participants: every subject-level domain file is open at once and each
participant's rows go to them as the participant is read, so memory stays flat in the number of
participants. The trial-design domains (TS, TA, TE, TV, TI) come from the protocol and are written
at the end (TS counts the participants). The findings domains (QS, VS, LB, MK: nearly all the rows)
are written as parts the file writer encodes once: a result's columns are the same for every row
with the same test and value, the timing columns for every row of a record (``_Findings``).

Domains: DM, DS, SV, AE, EX, PR, QS, VS, LB, MK; TS, TA, TE, TV, TI.

Conventions (also stated in define.xml's comments). Everything particular to a trial comes from its
protocol file and the participants' records, so the export works for any shipped protocol (the cell
product of ``protocols/dlbp-admsc.yaml``, the kit trial of ``protocols/knee-oa-drug.yaml``):

* ``USUBJID`` is the pseudonymous participant number; ``SUBJID`` the case number (the screening
  number before randomisation); ``SITEID`` the participant's site (the pre-screening record's, as
  ``adam._site`` reads it; the one site's id in a single-centre trial); ``COUNTRY`` "CHN".
* Dates: SDTM ``--DTC`` values are ISO 8601 in the trial's local time (``trial.timezone``) without
  an offset, to the minute for times (``2022-06-06T10:00``), dates alone as ``YYYY-MM-DD``.
* Study day: the treatment is the protocol's treatment procedure (``adam._treatment_event``: the
  transplantation, the knee trial's first dose). ``RFSTDTC``/``RFXSTDTC`` are when it was given:
  the transplantation time, else the date and time the treatment record gives (its first
  date-time or date field), else its day (``Subject.treated_on``). ``--DY`` follows SDTM from the
  treatment day (``adam.treatment_day``): that date is day 1, the day before is day -1, there is no
  day 0. (The eCRF and ``VisitInfo.day`` count the treatment as day 0; SDTM ``--DY`` = that day + 1
  from the treatment on.) ``VISITDY`` is the planned day on the same scale (``adam._Schedule``).
  A participant never treated has no ``--DY``.
* Epochs: SCREENING before the first procedure visit of the schedule; TREATMENT from it to the
  last visit that records a procedure (the transplantation; the knee trial's last kit return);
  FOLLOW-UP after. An event's epoch by its study day: FOLLOW-UP after that last visit's window.
* ``VISITNUM`` is the visit's position in the protocol schedule (1, 2, ...); an unscheduled visit
  is the scheduled visit before it + 0.01 × its repeat number.
* Baseline flags (``--BLFL``): the value at the protocol's baseline visit (``baseline: true``,
  ``adam.baseline_visit_of``).
* EX: a cell product is one injection at the treatment visit. A kit product has one row per
  dispensing record (a procedure with the ``dispensing`` check, the first dose among them):
  ``EXSTDTC`` the record's date field, ``EXENDTC`` the return of the same kit (matched by its kit
  number, which is not exported), ``EXROUTE`` the product's route.
* PR: one row per record of a procedure the protocol declares, ``PRTRT`` the procedure's name.
* QS: every questionnaire of the schedule (``annulus.instruments.qs``: category, and the codes of
  the scores an export carries); items coded by the data dictionary's SDTM hints
  (``annulus.dictionary.mapping``), the scores of ``analysis.parameters`` by the parameter's code
  and name; where neither gives a code, a sponsor-defined one is derived (the instrument's prefix
  and the item id, or its position; at most 8 characters, unique), and define.xml lists those.
  Derived scores (``Record.computed``) are rows with ``--DRVFL`` "Y".
* Trial design: TS from the protocol (title, phase, blinding, arms and their ratio as ``RANDQT``,
  planned and actual subjects, minimum age from the inclusion criteria, length of the schedule,
  product and placebo comparator); TE and TA from its procedures and arms (screening, each
  procedure done before the treatment, the treatment, follow-up); TV from its visits and windows;
  TI from its criteria.
* Blind: ``ctx.blinding`` decides; the writer never looks at arms otherwise.
  - "blinded": the DM arm variables ARMCD/ARM/ACTARMCD/ACTARM are not written at all (SDTM has no
    "blinded" arm value; an empty Expected variable would claim the arm is unknown). ARMNRS keeps
    only the reasons that do not differ by arm (SCREEN FAILURE, NOT ASSIGNED, ASSIGNED, NOT
    TREATED). EX names the product "BLINDED STUDY PRODUCT" with no dose, dose unit or dose form
    columns; TA (which lists the arms) is not written; TE has one blinded treatment element; TS
    names no arm (the comparator is "PLACEBO").
  - "labels": ARMCD/ACTARMCD are the group label (A-D) and ARM/ACTARM "GROUP A"...; EX stays
    blinded (labels are not treatments); TA lists groups A-D with the one blinded element.
  - "arms": the protocol arm id (upper case) and name; EXTRT the arm's product ("PLACEBO" for the
    control), EXDOSE for a cell product the cells per disc (10^6 Therapeutic Cells), for a kit the
    arm's ``dose_score`` in the unit its name prints after it (``100 mg``); TA/TE per arm.
* Imaging goes to MK (Musculoskeletal System Findings): SDTMIG 3.3 deprecated MO (Morphology) in
  favour of the body-system physiology domains, and Modic changes, Pfirrmann grade, disc height and
  segmental angles are findings about the lumbar spine. Test codes are sponsor-defined (the CDISC
  MKTESTCD codelist is extensible and has no disc-degeneration tests).
* MK test codes are the data dictionary's SDTM hints (``annulus.dictionary.mapping``).
* Not written: IE (screening evidence), SUPP-- qualifiers, CO comments, LBCLSIG (not an SDTMIG 3.3
  variable), AEDECOD values (the eCRF stores the MedDRA PT code only: AEPTCD carries it; AEDECOD is
  present but empty until the term text is coded), BRTHDTC (pseudonymised export: AGE is given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from annulus.instruments.qs import QUESTIONNAIRES, questionnaire
from annulus.instruments.vitals import NAME as VITALS_INSTRUMENT

from . import ct
from .adam import _Schedule, _site, _treatment_event, baseline_visit_of, is_treated, treatment_day

SDTMIG = "3.3"
COUNTRY = "CHN"
SCREENING_VISIT = "screening"  # the records' visit of the consent, screening and eligibility


# ---- metadata ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    name: str
    label: str
    kind: str = "text"  # text | integer | float | dtc
    length: int = 200
    core: str = "Perm"  # Req | Exp | Perm
    origin: str = "Collected"  # Collected | Derived | Assigned | Protocol
    codelist: str = ""  # ct.CDISC / ct.SPONSOR name
    key: int = 0  # key sequence (0: not a key)

    @property
    def xpt_type(self) -> str:
        return "num" if self.kind in ("integer", "float") else "char"

    @property
    def json_type(self) -> str:
        return {"integer": "integer", "float": "double"}.get(self.kind, "string")

    @property
    def define_type(self) -> str:
        return {"integer": "integer", "float": "float", "dtc": "partialDatetime"}.get(self.kind, "text")

    @property
    def xpt_length(self) -> int:
        return 8 if self.xpt_type == "num" else self.length


@dataclass(frozen=True)
class Domain:
    name: str
    label: str
    cls: str  # SPECIAL PURPOSE | EVENTS | INTERVENTIONS | FINDINGS | TRIAL DESIGN
    structure: str
    vars: tuple
    comment: str = ""

    def var(self, name: str) -> Var | None:
        return next((v for v in self.vars if v.name == name), None)


def _v(name, label, kind="text", length=200, core="Perm", origin="Collected", codelist="", key=0):
    return Var(name, label, kind, length, core, origin, codelist, key)


def _ids(domain: str, seq: bool = True) -> list[Var]:
    out = [_v("STUDYID", "Study Identifier", length=20, core="Req", origin="Protocol", key=1),
           _v("DOMAIN", "Domain Abbreviation", length=2, core="Req", origin="Assigned", codelist="DOMAIN"),
           _v("USUBJID", "Unique Subject Identifier", length=40, core="Req", origin="Assigned", key=2)]
    if seq:
        out.append(_v(f"{domain}SEQ", "Sequence Number", "integer", core="Req", origin="Derived"))
    return out


def _visit_vars(prefix: str, dtc_label: str) -> list[Var]:
    return [_v("VISITNUM", "Visit Number", "float", core="Exp", origin="Derived"),
            _v("VISIT", "Visit Name", length=60, core="Perm", origin="Derived"),
            _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
            _v(f"{prefix}DTC", dtc_label, "dtc", 19, core="Exp"),
            _v(f"{prefix}DY", "Study Day of Visit/Collection/Exam", "integer", core="Perm", origin="Derived")]


def domains(blinding: str, env: Env | None = None) -> list[Domain]:
    """Every domain this export writes, with its variables, for the blinding level (``env``: the
    export's protocol, for the comments that name its codes)."""
    arms = blinding in ("labels", "arms")
    dm = _ids("DM", seq=False) + [
        _v("SUBJID", "Subject Identifier for the Study", length=20, core="Req"),
        _v("RFSTDTC", "Subject Reference Start Date/Time", "dtc", 19, core="Exp", origin="Derived"),
        _v("RFENDTC", "Subject Reference End Date/Time", "dtc", 19, core="Exp", origin="Derived"),
        _v("RFXSTDTC", "Date/Time of First Study Treatment", "dtc", 19, core="Exp", origin="Derived"),
        _v("RFXENDTC", "Date/Time of Last Study Treatment", "dtc", 19, core="Exp", origin="Derived"),
        _v("RFICDTC", "Date/Time of Informed Consent", "dtc", 19, core="Exp"),
        _v("RFPENDTC", "Date/Time of End of Participation", "dtc", 19, core="Exp", origin="Derived"),
        _v("DTHFL", "Subject Death Flag", length=1, core="Exp", origin="Derived", codelist="NY"),
        _v("SITEID", "Study Site Identifier", length=10, core="Req", origin="Assigned"),
        _v("AGE", "Age", "integer", core="Exp", origin="Derived"),
        _v("AGEU", "Age Units", length=10, core="Exp", origin="Assigned", codelist="AGEU"),
        _v("SEX", "Sex", length=2, core="Req", codelist="SEX")]
    if arms:
        dm += [_v("ARMCD", "Planned Arm Code", length=20, core="Exp", origin="Assigned"),
               _v("ARM", "Description of Planned Arm", length=200, core="Exp", origin="Assigned"),
               _v("ACTARMCD", "Actual Arm Code", length=20, core="Exp", origin="Derived"),
               _v("ACTARM", "Description of Actual Arm", length=200, core="Exp", origin="Derived")]
    dm += [_v("ARMNRS", "Reason Arm and/or Actual Arm is Null", length=40, core="Perm", origin="Derived",
              codelist="ARMNULRS"),
           _v("COUNTRY", "Country", length=3, core="Req", origin="Assigned")]
    ds = _ids("DS") + [
        _v("DSTERM", "Reported Term for the Disposition Event", core="Req"),
        _v("DSDECOD", "Standardized Disposition Term", core="Req", origin="Assigned", codelist="DSDECOD", key=3),
        _v("DSCAT", "Category for Disposition Event", length=40, core="Exp", origin="Assigned", codelist="DSCAT"),
        _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
        _v("DSSTDTC", "Start Date/Time of Disposition Event", "dtc", 19, core="Exp", key=4),
        _v("DSSTDY", "Study Day of Start of Disposition Event", "integer", core="Perm", origin="Derived")]
    sv = _ids("SV", seq=False) + [
        _v("VISITNUM", "Visit Number", "float", core="Req", origin="Derived", key=3),
        _v("VISIT", "Visit Name", length=60, core="Perm", origin="Derived"),
        _v("VISITDY", "Planned Study Day of Visit", "integer", core="Perm", origin="Protocol"),
        _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
        _v("SVSTDTC", "Start Date/Time of Visit", "dtc", 19, core="Exp"),
        _v("SVENDTC", "End Date/Time of Visit", "dtc", 19, core="Exp"),
        _v("SVSTDY", "Study Day of Start of Visit", "integer", core="Perm", origin="Derived"),
        _v("SVENDY", "Study Day of End of Visit", "integer", core="Perm", origin="Derived"),
        _v("SVUPDES", "Description of Unplanned Visit", core="Perm")]
    ae = _ids("AE") + [
        _v("AESPID", "Sponsor-Defined Identifier", length=20, core="Perm", origin="Assigned"),
        _v("AETERM", "Reported Term for the Adverse Event", core="Req", key=3),
        _v("AEDECOD", "Dictionary-Derived Term", core="Req", origin="Assigned"),
        _v("AEPTCD", "Preferred Term Code", length=20, core="Perm"),
        _v("AESER", "Serious Event", length=1, core="Exp", codelist="NY"),
        _v("AEACNOTH", "Other Action Taken", core="Perm"),
        _v("AEREL", "Causality", length=20, core="Exp", codelist="AEREL"),
        _v("AEOUT", "Outcome of Adverse Event", length=40, core="Perm", codelist="OUT"),
        _v("AESCONG", "Congenital Anomaly or Birth Defect", length=1, core="Perm", codelist="NY"),
        _v("AESDISAB", "Persist or Signif Disability/Incapacity", length=1, core="Perm", codelist="NY"),
        _v("AESDTH", "Results in Death", length=1, core="Perm", codelist="NY"),
        _v("AESHOSP", "Requires or Prolongs Hospitalization", length=1, core="Perm", codelist="NY"),
        _v("AESLIFE", "Is Life Threatening", length=1, core="Perm", codelist="NY"),
        _v("AESMIE", "Other Medically Important Serious Event", length=1, core="Perm", codelist="NY"),
        _v("AETOXGR", "Standard Toxicity Grade", length=1, core="Perm", codelist="TOXGR"),
        _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
        _v("AESTDTC", "Start Date/Time of Adverse Event", "dtc", 19, core="Exp", key=4),
        _v("AEENDTC", "End Date/Time of Adverse Event", "dtc", 19, core="Exp"),
        _v("AESTDY", "Study Day of Start of Adverse Event", "integer", core="Perm", origin="Derived"),
        _v("AEENDY", "Study Day of End of Adverse Event", "integer", core="Perm", origin="Derived")]
    ex = _ids("EX") + [_v("EXTRT", "Name of Treatment", length=60, core="Req", origin="Assigned", key=3)]
    if blinding == "arms":
        ex += [_v("EXDOSE", "Dose", "float", core="Exp", origin="Protocol"),
               _v("EXDOSU", "Dose Units", length=40, core="Exp", origin="Protocol", codelist="UNIT"),
               _v("EXDOSFRM", "Dose Form", length=40, core="Exp", origin="Protocol", codelist="FRM")]
    ex += [_v("EXROUTE", "Route of Administration", length=20, core="Perm", origin="Protocol", codelist="ROUTE"),
           _v("EXLOC", "Location of Dose Administration", length=40, core="Perm", codelist="LOC"),
           _v("VISITNUM", "Visit Number", "float", core="Perm", origin="Derived"),
           _v("VISIT", "Visit Name", length=60, core="Perm", origin="Derived"),
           _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
           _v("EXSTDTC", "Start Date/Time of Treatment", "dtc", 19, core="Exp", key=4),
           _v("EXENDTC", "End Date/Time of Treatment", "dtc", 19, core="Exp"),
           _v("EXSTDY", "Study Day of Start of Treatment", "integer", core="Perm", origin="Derived"),
           _v("EXENDY", "Study Day of End of Treatment", "integer", core="Perm", origin="Derived")]
    pr = _ids("PR") + [
        _v("PRTRT", "Reported Name of Procedure", length=60, core="Req", key=3),
        _v("PRLOC", "Location of Procedure", length=40, core="Perm", codelist="LOC"),
        _v("VISITNUM", "Visit Number", "float", core="Perm", origin="Derived"),
        _v("VISIT", "Visit Name", length=60, core="Perm", origin="Derived"),
        _v("EPOCH", "Epoch", length=20, core="Perm", origin="Derived", codelist="EPOCH"),
        _v("PRSTDTC", "Start Date/Time of Procedure", "dtc", 19, core="Exp", key=4),
        _v("PRSTDY", "Study Day of Start of Procedure", "integer", core="Perm", origin="Derived")]

    def findings(p: str, extra_mid: list[Var], extra_end: list[Var], testcd_cl="", test_cl="", unit_cl="") -> list:
        return _ids(p) + [
            _v(f"{p}TESTCD", f"{_TESTCD_LABEL[p]} Short Name"[:40], length=8, core="Req", origin="Assigned",
               codelist=testcd_cl, key=3),
            _v(f"{p}TEST", f"{_TESTCD_LABEL[p]} Name"[:40], length=40, core="Req", origin="Assigned", codelist=test_cl),
            _v(f"{p}CAT", f"Category for {_CAT_LABEL[p]}"[:40], length=40, core="Exp" if p == "QS" else "Perm",
               origin="Assigned"),
            *extra_mid,
            _v(f"{p}ORRES", "Result or Finding in Original Units", core="Exp"),
            _v(f"{p}ORRESU", "Original Units", length=40, core="Exp", codelist=unit_cl),
            _v(f"{p}STRESC", "Character Result/Finding in Std Format", core="Exp", origin="Derived"),
            _v(f"{p}STRESN", "Numeric Result/Finding in Standard Units", "float", core="Exp", origin="Derived"),
            _v(f"{p}STRESU", "Standard Units", length=40, core="Exp", origin="Derived", codelist=unit_cl),
            *extra_end,
            _v(f"{p}BLFL", "Baseline Flag", length=1, core="Exp", origin="Derived", codelist="NY"),
            _v(f"{p}DRVFL", "Derived Flag", length=1, core="Perm", origin="Derived", codelist="NY"),
            *_visit_vars(p, "Date/Time of Collection" if p != "QS" else "Date/Time of Finding")]

    qs = findings("QS", [], [])
    vs = findings("VS", [], [], "VSTESTCD", "VSTEST", "VSRESU")
    lb = findings("LB", [_v("LBSPEC", "Specimen Type", length=20, core="Perm", codelist="SPECTYPE")],
                  [_v("LBORNRLO", "Reference Range Lower Limit in Orig Unit", length=20, core="Exp"),
                   _v("LBORNRHI", "Reference Range Upper Limit in Orig Unit", length=20, core="Exp"),
                   _v("LBNRIND", "Reference Range Indicator", length=10, core="Exp", origin="Derived",
                      codelist="NRIND")],
                  "LBTESTCD", "LBTEST", "UNIT")
    mk = findings("MK", [_v("MKLOC", "Location Used for the Measurement", length=40, core="Exp", codelist="LOC"),
                         _v("MKMETHOD", "Method of Test or Examination", length=20, core="Perm", codelist="METHOD")],
                  [], "", "", "UNIT")
    out = [
        Domain("DM", "Demographics", "SPECIAL PURPOSE", "One record per subject", tuple(dm),
               "" if arms else "Blinded export: ARMCD, ARM, ACTARMCD and ACTARM are withheld until unblinding; "
               "ARMNRS gives only reasons that do not differ by arm."),
        Domain("DS", "Disposition", "EVENTS", "One record per disposition status or protocol milestone per subject",
               tuple(ds)),
        Domain("SV", "Subject Visits", "SPECIAL PURPOSE", "One record per subject per actual visit", tuple(sv),
               "Missed visits have no record (SDTMIG 3.3)."),
        Domain("AE", "Adverse Events", "EVENTS", "One record per adverse event per subject", tuple(ae),
               "AEDECOD is empty until the MedDRA preferred-term text is coded; AEPTCD holds the code entered."),
        Domain("EX", "Exposure", "INTERVENTIONS", "One record per constant dosing interval per subject", tuple(ex),
               " ".join(t for t in (_ex_comment(env, blinding), "" if blinding == "arms" else
                                    "Blinded export: the treatment is named BLINDED STUDY PRODUCT and no dose, dose "
                                    "unit or dose form is given.") if t)),
        Domain("PR", "Procedures", "INTERVENTIONS", "One record per recorded procedure per subject", tuple(pr)),
        Domain("QS", "Questionnaires", "FINDINGS", "One record per questionnaire per question per visit per subject",
               tuple(qs), _qs_comment(env)),
        Domain("VS", "Vital Signs", "FINDINGS", "One record per vital sign measurement per visit per subject",
               tuple(vs)),
        Domain("LB", "Laboratory Test Results", "FINDINGS", "One record per lab test per visit per subject",
               tuple(lb)),
        Domain("MK", "Musculoskeletal System Findings", "FINDINGS",
               "One record per finding per location per visit per subject", tuple(mk),
               "Imaging of the lumbar spine (MRI: Modic, Pfirrmann; X-ray: disc height, segmental angles); "
               "sponsor-defined test codes."),
    ]
    out += design_domains(blinding)
    return out


def _qs_comment(env: Env | None) -> str:
    """QS's define.xml comment: each questionnaire's category and its test codes, saying which
    were derived here because neither the data dictionary nor the protocol gives one."""
    if env is None:
        return "Sponsor-defined test codes: the data dictionary's SDTM hints."
    parts = []
    for form_id, plan in env.qs.items():
        codes = list(plan.items.values()) + [c for c, _t, _u in plan.scores.values()]
        span = f"{codes[0]}-{codes[-1]}" if len(codes) > 2 else ", ".join(codes)
        text = f"{plan.category} ({form_id}): {span}"
        if plan.derived:
            text += (f"; {len(plan.derived)} code(s) derived by the export (sponsor-defined, no data-dictionary hint: "
                     f"instrument prefix and item id, or position): {', '.join(plan.derived)}")
        parts.append(text)
    return _cut("Sponsor-defined test codes. " + "; ".join(parts) + ".", 2000) if parts else ""


def _ex_comment(env: Env | None, blinding: str) -> str:
    if env is None or env.product_kind == "cell_suspension":
        return ""
    return ("One record per dispensing record (the first dose among them): EXSTDTC is the record's date, EXENDTC the "
            "return of the same kit; kit numbers are not exported."
            + (" EXDOSE is the arm's dose score from the protocol." if blinding == "arms" else ""))


_TESTCD_LABEL = {"QS": "Question", "VS": "Vital Signs Test", "LB": "Lab Test or Examination",
                 "MK": "Test or Examination"}
_CAT_LABEL = {"QS": "Question", "VS": "Vital Signs", "LB": "Lab Test", "MK": "Musculoskeletal Finding"}


def design_domains(blinding: str) -> list[Domain]:
    td = [_v("STUDYID", "Study Identifier", length=20, core="Req", origin="Protocol", key=1),
          _v("DOMAIN", "Domain Abbreviation", length=2, core="Req", origin="Assigned", codelist="DOMAIN")]
    ts = td + [_v("TSSEQ", "Sequence Number", "integer", core="Req", origin="Assigned", key=3),
               _v("TSPARMCD", "Trial Summary Parameter Short Name", length=8, core="Req", origin="Assigned",
                  codelist="TSPARMCD", key=2),
               _v("TSPARM", "Trial Summary Parameter", length=40, core="Req", origin="Assigned", codelist="TSPARM"),
               _v("TSVAL", "Parameter Value", core="Exp", origin="Protocol"),
               _v("TSVALNF", "Parameter Null Flavor", length=10, core="Perm", origin="Assigned"),
               _v("TSVALCD", "Parameter Value Code", length=20, core="Exp", origin="Assigned"),
               _v("TSVCDREF", "Name of the Reference Terminology", length=20, core="Exp", origin="Assigned"),
               _v("TSVCDVER", "Version of the Reference Terminology", length=20, core="Exp", origin="Assigned")]
    te = td + [_v("ETCD", "Element Code", length=8, core="Req", origin="Protocol", key=2),
               _v("ELEMENT", "Description of Element", length=80, core="Req", origin="Protocol"),
               _v("TESTRL", "Rule for Start of Element", core="Req", origin="Protocol"),
               _v("TEENRL", "Rule for End of Element", core="Perm", origin="Protocol"),
               _v("TEDUR", "Planned Duration of Element", length=10, core="Perm", origin="Protocol")]
    ta = td + [_v("ARMCD", "Planned Arm Code", length=20, core="Req", origin="Protocol", key=2),
               _v("ARM", "Description of Planned Arm", length=200, core="Req", origin="Protocol"),
               _v("TAETORD", "Planned Order of Element within Arm", "integer", core="Req", origin="Protocol", key=3),
               _v("ETCD", "Element Code", length=8, core="Req", origin="Protocol"),
               _v("ELEMENT", "Description of Element", length=80, core="Perm", origin="Protocol"),
               _v("TABRANCH", "Branch", core="Exp", origin="Protocol"),
               _v("TATRANS", "Transition Rule", core="Exp", origin="Protocol"),
               _v("EPOCH", "Epoch", length=20, core="Req", origin="Protocol", codelist="EPOCH")]
    tv = td + [_v("VISITNUM", "Visit Number", "float", core="Req", origin="Protocol", key=2),
               _v("VISIT", "Visit Name", length=60, core="Perm", origin="Protocol"),
               _v("VISITDY", "Planned Study Day of Visit", "integer", core="Perm", origin="Protocol"),
               _v("TVSTRL", "Visit Start Rule", core="Req", origin="Protocol"),
               _v("TVENRL", "Visit End Rule", core="Perm", origin="Protocol")]
    ti = td + [_v("IETESTCD", "Incl/Excl Criterion Short Name", length=8, core="Req", origin="Protocol", key=2),
               _v("IETEST", "Inclusion/Exclusion Criterion", core="Req", origin="Protocol"),
               _v("IECAT", "Inclusion/Exclusion Category", length=10, core="Req", origin="Protocol", codelist="IECAT"),
               _v("TIVERS", "Protocol Criteria Versions", length=20, core="Perm", origin="Protocol")]
    out = [Domain("TS", "Trial Summary", "TRIAL DESIGN", "One record per trial summary parameter value", tuple(ts))]
    if blinding != "blinded":
        out.append(Domain("TA", "Trial Arms", "TRIAL DESIGN", "One record per planned Element per Arm", tuple(ta)))
    out += [Domain("TE", "Trial Elements", "TRIAL DESIGN", "One record per planned Element", tuple(te)),
            Domain("TV", "Trial Visits", "TRIAL DESIGN", "One record per planned Visit per Arm", tuple(tv),
                   "The visits are the same in every arm (ARMCD not used)."),
            Domain("TI", "Trial Inclusion/Exclusion Criteria", "TRIAL DESIGN", "One record per I/E criterion",
                   tuple(ti))]
    return out


# ---- the export's shared state ----------------------------------------------------------------
@dataclass(frozen=True)
class QsForm:
    """A questionnaire form of the protocol as QS writes it: its category, each item's test code
    (the dictionary's hint, else derived) and each derived score's (test code, test name, unit)."""

    category: str
    items: dict  # item id -> QSTESTCD
    scores: dict  # score id -> (QSTESTCD, QSTEST, unit)
    derived: tuple = ()  # the test codes derived here (no dictionary hint, no declaration)


@dataclass
class Env:
    ctx: object
    tz: ZoneInfo
    visitnum: dict  # visit id -> VISITNUM
    visitname: dict  # visit id -> VISIT
    visitdy: dict  # visit id -> planned SDTM day
    epochs: dict  # visit id -> EPOCH
    baseline: str  # the baseline visit id
    treatment: str | None  # the procedure that gives the treatment (its day is study day 1)
    treatment_end_day: int  # the last planned SDTM day of the treatment epoch (its last visit's window included)
    treatment_last_visit: str | None  # the treatment epoch's last visit
    procedures: dict  # record form id -> the protocol's Procedure it records
    qs: dict  # form id -> QsForm
    vitals: frozenset  # the vital-sign form ids
    labs: dict  # laboratory form id -> (LBCAT, LBSPEC, the panel's analytes by id)
    counts: dict = field(default_factory=lambda: {"consented": 0, "randomised": 0, "treated": 0})
    days: dict = field(default_factory=dict)  # (date, reference) -> study_day, for the records' timing
    _ref: tuple = (None, None)  # (the participant, their treatment day) last asked for

    def study_day(self, value: str | None, reference: str | None) -> int | None:
        """``study_day`` in the trial's time zone, kept (a visit's records share their date)."""
        key = (value, reference)
        day = self.days.get(key, self)
        if day is self:
            if len(self.days) >= 4096:
                self.days.clear()
            day = self.days[key] = study_day(value, reference, self.tz)
        return day

    def ref(self, s) -> str | None:
        """The participant's treatment day (``adam.treatment_day``): study day 1 of every --DY."""
        if self._ref[0] is not s:
            self._ref = (s, treatment_day(s, self.tz))
        return self._ref[1]

    @property
    def product_kind(self) -> str:
        return getattr(self.ctx.protocol.product, "kind", "cell_suspension")

    @classmethod
    def of(cls, ctx) -> Env:
        p = ctx.protocol
        visits = list(p.schedule.visits)
        treatment = _treatment_event(p)
        schedule = _Schedule(p)  # days from the treatment (day 0), as the analysis datasets count
        order = {v.id: i for i, v in enumerate(visits)}
        forms = {f.id: f for f in p.schedule.forms}
        procedure_forms = {f.id for f in forms.values() if f.procedure}
        t_visit = p.procedure_visit(treatment) if treatment else None
        t_index = order[t_visit.id] if t_visit is not None else 0
        # the treatment epoch: from the first procedure visit to the last visit recording a
        # procedure (the treatment itself, or a kit dispensed or returned after it)
        first = min((order[v.id] for v in visits if v.procedure), default=t_index)
        last = max([t_index, *(order[v.id] for v in visits
                               if v.procedure or procedure_forms.intersection(v.forms))])
        epochs = {}
        for v in visits:
            i = order[v.id]
            epochs[v.id] = "SCREENING" if i < first else "TREATMENT" if i <= last else "FOLLOW-UP"
        end = visits[last] if visits else None
        end_day = sdtm_day(schedule.day[end.id]) + end.window.after_days if end is not None else 1
        procedures = {}
        for f in forms.values():
            declared = p.procedure(f.procedure) if f.procedure else None
            if declared is not None:
                procedures[f.id] = declared
        return cls(ctx=ctx, tz=ZoneInfo(p.trial.timezone),
                   visitnum={v.id: float(i + 1) for i, v in enumerate(visits)},
                   visitname={v.id: v.name.en for v in visits},
                   visitdy={v.id: sdtm_day(schedule.day[v.id]) for v in visits},
                   epochs=epochs, baseline=baseline_visit_of(p), treatment=treatment,
                   treatment_end_day=end_day, treatment_last_visit=end.id if end is not None else None,
                   procedures=procedures, qs=_qs_forms(p, ctx.dictionary),
                   vitals=frozenset(f.id for f in forms.values() if f.instrument == VITALS_INSTRUMENT),
                   labs={f.id: _lab(p, f) for f in forms.values() if f.panel})

    def epoch(self, visit: str) -> str:
        return self.epochs.get(visit) or ("SCREENING" if visit in (SCREENING_VISIT, "") else "TREATMENT")

    def after_treatment(self, day: int | None) -> bool:
        """A study day in the follow-up (after the treatment epoch's planned end; from day 1 on
        when the treatment is one day)."""
        return day is not None and day > 0 and (day > self.treatment_end_day or self.treatment_end_day <= 1)


def _code(text: str) -> str:
    """Upper-case letters and digits of ``text`` (a test code's characters)."""
    return re.sub(r"[^A-Z0-9]", "", str(text).upper())


def _derive(prefix: str, name: str, n: int, used: set) -> str:
    """A sponsor-defined test code for an item or score without one: the prefix and the name when
    that fits in 8 characters, else the prefix and the position (``KOOSSP1``, ``NRS01``); never a
    code already used, never starting with a digit."""
    prefix = _code(prefix) or "QS"
    if prefix[0].isdigit():
        prefix = f"Q{prefix}"
    candidates = [prefix + _code(name), f"{prefix[:6]}{n:02d}", f"{prefix[:5]}{n:03d}"]
    for c in candidates:
        if len(c) <= 8 and c not in used:
            return c
    k = 1
    while f"{prefix[:4]}{k:04d}" in used:
        k += 1
    return f"{prefix[:4]}{k:04d}"


def _qs_forms(protocol, dictionary) -> dict:
    """form id -> QsForm for every questionnaire the protocol's schedule collects: the category and
    the scores' codes from the instruments library, a score the analysis plan declares with its
    parameter's code and name, the items' codes from the data dictionary; a code derived where
    none is given (see ``_derive``), each unique within QS."""
    declared = {}
    for d in getattr(getattr(protocol, "analysis", None), "parameters", None) or ():
        declared.setdefault((d.form, d.score), (d.code, d.name.en))
    out, used = {}, set()
    plans = []
    for f in protocol.schedule.forms:
        q = questionnaire(f.instrument)
        entries = dictionary.form(f.id) if dictionary is not None else None
        if q is None or entries is None:
            continue
        plans.append((f, q, entries))
        used.update(e.sdtm_testcd for e in entries.items if e.sdtm_testcd)
        used.update(code for _s, code, _t, _u in q.scores)
    for f, q, entries in plans:
        derived = []
        items = {}
        for n, e in enumerate(entries.items, start=1):
            if e.sdtm_testcd:
                items[e.item] = e.sdtm_testcd
            else:
                items[e.item] = code = _derive(f.instrument, e.item, n, used)
                used.add(code)
                derived.append(code)
        scores = {s: (code, test, unit) for s, code, test, unit in q.scores}
        for n, (form_id, score) in enumerate(declared, start=1):
            if form_id != f.id or score in scores:
                continue
            code, name = declared[(form_id, score)]
            code = _code(code)
            if not code or len(code) > 8 or code in used or code[0].isdigit():
                code = _derive(f"{f.instrument}S", score, n, used)
                derived.append(code)
            used.add(code)
            scores[score] = (code, _cut(name, 40), "")
        out[f.id] = QsForm(q.category, items, scores, tuple(derived))
    return out


# the library's questionnaires: QSCAT by instrument, and their derived scores' codes
QS_FORMS = {name: q.category for name, q in QUESTIONNAIRES.items()}
QS_SCORES = {s: (code, test, unit) for q in QUESTIONNAIRES.values() for s, code, test, unit in q.scores}


def sdtm_day(days_from_reference: int | None) -> int | None:
    """SDTM study day from a day count where the reference day is 0: no day 0."""
    if days_from_reference is None:
        return None
    return days_from_reference + 1 if days_from_reference >= 0 else days_from_reference


def _local(value: str | None, tz: ZoneInfo) -> datetime | date | None:
    if not value:
        return None
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(tz) if moment.tzinfo else moment


def dtc(value: str | None, tz: ZoneInfo) -> str | None:
    """An ISO 8601 SDTM date/time in the trial's local time: ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm``."""
    moment = _local(value, tz)
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%dT%H:%M")
    return moment.isoformat()


def study_day(value: str | None, reference: str | None, tz: ZoneInfo) -> int | None:
    a, b = _local(value, tz), _local(reference, tz)
    if a is None or b is None:
        return None
    a = a.date() if isinstance(a, datetime) else a
    b = b.date() if isinstance(b, datetime) else b
    return sdtm_day((a - b).days)


def _cut(text, size: int = 200) -> str | None:
    if text is None:
        return None
    raw = str(text).encode("utf-8")
    return str(text) if len(raw) <= size else raw[:size].decode("utf-8", "ignore")


def _num(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _fmt(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _code_label(entry, value) -> str:
    words = dict((v, en) for v, en, _zh in entry.codelist).get(str(value), str(value))
    return words


# ---- DM, DS, SV -------------------------------------------------------------------------------
ARM_NULL = ("SCREEN FAILURE", "NOT ASSIGNED", "ASSIGNED, NOT TREATED")
END_DECOD = {"participant_request": "WITHDRAWAL BY SUBJECT", "adverse_event": "ADVERSE EVENT",
             "other_disease": "OTHER", "investigator_decision": "PHYSICIAN DECISION",
             "declined_consent": "WITHDRAWAL OF CONSENT", "other": "OTHER"}


def _screen_failure(s) -> bool:
    return s.eligible is False or s.status in ("screen_failed", "screen_failure", "ineligible")


def _last_visit_date(s) -> str | None:
    dates = [v.date for v in s.visits if v.date]
    return max(dates) if dates else None


def _date_field(procedure) -> str | None:
    """The procedure's first date-time or date field: when its record says it was done."""
    fields = getattr(procedure, "fields", None) or ()
    found = next((f for f in fields if f.type == "datetime"), None) or next((f for f in fields if f.type == "date"),
                                                                             None)
    return found.id if found is not None else None


def _done(r) -> bool:
    return r.state != "draft"


def treatment_start(s, env: Env) -> str | None:
    """When the treatment was given (RFSTDTC): the cell product's transplantation time, else the
    date (and time) the treatment procedure's record gives, else its day (``Subject.treated_on``)."""
    if s.transplanted_at:
        return s.transplanted_at
    if not s.treated_on:
        return None
    for r in s.records:
        procedure = env.procedures.get(r.form)
        if procedure is not None and procedure.id == env.treatment and _done(r):
            when = r.values.get(_date_field(procedure) or "")
            if when:
                return when
    return s.treated_on


def _site_of(s, env: Env) -> str | None:
    sites = env.ctx.protocol.site_list
    return (_site(s) if len(sites) > 1 else None) or (sites[0].id if sites else None)


def dm_rows(s, env: Env):
    tz, ctx = env.tz, env.ctx
    treated = is_treated(s)
    randomised = bool(s.case_number) or bool(s.randomised_at)
    fatal = any(r.form == "adverse_event" and r.values.get("outcome") == "fatal" for r in s.records)
    end = s.end_date or _last_visit_date(s)
    start = treatment_start(s, env)
    exposures = [x for x in _exposures(s, env)] if treated and env.product_kind != "cell_suspension" else []
    last = max((x[2] or x[1] for x in exposures if x[1]), default=None, key=lambda v: dtc(v, tz))
    row = {"STUDYID": ctx.study_id, "DOMAIN": "DM", "USUBJID": s.subject,
           "SUBJID": s.case_number or s.screening_number,
           "RFSTDTC": dtc(start, tz), "RFENDTC": dtc(end, tz) if treated else None,
           "RFXSTDTC": dtc(start, tz), "RFXENDTC": dtc(last or start, tz),
           "RFICDTC": dtc(s.consented_at, tz), "RFPENDTC": dtc(end, tz),
           "DTHFL": "Y" if fatal else None, "SITEID": _site_of(s, env), "AGE": s.age,
           "AGEU": "YEARS" if s.age is not None else None, "SEX": ct.term("SEX", s.sex) if s.sex else None,
           "COUNTRY": COUNTRY}
    arm_code = arm_name = None
    if ctx.blinding == "labels" and s.group_label:
        arm_code, arm_name = s.group_label, f"GROUP {s.group_label}"
    elif ctx.blinding == "arms" and s.arm:
        arm = next((a for a in ctx.protocol.arms if a.id == s.arm), None)
        arm_code, arm_name = s.arm.upper(), (arm.name.en if arm is not None else s.arm)
    if ctx.blinding in ("labels", "arms"):
        row.update(ARMCD=arm_code, ARM=arm_name, ACTARMCD=arm_code if treated else None,
                   ACTARM=arm_name if treated else None)
    if _screen_failure(s):
        row["ARMNRS"] = "SCREEN FAILURE"
    elif not randomised:
        row["ARMNRS"] = "NOT ASSIGNED"
    elif not treated:
        row["ARMNRS"] = "ASSIGNED, NOT TREATED"
    yield row


def ds_rows(s, env: Env):
    tz, ref = env.tz, env.ref(s)

    def row(term, decod, cat, epoch, when):
        return {"DSTERM": _cut(term), "DSDECOD": ct.term("DSDECOD", decod), "DSCAT": ct.term("DSCAT", cat),
                "EPOCH": epoch, "DSSTDTC": dtc(when, tz), "DSSTDY": study_day(when, ref, tz)}

    if s.consented_at:
        yield row("INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED", "PROTOCOL MILESTONE", "SCREENING",
                  s.consented_at)
    if _screen_failure(s):
        decided = next((r.collected_at for r in s.records if r.form == "eligibility"), None) or s.consented_at
        criteria = ", ".join(s.failed_criteria)
        yield row(f"SCREEN FAILURE: {criteria}" if criteria else "SCREEN FAILURE", "SCREEN FAILURE",
                  "DISPOSITION EVENT", "SCREENING", decided)
    if s.randomised_at:
        yield row("RANDOMIZED", "RANDOMIZED", "PROTOCOL MILESTONE", "SCREENING", s.randomised_at)
    if s.end_status:
        record = next((r for r in s.records if r.form == "end_of_study"), None)
        details = (record.values.get("details") if record is not None else None) or ""
        if s.end_status == "completed":
            decod = "COMPLETED"
        elif s.end_status == "lost_to_follow_up":
            decod = "LOST TO FOLLOW-UP"
        else:
            decod = END_DECOD.get(s.end_reason, "OTHER")
        term = details or decod
        day = study_day(s.end_date, ref, tz)
        epoch = ("FOLLOW-UP" if is_treated(s) and (day is None or env.after_treatment(day)) else
                 "TREATMENT" if s.randomised_at else "SCREENING")
        yield row(term, decod, "DISPOSITION EVENT", epoch, s.end_date)


def sv_rows(s, env: Env):
    tz, ref = env.tz, env.ref(s)
    last_num = 0.0
    for v in s.visits:
        if v.visit in env.visitnum:
            last_num = env.visitnum[v.visit]
        if v.outcome != "attended" or not v.date:
            continue
        unscheduled = v.visit not in env.visitnum
        num = round(last_num + 0.01 * max(v.repeat, 1), 2) if unscheduled else env.visitnum[v.visit]
        day = study_day(v.date, ref, tz)
        yield {"VISITNUM": num, "VISIT": f"UNSCHEDULED {num:.2f}" if unscheduled else env.visitname[v.visit],
               "VISITDY": None if unscheduled else env.visitdy.get(v.visit),
               "EPOCH": env.epoch(v.visit) if not unscheduled else (
                   "FOLLOW-UP" if env.after_treatment(day) else "TREATMENT" if day and day > 0 else None),
               "SVSTDTC": v.date, "SVENDTC": v.date, "SVSTDY": day, "SVENDY": day,
               "SVUPDES": _cut(v.reason) if unscheduled and v.reason else None}


# ---- AE, EX, PR -------------------------------------------------------------------------------
AEREL = {"not_applicable": "NOT APPLICABLE", "not_related": "NOT RELATED", "unlikely": "UNLIKELY RELATED",
         "possible": "POSSIBLY RELATED", "probable": "PROBABLY RELATED", "definite": "DEFINITELY RELATED"}
AEOUT = {"recovering": "RECOVERING/RESOLVING", "recovered": "RECOVERED/RESOLVED",
         "recovered_with_sequelae": "RECOVERED/RESOLVED WITH SEQUELAE", "not_recovered": "NOT RECOVERED/NOT RESOLVED",
         "fatal": "FATAL", "unknown": "UNKNOWN"}
SERIOUS = {"death": "AESDTH", "life_threatening": "AESLIFE", "hospitalisation": "AESHOSP",
           "disability": "AESDISAB", "congenital_anomaly": "AESCONG", "important_medical_event": "AESMIE"}


def ae_rows(s, env: Env):
    tz, ref = env.tz, env.ref(s)
    entry = env.ctx.dictionary.entry("adverse_event", "action_taken")
    for r in s.records:
        if r.form != "adverse_event":
            continue
        v = r.values
        serious = v.get("serious")
        criteria = v.get("serious_criteria") or []
        if isinstance(criteria, str):
            criteria = [criteria]
        row = {"AESPID": str(r.record), "AETERM": _cut(v.get("term")), "AEDECOD": None,
               "AEPTCD": _cut(v.get("meddra_pt_code"), 20),
               "AESER": None if serious is None else ("Y" if serious else "N"),
               "AEACNOTH": _cut(_code_label(entry, v["action_taken"])) if entry and v.get("action_taken") else None,
               "AEREL": ct.term("AEREL", AEREL[v["causality_product"]]) if v.get("causality_product") in AEREL else None,
               "AEOUT": ct.term("OUT", AEOUT[v["outcome"]]) if v.get("outcome") in AEOUT else None,
               "AETOXGR": ct.term("TOXGR", str(v["grade"])) if v.get("grade") not in (None, "") else None,
               "AESTDTC": dtc(v.get("onset_at"), tz), "AEENDTC": dtc(v.get("end_at"), tz),
               "AESTDY": study_day(v.get("onset_at"), ref, tz), "AEENDY": study_day(v.get("end_at"), ref, tz)}
        for code, variable in SERIOUS.items():
            row[variable] = ("Y" if code in criteria else "N") if serious else None
        onset = study_day(v.get("onset_at"), ref, tz)
        row["EPOCH"] = ("FOLLOW-UP" if onset is not None and onset > env.treatment_end_day else
                        "TREATMENT" if s.randomised_at else "SCREENING")
        yield row


def _disc_location(level: str | None) -> str | None:
    m = re.match(r"^\s*([LS])(\d)\s*[-/]\s*([LS])?(\d)\s*$", str(level or ""))
    if not m:
        return None
    upper = f"{m.group(1)}{m.group(2)}"
    lower = f"{m.group(3) or m.group(1)}{m.group(4)}"
    location = f"{upper}-{lower} INTERVERTEBRAL SPACE"
    return location


ROUTES = {"oral": "ORAL", "topical": "TOPICAL", "subcutaneous": "SUBCUTANEOUS", "intramuscular": "INTRAMUSCULAR",
          "intravenous": "INTRAVENOUS", "intra_articular": "INTRA-ARTICULAR", "inhaled": "RESPIRATORY (INHALATION)"}
BLINDED_PRODUCT = "BLINDED STUDY PRODUCT"


def _kit_number(procedure, values: dict):
    field_ = procedure.field_meaning("kit_number") if hasattr(procedure, "field_meaning") else None
    return values.get(field_.id) if field_ is not None else None


def _exposures(s, env: Env) -> list:
    """A kit product's exposures: (record, start, end) per dispensing record (the treatment's
    first dose among them), from the record's date field to the date of the return of the same
    kit (its number matched, never exported), or None while it is out."""
    returns = {}
    for r in s.records:
        procedure = env.procedures.get(r.form)
        if procedure is not None and "returns" in procedure.checks and _done(r):
            kit = _kit_number(procedure, r.values)
            when = r.values.get(_date_field(procedure) or "")
            if kit and when:
                returns.setdefault(kit, []).append(when)
    out = []
    for r in s.records:
        procedure = env.procedures.get(r.form)
        if procedure is None or "dispensing" not in procedure.checks or not _done(r):
            continue
        when = r.values.get(_date_field(procedure) or "")
        if procedure.id == env.treatment and not when:
            when = s.treated_on
        kit = _kit_number(procedure, r.values)
        start_day = _local(when, env.tz)
        start_day = start_day.date() if isinstance(start_day, datetime) else start_day
        back = sorted(w for w in returns.get(kit, ()) if start_day is None or str(w)[:10] >= start_day.isoformat())
        out.append((r, when, back[0] if back else None))
    return out


def _dose_unit(protocol) -> str | None:
    """The dose unit the arms' names print after their ``dose_score`` (``KX-0217 100 mg`` -> mg)."""
    for a in protocol.arms:
        if a.dose_score:
            m = re.search(rf"(?<![\d.]){re.escape(f'{a.dose_score:g}')}\s*([A-Za-z\u00b5][A-Za-z/\d^]*)", a.name.en)
            if m:
                return m.group(1)
    return None


def _visit_timing(r, env: Env) -> dict:
    return {"VISITNUM": env.visitnum.get(r.visit), "VISIT": env.visitname.get(r.visit), "EPOCH": env.epoch(r.visit)}


def ex_rows(s, env: Env):
    if env.product_kind == "cell_suspension":
        yield from _ex_cell(s, env)
        return
    ctx, tz, ref = env.ctx, env.tz, env.ref(s)
    arm = None
    if ctx.blinding == "arms" and s.arm:
        arm = next((a for a in ctx.protocol.arms if a.id == s.arm), None)
    for r, start, end in _exposures(s, env):
        row = {"EXTRT": BLINDED_PRODUCT, "EXROUTE": ROUTES.get(getattr(ctx.protocol.product, "route", ""), None),
               "EXLOC": None, **_visit_timing(r, env), "EXSTDTC": dtc(start, tz), "EXENDTC": dtc(end, tz),
               "EXSTDY": env.study_day(start, ref), "EXENDY": env.study_day(end, ref)}
        if arm is not None:
            placebo = bool(arm.control) or not arm.dose_score
            row.update(EXTRT="PLACEBO" if placebo else _cut(arm.name.en.upper(), 60), EXDOSE=float(arm.dose_score),
                       EXDOSU=_dose_unit(ctx.protocol), EXDOSFRM=None)
        yield row


def _ex_cell(s, env: Env):
    """A cell product: one injection, at the treatment procedure's visit."""
    ctx, tz, ref = env.ctx, env.tz, s.transplanted_at
    record = next((r for r in s.records if env.procedures.get(r.form) is not None
                   and env.procedures[r.form].id == env.treatment), None)
    if record is None and not s.transplanted_at:
        return
    values = record.values if record is not None else {}
    procedure = env.ctx.protocol.procedure(env.treatment) if env.treatment else None
    when = values.get(_date_field(procedure) or "") or s.transplanted_at
    visit = ctx.protocol.procedure_visit(env.treatment) if env.treatment else None
    row = {"EXTRT": BLINDED_PRODUCT, "EXROUTE": "INTRADISCAL",
           "EXLOC": _disc_location(values.get("disc_level") or ctx.protocol.product.target_level),
           "VISITNUM": env.visitnum.get(visit.id) if visit else None,
           "VISIT": env.visitname.get(visit.id) if visit else None,
           "EPOCH": "TREATMENT", "EXSTDTC": dtc(when, tz), "EXENDTC": dtc(when, tz),
           "EXSTDY": study_day(when, ref, tz), "EXENDY": study_day(when, ref, tz)}
    if ctx.blinding == "arms" and s.arm:
        arm = next((a for a in ctx.protocol.arms if a.id == s.arm), None)
        if arm is not None:
            placebo = bool(arm.control) or not arm.cells_per_disc
            row.update(EXTRT="PLACEBO" if placebo else "ADMSC WITH HA HYDROGEL",
                       EXDOSE=(arm.cells_per_disc or 0) / 1_000_000, EXDOSU="10^6 Therapeutic Cells",
                       EXDOSFRM="INJECTION, SUSPENSION")
    yield row


def pr_rows(s, env: Env):
    """One row per recorded procedure the protocol declares, named as the protocol names it."""
    ctx, tz, ref = env.ctx, env.tz, env.ref(s)
    pages = ctx.protocol.page_procedures
    cell = env.product_kind == "cell_suspension"
    for r in s.records:
        procedure = env.procedures.get(r.form)
        if procedure is None or not _done(r):
            continue
        when = r.values.get(_date_field(procedure) or "")
        if not when and pages.get(procedure.id) == "harvest":
            when = s.liposuction_on
        elif not when and procedure.id == env.treatment:
            when = s.transplanted_at or s.treated_on
        location = None
        if cell and procedure.id == env.treatment:
            location = _disc_location(r.values.get("disc_level") or ctx.protocol.product.target_level)
        yield {"PRTRT": _cut(procedure.name.en, 60), "PRLOC": location, **_visit_timing(r, env),
               "PRSTDTC": dtc(when, tz), "PRSTDY": env.study_day(when, ref)}


# ---- findings ---------------------------------------------------------------------------------
MK_SCORES = {"modic_score": ("MODICSCR", "Modic Change Score", ""),
             "pfirrmann_grade": ("PFIRSCR", "Pfirrmann Grade (numeric)", ""),
             "disc_height_score": ("DSCHTLS", "Disc Height Loss vs Adjacent Discs", "%"),
             "rom_score": ("SGROM", "Segmental Range of Motion", "deg")}
MK_LOC = {"height_above_mm": "L3-L4 INTERVERTEBRAL SPACE", "height_below_mm": "L5-S1 INTERVERTEBRAL SPACE"}
UNITS = {"°C": "C", "mm": "mm", "%": "%", "°": "deg", "mmHg": "mmHg", "10^9/L": "10^9/L", "g/L": "g/L",
         "U/L": "U/L", "umol/L": "umol/L", "mmol/L": "mmol/L", "mg/L": "mg/L", "mm/h": "mm/h", "/uL": "10^6/L"}
VS_UNITS = {"temperature": "C", "pulse": "beats/min", "respiration": "breaths/min", "systolic_bp": "mmHg",
            "diastolic_bp": "mmHg"}
LB_CAT = {"blood_routine": "HEMATOLOGY", "liver_kidney": "CHEMISTRY", "immunology": "IMMUNOLOGY",
          "urinalysis": "URINALYSIS"}
LB_SPEC = {"blood_routine": "BLOOD", "liver_kidney": "SERUM", "immunology": "SERUM", "urinalysis": "URINE"}
LB_SPEC_ITEM = {"esr": "BLOOD"}
LB_TEST = {"WBC": "Leukocytes", "NEUT": "Neutrophils", "HGB": "Hemoglobin", "PLAT": "Platelets",
           "ALT": "Alanine Aminotransferase", "AST": "Aspartate Aminotransferase", "BILI": "Bilirubin",
           "ALB": "Albumin", "CREAT": "Creatinine", "UREA": "Urea", "CRP": "C Reactive Protein",
           "ESR": "Erythrocyte Sedimentation Rate", "IGG": "Immunoglobulin G", "C3": "Complement C3",
           "PROT": "Protein", "GLUC": "Glucose", "RBC": "Erythrocytes"}
VS_TEST = {"TEMP": "Temperature", "PULSE": "Pulse Rate", "RESP": "Respiratory Rate",
           "SYSBP": "Systolic Blood Pressure", "DIABP": "Diastolic Blood Pressure"}


def _test_name(testcd: str, label: str) -> str:
    words = re.sub(r"^\d+\.\s*", "", label)
    return _cut(f"{testcd}-{words}", 40)


def _timing(r, s, env: Env, prefix: str, visit_dates: dict) -> dict:
    when = visit_dates.get((r.visit, r.visit_repeat)) or (dtc(r.collected_at, env.tz)[:10] if r.collected_at else None)
    return {"VISITNUM": env.visitnum.get(r.visit), "VISIT": env.visitname.get(r.visit), "EPOCH": env.epoch(r.visit),
            f"{prefix}DTC": when, f"{prefix}DY": env.study_day(when, env.ref(s))}


def _baseline(r, env: Env) -> str | None:
    return "Y" if r.visit == env.baseline else None


# The findings domains' rows come as (the record's columns, a key prefix or None, the value, a function
# giving the result's columns, its arguments): a row is ``{**record, **result(*arguments)}``, and the
# result's columns are the same for every row with the same prefix (test, form, and unit where it
# matters) and value, so a writer may encode them once per (prefix, type of the value, value) - the
# type because 1, 1.0 and True give different results; and not at all for a value that equal values
# do not stand for (a list; NaN; a float zero, whose sign shows in Dataset-JSON).

def _qs_result(e, value, testcd) -> dict:
    n = _num(value)
    if e.codelist:
        orres, unit = _cut(_code_label(e, value)), None
    else:
        orres, unit = _fmt(value), e.unit or None
    return {"QSTESTCD": testcd, "QSTEST": _test_name(testcd, e.label_en), "QSORRES": orres,
            "QSORRESU": unit, "QSSTRESC": _fmt(value), "QSSTRESN": n, "QSSTRESU": unit}


def _qs_score(score, value, testcd, test, unit) -> dict:
    return {"QSTESTCD": testcd, "QSTEST": test, "QSORRES": _fmt(value), "QSORRESU": unit or None,
            "QSSTRESC": _fmt(value), "QSSTRESN": _num(value), "QSSTRESU": unit or None, "QSDRVFL": "Y"}


def qs_rows(s, env: Env, visit_dates: dict):
    d = env.ctx.dictionary
    for r in s.records:
        plan = env.qs.get(r.form)
        if plan is None:
            continue
        form = d.form(r.form)
        timing = _timing(r, s, env, "QS", visit_dates)
        base = {"QSCAT": plan.category, "QSBLFL": _baseline(r, env), **timing}
        for e in form.items:
            value = r.values.get(e.item)
            testcd = plan.items.get(e.item)
            if value is None or not testcd:
                continue
            yield base, ("item", r.form, e.item), value, _qs_result, (e, value, testcd)
        for score, value in (r.computed or {}).items():
            named = plan.scores.get(score)
            if named is None or value is None:
                continue
            yield base, ("score", r.form, score), value, _qs_score, (score, value, *named)


def _vs_result(e, value) -> dict:
    unit = VS_UNITS.get(e.item)
    return {"VSTESTCD": e.sdtm_testcd, "VSTEST": VS_TEST[e.sdtm_testcd], "VSORRES": _fmt(value), "VSORRESU": unit,
            "VSSTRESC": _fmt(value), "VSSTRESN": _num(value), "VSSTRESU": unit}


def vs_rows(s, env: Env, visit_dates: dict):
    for r in s.records:
        if r.form not in env.vitals:
            continue
        form = env.ctx.dictionary.form(r.form)
        base = {"VSCAT": None, "VSBLFL": _baseline(r, env), **_timing(r, s, env, "VS", visit_dates)}
        for e in form.items:
            value = r.values.get(e.item)
            if value is None or e.sdtm_testcd not in VS_TEST:
                continue
            yield base, ("item", r.form, e.item), value, _vs_result, (e, value)


def _nrind(value: float | None, low, high) -> str | None:
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return "LOW"
    if high is not None and value > high:
        return "HIGH"
    return "NORMAL"


def _lab(protocol, form) -> tuple:
    """(LBCAT, LBSPEC, analytes by id) of a laboratory form: the category and specimen this module
    knows for the panel, else the panel's name and, for a urine panel, URINE."""
    panel = protocol.lab_panel(form.panel) if hasattr(protocol, "lab_panel") else None
    name = panel.name.en if panel is not None else form.name.en
    spec = LB_SPEC.get(form.id) or ("URINE" if "urine" in name.lower() else None)
    analytes = {a.id: a for a in panel.analytes} if panel is not None else {}
    return LB_CAT.get(form.id) or _cut(name.upper(), 40), spec, analytes


def _lb_result(spec, e, value, unit, analyte) -> dict:
    """``unit``: the record's ``<item>__unit`` value."""
    name = getattr(getattr(analyte, "name", None), "en", None) or e.label_en
    row = {"LBTESTCD": e.sdtm_testcd, "LBTEST": LB_TEST.get(e.sdtm_testcd) or _cut(name, 40),
           "LBSPEC": LB_SPEC_ITEM.get(e.item, spec)}
    if e.codelist:  # qualitative (urine dipstick)
        normal = getattr(analyte, "normal", None) or "negative"
        row.update(LBORRES=_cut(_code_label(e, value)), LBSTRESC=str(value).upper(),
                   LBNRIND="NORMAL" if str(value) == normal else "ABNORMAL",
                   LBORNRLO=None, LBORNRHI=str(normal).upper())
    else:
        unit = unit or e.unit or None
        n = _num(value)
        same_unit = unit == e.unit
        row.update(LBORRES=_fmt(value), LBORRESU=unit, LBSTRESC=_fmt(value),
                   LBSTRESN=n if unit in UNITS else None, LBSTRESU=UNITS.get(unit),
                   LBORNRLO=_fmt(e.ref_low) if same_unit else None,
                   LBORNRHI=_fmt(e.ref_high) if same_unit else None,
                   LBNRIND=_nrind(n, e.ref_low, e.ref_high) if same_unit else None)
    return row


def lb_rows(s, env: Env, visit_dates: dict):
    d = env.ctx.dictionary
    for r in s.records:
        lab = env.labs.get(r.form)
        if lab is None:
            continue
        category, spec, analytes = lab
        form = d.form(r.form)
        base = {"LBCAT": category, "LBBLFL": _baseline(r, env), **_timing(r, s, env, "LB", visit_dates)}
        for e in form.items:
            if e.item.endswith(("__unit", "__cs")):
                continue
            value = r.values.get(e.item)
            if value is None or not e.sdtm_testcd:
                continue
            unit = r.values.get(f"{e.item}__unit")
            # the protocol's analytes are the same for every record: the form and item stand for them
            prefix = ("item", r.form, e.item, unit) if unit is None or type(unit) is str else None
            yield base, prefix, value, _lb_result, (spec, e, value, unit, analytes.get(e.item))


def _mk_result(e, value) -> dict:
    row = {"MKTESTCD": e.sdtm_testcd, "MKTEST": _cut(e.label_en, 40),
           "MKLOC": MK_LOC.get(e.item, "L4-L5 INTERVERTEBRAL SPACE"),
           "MKMETHOD": "MRI" if e.group == "mri" else "X-RAY"}
    if e.codelist:
        row.update(MKORRES=_cut(_code_label(e, value)), MKSTRESC=str(value).upper())
    else:
        unit = UNITS.get(e.unit, e.unit or None)
        row.update(MKORRES=_fmt(value), MKORRESU=unit, MKSTRESC=_fmt(value), MKSTRESN=_num(value),
                   MKSTRESU=unit)
    return row


def _mk_score(score, value) -> dict:
    testcd, test, unit = MK_SCORES[score]
    return {"MKTESTCD": testcd, "MKTEST": test, "MKLOC": "L4-L5 INTERVERTEBRAL SPACE",
            "MKMETHOD": "MRI" if score in ("modic_score", "pfirrmann_grade") else "X-RAY",
            "MKORRES": _fmt(value), "MKORRESU": unit or None, "MKSTRESC": _fmt(value),
            "MKSTRESN": _num(value), "MKSTRESU": unit or None, "MKDRVFL": "Y"}


def mk_rows(s, env: Env, visit_dates: dict):
    for r in s.records:
        if r.form != "imaging":
            continue
        form = env.ctx.dictionary.form("imaging")
        base = {"MKCAT": "LUMBAR SPINE IMAGING", "MKBLFL": _baseline(r, env), **_timing(r, s, env, "MK", visit_dates)}
        for e in form.items:
            value = r.values.get(e.item)
            if value is None or not e.sdtm_testcd:
                continue
            yield base, ("item", "imaging", e.item), value, _mk_result, (e, value)
        for score, value in (r.computed or {}).items():
            if score not in MK_SCORES or value is None:
                continue
            yield base, ("score", "imaging", score), value, _mk_score, (score, value)


SUBJECT_ROWS = {"DM": dm_rows, "DS": ds_rows, "SV": sv_rows, "AE": ae_rows, "EX": ex_rows, "PR": pr_rows,
                "QS": qs_rows, "VS": vs_rows, "LB": lb_rows, "MK": mk_rows}
FINDINGS = ("QS", "VS", "LB", "MK")


def subject_rows(s, env: Env):
    """(domain, row dict) of one participant, --SEQ numbered per domain from 1."""
    visit_dates = {(v.visit, v.repeat): v.date for v in s.visits if v.date}
    for name, make in SUBJECT_ROWS.items():
        if name in FINDINGS:
            rows = ({**base, **result(*args)} for base, _prefix, _value, result, args in make(s, env, visit_dates))
        else:
            rows = make(s, env)
        for seq, row in enumerate(rows, start=1):
            row.setdefault("STUDYID", env.ctx.study_id)
            row.setdefault("DOMAIN", name)
            row.setdefault("USUBJID", s.subject)
            row.setdefault(f"{name}SEQ", seq)
            yield name, row


# ---- trial design -----------------------------------------------------------------------------
def _treatment_element(env: Env) -> tuple[str, str, str]:
    """(TESTRL, TEENRL, TEDUR) of the treatment element: from the treatment procedure at its visit
    to the end of the treatment epoch (one day for a single administration)."""
    p = env.ctx.protocol
    treatment = p.procedure(env.treatment) if env.treatment else None
    name = treatment.name.en if treatment is not None else "Treatment"
    visit = p.procedure_visit(env.treatment) if env.treatment else None
    start = f"{name} at visit {visit.name.en}" if visit is not None else name
    days = _treatment_days(env)
    last = env.treatment_last_visit
    end = "One day after" if days <= 1 else _cut(f"Visit {env.visitname[last]}")
    return _cut(start), end, f"P{max(days, 1)}D"


def _treatment_days(env: Env) -> int:
    """The planned days from the treatment to the treatment epoch's last visit (0: one administration)."""
    last = env.treatment_last_visit
    return _day0(env.visitdy[last]) if last in env.visitdy else 0


def _before_treatment(env: Env) -> list:
    """The procedures done at one visit before the treatment's (a cell product's harvest), in
    schedule order: (ETCD, procedure, planned days to the treatment)."""
    p = env.ctx.protocol
    visits = list(p.schedule.visits)
    order = {v.id: i for i, v in enumerate(visits)}
    t_visit = p.procedure_visit(env.treatment) if env.treatment else None
    out = []
    for v in visits:
        if t_visit is None or not v.procedure or v.procedure == env.treatment or order[v.id] >= order[t_visit.id]:
            continue
        procedure = p.procedure(v.procedure)
        if procedure is not None:
            days = _day0(env.visitdy[t_visit.id]) - _day0(env.visitdy[v.id])
            out.append((_code(procedure.id)[:4] or "PROC", procedure, days))
    return out


def _day0(day: int) -> int:
    """An SDTM study day as days from the treatment (day 1 is 0; there is no day 0)."""
    return day - 1 if day > 0 else day


def _follow_up_days(env: Env) -> int:
    """The planned days from the end of the treatment epoch to the last visit."""
    last = _day0(max(env.visitdy.values(), default=1))
    return max(last - _treatment_days(env), 0)


def _elements(env: Env) -> list[dict]:
    p = env.ctx.protocol
    before = _before_treatment(env)
    first = before[0][1].name.en if before else (p.procedure(env.treatment).name.en if env.treatment else "Treatment")
    out = [{"ETCD": "SCRN", "ELEMENT": "Screening", "TESTRL": "Informed consent signed",
            "TEENRL": _cut(f"Randomisation; {first}"), "TEDUR": None}]
    for n, (etcd, procedure, days) in enumerate(before):
        treatment = p.procedure(env.treatment) if env.treatment else None
        after = before[n + 1][1].name.en if n + 1 < len(before) else (
            treatment.name.en if treatment is not None else "the treatment")
        out.append({"ETCD": etcd, "ELEMENT": _cut(procedure.name.en, 80), "TESTRL": _cut(procedure.name.en),
                    "TEENRL": _cut(f"Start of {after}"), "TEDUR": f"P{days}D"})
    start, end, duration = _treatment_element(env)
    if env.ctx.blinding == "arms":
        for a in p.arms:
            out.append({"ETCD": a.id.upper()[:8], "ELEMENT": _cut(a.name.en, 80), "TESTRL": start, "TEENRL": end,
                        "TEDUR": duration})
    else:
        out.append({"ETCD": "TRT", "ELEMENT": "Treatment with the blinded study product",
                    "TESTRL": start, "TEENRL": end, "TEDUR": duration})
    out.append({"ETCD": "FU", "ELEMENT": "Follow-up", "TESTRL": "End of the treatment element",
                "TEENRL": "Last follow-up visit or end of study", "TEDUR": f"P{_follow_up_days(env)}D"})
    return out


def _visit_rule(v, p) -> str:
    w = v.window
    anchor = "informed consent" if v.anchor == "consent" else (
        p.procedure(v.anchor).name.en if p.procedure(v.anchor) is not None else v.anchor)
    return _cut(f"{v.offset_days} days from the {anchor} (window -{w.before_days}/+{w.after_days} days)")


def design_rows(name: str, env: Env):
    ctx, p = env.ctx, env.ctx.protocol
    if name == "TE":
        yield from _elements(env)
    elif name == "TA":
        elements = {e["ETCD"]: e["ELEMENT"] for e in _elements(env)}
        groups = ([(a.id.upper(), a.name.en, a.id.upper()[:8]) for a in p.arms] if ctx.blinding == "arms"
                  else [(g, f"GROUP {g}", "TRT") for g in "ABCDEFGHIJ"[:len(p.arms)]])
        before = [(etcd, "TREATMENT", None, None) for etcd, _p, _d in _before_treatment(env)]
        for code, arm, treatment in groups:
            steps = [("SCRN", "SCREENING", f"Randomized to {arm}", None), *before,
                     (treatment, "TREATMENT", None, None), ("FU", "FOLLOW-UP", None, None)]
            for order, (etcd, epoch, branch, trans) in enumerate(steps, start=1):
                yield {"ARMCD": code, "ARM": _cut(arm), "TAETORD": order, "ETCD": etcd, "ELEMENT": elements[etcd],
                       "TABRANCH": branch, "TATRANS": trans, "EPOCH": epoch}
    elif name == "TV":
        for v in p.schedule.visits:
            yield {"VISITNUM": env.visitnum[v.id], "VISIT": env.visitname[v.id], "VISITDY": env.visitdy[v.id],
                   "TVSTRL": _visit_rule(v, p), "TVENRL": None}
    elif name == "TI":
        for cat, criteria in (("INCLUSION", p.eligibility.inclusion), ("EXCLUSION", p.eligibility.exclusion)):
            for c in criteria:
                yield {"IETESTCD": c.id, "IETEST": _cut(c.text.en), "IECAT": cat, "TIVERS": str(p.version)}
    elif name == "TS":
        seen: dict = {}
        for row in _ts(env):
            seen[row["TSPARMCD"]] = seen.get(row["TSPARMCD"], 0) + 1
            yield {"TSSEQ": seen[row["TSPARMCD"]], **row}


def _min_age(protocol) -> int | None:
    """The youngest age the inclusion criteria admit (an ``age_at_least`` rule)."""
    ages = [c.rule.years for c in protocol.eligibility.inclusion
            if getattr(c.rule, "kind", "") == "age_at_least" and getattr(c.rule, "years", None) is not None]
    return max(ages) if ages else None


def _ts(env: Env):
    ctx, p = env.ctx, env.ctx.protocol
    cdisc = "CDISC CT"

    def param(code, value, *, codelist="", nf=None):
        out = {"TSPARMCD": code, "TSPARM": _TSPARM[code], "TSVAL": _cut(value), "TSVALNF": nf,
               "TSVALCD": None, "TSVCDREF": None, "TSVCDVER": None}
        if codelist and value is not None and value in ct.codelist(codelist).terms:
            out.update(TSVALCD=ct.code(codelist, value), TSVCDREF=cdisc)
        return out

    design = (p.trial.design.en or "").lower()
    yield param("TITLE", ctx.title_en)
    yield param("TPHASE", f"PHASE {p.trial.phase} TRIAL", codelist="TPHASE")
    yield param("STYPE", "INTERVENTIONAL", codelist="STYPE")
    blind = ("DOUBLE BLIND" if "double-blind" in design or "double blind" in design else
             "SINGLE BLIND" if "single-blind" in design or "single blind" in design else
             "OPEN LABEL" if "open" in design else "DOUBLE BLIND")
    yield param("TBLIND", blind, codelist="TBLIND")
    yield param("RANDOM", "Y", codelist="NY")
    yield param("INTMODEL", "PARALLEL", codelist="INTMODEL")
    control = next((a for a in p.arms if a.control), None)
    if control is not None and not control.dose_score:
        yield param("TCNTRL", "PLACEBO", codelist="TCNTRL")
    kinds = ["EFFICACY", "SAFETY"]
    if len({a.dose_score for a in p.arms if not a.control}) >= 2:
        kinds.append("DOSE RESPONSE")
    for t in kinds:
        yield param("TTYPE", t, codelist="TTYPE")
    yield param("NARMS", str(len(p.arms)))
    total = sum(a.ratio for a in p.arms)
    active = sum(a.ratio for a in p.arms if not a.control)
    yield param("RANDQT", _fmt(round(active / total, 2)) if total else None)
    yield param("PLANSUB", str(p.sample_size.total))
    yield param("ACTSUB", str(env.counts["randomised"]))
    age = _min_age(p)
    yield param("AGEMIN", f"P{age}Y" if age is not None else None, nf=None if age is not None else "NA")
    yield param("SEXPOP", "BOTH", codelist="SEXPOP")
    yield param("LENGTH", f"P{max(env.visitdy.values(), default=1) - 1}D")
    yield param("REGID", ctx.registry_number)
    yield param("FCNTRY", COUNTRY)
    if p.trial.indication is not None:
        yield param("INDIC", _cut(p.trial.indication.en))
    yield param("TRT", _cut(p.product.name.en))
    if control is not None and (not control.dose_score or ctx.blinding == "arms"):
        # an arm's name only where arms may be shown (a blinded export names no arm anywhere)
        yield param("COMPTRT", _cut(control.name.en) if ctx.blinding == "arms" else "PLACEBO")
    yield param("SDTIGVER", SDTMIG)


_TSPARM = {"TITLE": "Trial Title", "TPHASE": "Trial Phase Classification", "STYPE": "Study Type",
           "TBLIND": "Trial Blinding Schema", "RANDOM": "Trial is Randomized", "PLANSUB": "Planned Number of Subjects",
           "NARMS": "Planned Number of Arms", "REGID": "Registry Identifier", "INTMODEL": "Intervention Model",
           "TCNTRL": "Control Type", "AGEMIN": "Planned Minimum Age of Subjects", "SEXPOP": "Sex of Participants",
           "LENGTH": "Trial Length", "SDTIGVER": "SDTM IG Version", "INDIC": "Trial Disease/Condition Indication",
           "TRT": "Investigational Therapy or Treatment", "COMPTRT": "Comparative Treatment Name",
           "ACTSUB": "Actual Number of Subjects", "TTYPE": "Trial Type",
           "FCNTRY": "Planned Country of Investigational Sites", "RANDQT": "Randomization Quotient"}


# ---- writing ----------------------------------------------------------------------------------
def _tuple(domain: Domain, row: dict) -> list:
    """The row's values in the domain's variable order (a list: CPython keeps up to 2,000 freed tuples
    of each size for reuse, which a memory trace would count as held)."""
    return [row.get(v.name) for v in domain.vars]


# results' encoded columns kept per findings domain: the first this many results met (the codes of
# the questionnaires, met in the first participants, among them); bounded, so memory stays flat
RESULTS_KEPT = 512


class _Findings:
    """Writes a findings domain's rows (``qs_rows``...) as parts its writer encodes once and joins:
    the participant's ids; --SEQ; the result's columns (from --TESTCD to before --BLFL: the same for
    every row with the same result key, the category included, which depends on the form alone, in
    every key); and --BLFL, --DRVFL and the timing columns (the same for every row of a record with
    the same --DRVFL). A row whose values do not fall so (a record or result setting another part's
    columns) is written whole, as any other domain's."""

    def __init__(self, domain: Domain, writer):
        p = domain.name
        self.domain, self.writer = domain, writer
        names = [v.name for v in domain.vars]
        blfl = names.index(f"{p}BLFL")
        if names[:4] != ["STUDYID", "DOMAIN", "USUBJID", f"{p}SEQ"] or names[blfl + 1] != f"{p}DRVFL":
            raise ValueError(f"{p}: not laid out as a findings domain")
        self.result_names, self.drvfl = names[4:blfl], names[blfl + 1]
        self.record_names = [names[blfl], *names[blfl + 2:]]  # --BLFL and the timing columns
        ids = {"STUDYID", "DOMAIN", "USUBJID", f"{p}SEQ"}
        self.not_record = frozenset(ids | set(self.result_names) | {self.drvfl}) - {f"{p}CAT"}
        self.not_result = frozenset(ids | set(self.record_names))
        self._ids, self._seq = writer.encoder(0, 3), writer.encoder(3, 4)
        self._result, self._tail = writer.encoder(4, blfl), writer.encoder(blfl, len(names))
        self._seqs: list = [None]  # --SEQ n -> its encoded value
        self._results: dict = {}  # result key -> (its encoded columns, its --DRVFL)

    def write(self, rows, study_id: str, subject: str) -> None:
        ids = self._ids((study_id, self.domain.name, subject))
        seqs, results = self._seqs, self._results
        out = []  # the participant's rows in parts, written together
        record = None
        whole = False
        tails: dict = {}  # the record's --DRVFL -> its encoded --BLFL, --DRVFL and timing
        for seq, (base, prefix, value, result, args) in enumerate(rows, start=1):
            if base is not record:
                record = base
                whole = not self.not_record.isdisjoint(base)
                tails = {}
            if whole:
                self._whole({**base, **result(*args)}, study_id, subject, seq, out)
                continue
            if seq >= len(seqs):
                seqs.extend(self._seq((n,)) for n in range(len(seqs), seq + 1))
            kind = type(value)  # the result's key (see the note above _qs_result)
            key = (prefix, kind, value) if prefix is not None and (
                kind is str or kind is int or kind is bool or (kind is float and value == value and value != 0)) \
                else None
            part = results.get(key) if key is not None else None
            if part is None:
                values = result(*args)
                row = {**base, **values}
                if not self.not_result.isdisjoint(values):
                    self._whole(row, study_id, subject, seq, out)
                    continue
                part = (self._result([row.get(n) for n in self.result_names]), values.get(self.drvfl))
                if key is not None and len(results) < RESULTS_KEPT:
                    results[key] = part
            tail = tails.get(part[1])
            if tail is None:
                flag, *timing = [base.get(n) for n in self.record_names]
                tail = tails[part[1]] = self._tail([flag, part[1], *timing])
            out.append((ids, seqs[seq], part[0], tail))
        if out:
            self.writer.write_encoded_rows(out)

    def _whole(self, row: dict, study_id: str, subject: str, seq: int, out: list) -> None:
        name = self.domain.name
        row.setdefault("STUDYID", study_id)
        row.setdefault("DOMAIN", name)
        row.setdefault("USUBJID", subject)
        row.setdefault(f"{name}SEQ", seq)
        if out:  # the rows before it first
            self.writer.write_encoded_rows(out)
            out.clear()
        self.writer.write_row(_tuple(self.domain, row))


def _opener(ctx, out_dir: Path):
    if ctx.format == "dataset-json":
        from .datasetjson import DatasetJsonWriter

        def open_(domain: Domain):
            path = out_dir / f"{domain.name.lower()}.json"
            columns = []
            for v in domain.vars:
                c = {"itemOID": f"IT.{domain.name}.{v.name}", "name": v.name, "label": v.label,
                     "dataType": v.json_type}
                if v.xpt_type == "char":
                    c["length"] = v.length
                if v.key:
                    c["keySequence"] = v.key
                columns.append(c)
            meta = {"datasetJSONCreationDateTime": ctx.created_at, "fileOID": f"{ctx.study_id}.{domain.name}",
                    "dbLastModifiedDateTime": ctx.as_of,
                    "originator": "Annulus",
                    "sourceSystem": {"name": "Annulus", "version": _version()},
                    "studyOID": ctx.study_id, "metaDataVersionOID": f"MDV.{ctx.study_id}.SDTMIG.{SDTMIG}",
                    "metaDataRef": "define.xml", "itemGroupOID": f"IG.{domain.name}"}
            return path, DatasetJsonWriter(path, name=domain.name, label=domain.label, columns=columns, meta=meta)
        return open_
    from datetime import datetime as _dt

    from .xpt import Column, XptWriter
    created = _dt.fromisoformat(ctx.created_at.replace("Z", "+00:00"))

    def open_(domain: Domain):
        path = out_dir / f"{domain.name.lower()}.xpt"
        columns = [Column(v.name, v.label, v.xpt_type, v.xpt_length) for v in domain.vars]
        return path, XptWriter(path, domain.name, domain.label, columns=columns, created=created)
    return open_


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("annulus")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"


def write(subjects, ctx, out_dir: Path) -> list[Path]:
    """Write every domain of ``subjects`` (consumed once) and define.xml into ``out_dir``."""
    if ctx.format not in ("sdtm", "dataset-json"):
        raise ValueError(f"the SDTM writer writes 'sdtm' or 'dataset-json', not {ctx.format!r}")
    out_dir = Path(out_dir)
    env = Env.of(ctx)
    specs = domains(ctx.blinding, env)
    by_name = {d.name: d for d in specs}
    open_ = _opener(ctx, out_dir)
    paths, writers = {}, {}
    try:
        for name in SUBJECT_ROWS:
            paths[name], writers[name] = open_(by_name[name])
        findings = {name: _Findings(by_name[name], writers[name]) for name in FINDINGS}
        for s in subjects:
            env.counts["consented"] += 1
            env.counts["randomised"] += 1 if (s.randomised_at or s.case_number) else 0
            env.counts["treated"] += 1 if is_treated(s) else 0
            visit_dates = {(v.visit, v.repeat): v.date for v in s.visits if v.date}
            env.days.clear()  # (date, the participant's day 0) -> study day: this participant's only
            for name, make in SUBJECT_ROWS.items():
                if name in FINDINGS:
                    findings[name].write(make(s, env, visit_dates), ctx.study_id, s.subject)
                    continue
                domain, write_row = by_name[name], writers[name].write_row
                for seq, row in enumerate(make(s, env), start=1):
                    row.setdefault("STUDYID", ctx.study_id)
                    row.setdefault("DOMAIN", name)
                    row.setdefault("USUBJID", s.subject)
                    row.setdefault(f"{name}SEQ", seq)
                    write_row(_tuple(domain, row))
        for d in specs:
            if d.name in SUBJECT_ROWS:
                continue
            paths[d.name], writers[d.name] = open_(d)
            for row in design_rows(d.name, env):
                writers[d.name].write_row(_tuple(d, {"STUDYID": ctx.study_id, "DOMAIN": d.name, **row}))
    finally:
        for w in writers.values():
            w.close()
    from . import define

    rows = {name: w.rows for name, w in writers.items()}
    define_path = define.write(ctx, specs, {n: p.name for n, p in paths.items()}, out_dir / "define.xml", rows=rows)
    return [paths[d.name] for d in specs] + [define_path]

