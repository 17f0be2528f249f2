"""SDTM-style domains (SDTMIG 3.3) as SAS transport v5 (``--format sdtm``) or Dataset-JSON v1.1
(``--format dataset-json``), each with a Define-XML 2.1 ``define.xml`` (no Django).

One pass over the participants: every subject-level domain file is open at once and each
participant's rows go to them as the participant is read, so memory stays flat in the number of
participants. The trial-design domains (TS, TA, TE, TV, TI) come from the protocol and are written
at the end (TS counts the participants). The findings domains (QS, VS, LB, MK: nearly all the rows)
are written as parts the file writer encodes once: a result's columns are the same for every row
with the same test and value, the timing columns for every row of a record (``_Findings``).

Domains: DM, DS, SV, AE, EX, PR, QS, VS, LB, MK; TS, TA, TE, TV, TI.

Conventions (also stated in define.xml's comments):

* ``USUBJID`` is the pseudonymous participant number; ``SUBJID`` the case number (the screening
  number before randomisation); one site (``SITEID`` "01", ``COUNTRY`` "CHN").
* Dates: SDTM ``--DTC`` values are ISO 8601 in the trial's local time (``trial.timezone``) without
  an offset, to the minute for times (``2022-06-06T10:00``), dates alone as ``YYYY-MM-DD``.
* Study day: ``RFSTDTC`` is the transplantation (first and only exposure). ``--DY`` follows SDTM:
  the transplantation date is day 1, the day before is day -1, there is no day 0. (The eCRF and
  ``VisitInfo.day`` count the transplantation as day 0; SDTM ``--DY`` = that day + 1 from the
  transplantation on.) ``VISITDY`` is the planned day on the same scale.
* ``VISITNUM`` is the visit's position in the protocol schedule (1, 2, ...); an unscheduled visit
  is the scheduled visit before it + 0.01 × its repeat number.
* Baseline flags (``--BLFL``): the value at the last scheduled visit before the transplantation
  that collects the form (the "baseline" visit).
* Blind: ``ctx.blinding`` decides; the writer never looks at arms otherwise.
  - "blinded": the DM arm variables ARMCD/ARM/ACTARMCD/ACTARM are not written at all (SDTM has no
    "blinded" arm value; an empty Expected variable would claim the arm is unknown). ARMNRS keeps
    only the reasons that do not differ by arm (SCREEN FAILURE, NOT ASSIGNED, ASSIGNED, NOT
    TREATED). EX names the product "BLINDED STUDY PRODUCT" with no dose, dose unit or dose form
    columns; TA (which lists the arms) is not written; TE has one blinded treatment element.
  - "labels": ARMCD/ACTARMCD are the group label (A-D) and ARM/ACTARM "GROUP A"...; EX stays
    blinded (labels are not treatments); TA lists groups A-D with the one blinded element.
  - "arms": the protocol arm id (upper case) and name, EXTRT the arm's product, EXDOSE the cells
    per disc (10^6 Therapeutic Cells), TA/TE per arm.
* Imaging goes to MK (Musculoskeletal System Findings): SDTMIG 3.3 deprecated MO (Morphology) in
  favour of the body-system physiology domains, and Modic changes, Pfirrmann grade, disc height and
  segmental angles are findings about the lumbar spine. Test codes are sponsor-defined (the CDISC
  MKTESTCD codelist is extensible and has no disc-degeneration tests).
* QS and MK test codes are the data dictionary's SDTM hints (``annulus.dictionary.mapping``); derived
  scores (``Record.computed``) are rows with ``--DRVFL`` "Y".
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

from . import ct

SDTMIG = "3.3"
SITEID = "01"
COUNTRY = "CHN"


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


def domains(blinding: str) -> list[Domain]:
    """Every domain this export writes, with its variables, for the blinding level."""
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
               "" if blinding == "arms" else "Blinded export: the treatment is named BLINDED STUDY PRODUCT and "
               "no dose, dose unit or dose form is given."),
        Domain("PR", "Procedures", "INTERVENTIONS", "One record per recorded procedure per subject", tuple(pr)),
        Domain("QS", "Questionnaires", "FINDINGS", "One record per questionnaire per question per visit per subject",
               tuple(qs), "Sponsor-defined test codes (VAS, ODI01-10, JOA01-14, SF3601-36 and totals)."),
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
@dataclass
class Env:
    ctx: object
    tz: ZoneInfo
    visitnum: dict  # visit id -> VISITNUM
    visitname: dict  # visit id -> VISIT
    visitdy: dict  # visit id -> planned SDTM day
    epoch_after_transplant: set  # visit ids in FOLLOW-UP
    baseline: str  # the baseline visit id
    transplant_visit: str
    liposuction_visit: str
    counts: dict = field(default_factory=lambda: {"consented": 0, "randomised": 0, "treated": 0})
    days: dict = field(default_factory=dict)  # (date, reference) -> study_day, for the records' timing

    def study_day(self, value: str | None, reference: str | None) -> int | None:
        """``study_day`` in the trial's time zone, kept (a visit's records share their date)."""
        key = (value, reference)
        day = self.days.get(key, self)
        if day is self:
            if len(self.days) >= 4096:
                self.days.clear()
            day = self.days[key] = study_day(value, reference, self.tz)
        return day

    @classmethod
    def of(cls, ctx) -> Env:
        p = ctx.protocol
        visits = list(p.schedule.visits)
        transplant = next((v for v in visits if getattr(v, "procedure", None) == "transplant"), None)
        lipo = next((v for v in visits if getattr(v, "procedure", None) == "liposuction"), None)
        t_offset = transplant.offset_days if transplant is not None and transplant.anchor == "liposuction" else 21

        def rel(v) -> int:  # days from the transplantation (eCRF convention, day 0)
            return v.offset_days if v.anchor == "transplant" else v.offset_days - t_offset

        order = {v.id: i for i, v in enumerate(visits)}
        t_index = order.get(transplant.id, 0) if transplant is not None else 0
        before = [v for v in visits if order[v.id] < t_index and getattr(v, "procedure", None) is None]
        return cls(ctx=ctx, tz=ZoneInfo(p.trial.timezone),
                   visitnum={v.id: float(i + 1) for i, v in enumerate(visits)},
                   visitname={v.id: v.name.en for v in visits},
                   visitdy={v.id: sdtm_day(rel(v)) for v in visits},
                   epoch_after_transplant={v.id for v in visits if order[v.id] > t_index},
                   baseline=before[-1].id if before else "baseline",
                   transplant_visit=transplant.id if transplant is not None else "transplant",
                   liposuction_visit=lipo.id if lipo is not None else "liposuction")

    def epoch(self, visit: str) -> str:
        if visit in self.epoch_after_transplant:
            return "FOLLOW-UP"
        if visit in ("screening", ""):
            return "SCREENING"
        return "TREATMENT"


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


def dm_rows(s, env: Env):
    tz, ctx = env.tz, env.ctx
    treated = bool(s.transplanted_at)
    randomised = bool(s.case_number) or bool(s.randomised_at)
    fatal = any(r.form == "adverse_event" and r.values.get("outcome") == "fatal" for r in s.records)
    end = s.end_date or _last_visit_date(s)
    row = {"STUDYID": ctx.study_id, "DOMAIN": "DM", "USUBJID": s.subject,
           "SUBJID": s.case_number or s.screening_number,
           "RFSTDTC": dtc(s.transplanted_at, tz), "RFENDTC": dtc(end, tz) if treated else None,
           "RFXSTDTC": dtc(s.transplanted_at, tz), "RFXENDTC": dtc(s.transplanted_at, tz),
           "RFICDTC": dtc(s.consented_at, tz), "RFPENDTC": dtc(end, tz),
           "DTHFL": "Y" if fatal else None, "SITEID": SITEID, "AGE": s.age,
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
    tz, ref = env.tz, s.transplanted_at

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
        epoch = "FOLLOW-UP" if s.transplanted_at else ("TREATMENT" if s.randomised_at else "SCREENING")
        yield row(term, decod, "DISPOSITION EVENT", epoch, s.end_date)


def sv_rows(s, env: Env):
    tz, ref = env.tz, s.transplanted_at
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
               "EPOCH": env.epoch(v.visit) if not unscheduled else ("FOLLOW-UP" if day and day > 0 else None),
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
    tz, ref = env.tz, s.transplanted_at
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
        row["EPOCH"] = "FOLLOW-UP" if onset is not None and onset > 1 else ("TREATMENT" if s.randomised_at else "SCREENING")
        yield row


def _disc_location(level: str | None) -> str | None:
    m = re.match(r"^\s*([LS])(\d)\s*[-/]\s*([LS])?(\d)\s*$", str(level or ""))
    if not m:
        return None
    upper = f"{m.group(1)}{m.group(2)}"
    lower = f"{m.group(3) or m.group(1)}{m.group(4)}"
    location = f"{upper}-{lower} INTERVERTEBRAL SPACE"
    return location


def ex_rows(s, env: Env):
    ctx, tz, ref = env.ctx, env.tz, s.transplanted_at
    record = next((r for r in s.records if r.form == "transplant"), None)
    if record is None and not s.transplanted_at:
        return
    values = record.values if record is not None else {}
    when = values.get("transplanted_at") or s.transplanted_at
    row = {"EXTRT": "BLINDED STUDY PRODUCT", "EXROUTE": "INTRADISCAL",
           "EXLOC": _disc_location(values.get("disc_level") or ctx.protocol.product.target_level),
           "VISITNUM": env.visitnum.get(env.transplant_visit), "VISIT": env.visitname.get(env.transplant_visit),
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
    tz, ref = env.tz, s.transplanted_at
    for r in s.records:
        if r.form == "liposuction":
            when = r.values.get("performed_on") or s.liposuction_on
            yield {"PRTRT": "LIPOSUCTION", "PRLOC": None, "VISITNUM": env.visitnum.get(r.visit),
                   "VISIT": env.visitname.get(r.visit), "EPOCH": "TREATMENT", "PRSTDTC": dtc(when, tz),
                   "PRSTDY": study_day(when, ref, tz)}
        elif r.form == "transplant":
            when = r.values.get("transplanted_at") or s.transplanted_at
            yield {"PRTRT": "INTRADISCAL INJECTION",
                   "PRLOC": _disc_location(r.values.get("disc_level") or env.ctx.protocol.product.target_level),
                   "VISITNUM": env.visitnum.get(r.visit), "VISIT": env.visitname.get(r.visit), "EPOCH": "TREATMENT",
                   "PRSTDTC": dtc(when, tz), "PRSTDY": study_day(when, ref, tz)}


# ---- findings ---------------------------------------------------------------------------------
QS_FORMS = {"vas": "VAS PAIN", "odi": "OSWESTRY DISABILITY INDEX", "joa": "JOA LOW BACK PAIN SCORE",
            "sf36": "SF-36 HEALTH SURVEY"}
# derived scores (Record.computed ids) -> (test code, test name, unit)
QS_SCORES = {"odi_percent": ("ODITOT", "ODI Total Score (%)", "%"), "joa_total": ("JOATOT", "JOA Total Score", ""),
             "pcs": ("SF36PCS", "SF-36 Physical Component Summary", ""),
             "mcs": ("SF36MCS", "SF-36 Mental Component Summary", ""),
             "pf": ("SF36PF", "SF-36 Physical Functioning", ""), "rp": ("SF36RP", "SF-36 Role-Physical", ""),
             "bp": ("SF36BP", "SF-36 Bodily Pain", ""), "gh": ("SF36GH", "SF-36 General Health", ""),
             "vt": ("SF36VT", "SF-36 Vitality", ""), "sf": ("SF36SF", "SF-36 Social Functioning", ""),
             "re": ("SF36RE", "SF-36 Role-Emotional", ""), "mh": ("SF36MH", "SF-36 Mental Health", "")}
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
            f"{prefix}DTC": when, f"{prefix}DY": env.study_day(when, s.transplanted_at)}


def _baseline(r, env: Env) -> str | None:
    return "Y" if r.visit == env.baseline else None


# The findings domains' rows come as (the record's columns, a key prefix or None, the value, a function
# giving the result's columns, its arguments): a row is ``{**record, **result(*arguments)}``, and the
# result's columns are the same for every row with the same prefix (test, form, and unit where it
# matters) and value, so a writer may encode them once per (prefix, type of the value, value) - the
# type because 1, 1.0 and True give different results; and not at all for a value that equal values
# do not stand for (a list; NaN; a float zero, whose sign shows in Dataset-JSON).

def _qs_result(e, value) -> dict:
    n = _num(value)
    if e.codelist:
        orres, unit = _cut(_code_label(e, value)), None
    else:
        orres, unit = _fmt(value), e.unit or None
    return {"QSTESTCD": e.sdtm_testcd, "QSTEST": _test_name(e.sdtm_testcd, e.label_en), "QSORRES": orres,
            "QSORRESU": unit, "QSSTRESC": _fmt(value), "QSSTRESN": n, "QSSTRESU": unit}


def _qs_score(score, value) -> dict:
    testcd, test, unit = QS_SCORES[score]
    return {"QSTESTCD": testcd, "QSTEST": test, "QSORRES": _fmt(value), "QSORRESU": unit or None,
            "QSSTRESC": _fmt(value), "QSSTRESN": _num(value), "QSSTRESU": unit or None, "QSDRVFL": "Y"}


def qs_rows(s, env: Env, visit_dates: dict):
    d = env.ctx.dictionary
    for r in s.records:
        if r.form not in QS_FORMS:
            continue
        form = d.form(r.form)
        timing = _timing(r, s, env, "QS", visit_dates)
        base = {"QSCAT": QS_FORMS[r.form], "QSBLFL": _baseline(r, env), **timing}
        for e in form.items:
            value = r.values.get(e.item)
            if value is None or not e.sdtm_testcd:
                continue
            yield base, ("item", r.form, e.item), value, _qs_result, (e, value)
        for score, value in (r.computed or {}).items():
            if score not in QS_SCORES or value is None:
                continue
            yield base, ("score", r.form, score), value, _qs_score, (score, value)


def _vs_result(e, value) -> dict:
    unit = VS_UNITS.get(e.item)
    return {"VSTESTCD": e.sdtm_testcd, "VSTEST": VS_TEST[e.sdtm_testcd], "VSORRES": _fmt(value), "VSORRESU": unit,
            "VSSTRESC": _fmt(value), "VSSTRESN": _num(value), "VSSTRESU": unit}


def vs_rows(s, env: Env, visit_dates: dict):
    for r in s.records:
        if r.form != "vitals":
            continue
        form = env.ctx.dictionary.form("vitals")
        base = {"VSCAT": None, "VSBLFL": _baseline(r, env), **_timing(r, s, env, "VS", visit_dates)}
        for e in form.items:
            value = r.values.get(e.item)
            if value is None or e.sdtm_testcd not in VS_TEST:
                continue
            yield base, ("item", "vitals", e.item), value, _vs_result, (e, value)


def _nrind(value: float | None, low, high) -> str | None:
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return "LOW"
    if high is not None and value > high:
        return "HIGH"
    return "NORMAL"


def _lb_result(form_id, e, value, unit, analyte) -> dict:
    """``unit``: the record's ``<item>__unit`` value."""
    row = {"LBTESTCD": e.sdtm_testcd, "LBTEST": LB_TEST[e.sdtm_testcd],
           "LBSPEC": LB_SPEC_ITEM.get(e.item, LB_SPEC[form_id])}
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
        if r.form not in LB_CAT:
            continue
        form = d.form(r.form)
        panel = env.ctx.protocol.lab_panel(r.form) if hasattr(env.ctx.protocol, "lab_panel") else None
        analytes = {a.id: a for a in panel.analytes} if panel is not None else {}
        base = {"LBCAT": LB_CAT[r.form], "LBBLFL": _baseline(r, env), **_timing(r, s, env, "LB", visit_dates)}
        for e in form.items:
            if e.item.endswith(("__unit", "__cs")):
                continue
            value = r.values.get(e.item)
            if value is None or e.sdtm_testcd not in LB_TEST:
                continue
            unit = r.values.get(f"{e.item}__unit")
            # the protocol's analytes are the same for every record: the form and item stand for them
            prefix = ("item", r.form, e.item, unit) if unit is None or type(unit) is str else None
            yield base, prefix, value, _lb_result, (r.form, e, value, unit, analytes.get(e.item))


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
def _elements(env: Env) -> list[dict]:
    p = env.ctx.protocol
    out = [{"ETCD": "SCRN", "ELEMENT": "Screening", "TESTRL": "Informed consent signed",
            "TEENRL": "Randomisation on the day of liposuction", "TEDUR": None},
           {"ETCD": "LIPO", "ELEMENT": "Liposuction and cell culture", "TESTRL": "Liposuction",
            "TEENRL": "Transplantation", "TEDUR": "P21D"}]
    if env.ctx.blinding == "arms":
        for a in p.arms:
            out.append({"ETCD": a.id.upper()[:8], "ELEMENT": _cut(a.name.en, 80),
                        "TESTRL": "Intradiscal injection at the transplantation visit", "TEENRL": "One day after",
                        "TEDUR": "P1D"})
    else:
        out.append({"ETCD": "TRT", "ELEMENT": "Intradiscal injection of the blinded study product",
                    "TESTRL": "Intradiscal injection at the transplantation visit", "TEENRL": "One day after",
                    "TEDUR": "P1D"})
    last = max((v.offset_days for v in p.schedule.visits if v.anchor == "transplant"), default=730)
    out.append({"ETCD": "FU", "ELEMENT": "Follow-up", "TESTRL": "One day after the transplantation",
                "TEENRL": "Last follow-up visit or end of study", "TEDUR": f"P{last}D"})
    return out


def design_rows(name: str, env: Env):
    ctx, p = env.ctx, env.ctx.protocol
    if name == "TE":
        yield from _elements(env)
    elif name == "TA":
        elements = {e["ETCD"]: e["ELEMENT"] for e in _elements(env)}
        groups = ([(a.id.upper(), a.name.en, a.id.upper()[:8]) for a in p.arms] if ctx.blinding == "arms"
                  else [(g, f"GROUP {g}", "TRT") for g in "ABCD"[:len(p.arms)]])
        for code, arm, treatment in groups:
            steps = [("SCRN", "SCREENING", f"Randomized to {arm}", None), ("LIPO", "TREATMENT", None, None),
                     (treatment, "TREATMENT", None, None), ("FU", "FOLLOW-UP", None, None)]
            for order, (etcd, epoch, branch, trans) in enumerate(steps, start=1):
                yield {"ARMCD": code, "ARM": _cut(arm), "TAETORD": order, "ETCD": etcd, "ELEMENT": elements[etcd],
                       "TABRANCH": branch, "TATRANS": trans, "EPOCH": epoch}
    elif name == "TV":
        for v in p.schedule.visits:
            w = v.window
            yield {"VISITNUM": env.visitnum[v.id], "VISIT": env.visitname[v.id], "VISITDY": env.visitdy[v.id],
                   "TVSTRL": _cut(f"{v.offset_days} days from the {v.anchor} (window -{w.before_days}/+{w.after_days} "
                                  "days)"),
                   "TVENRL": None}
    elif name == "TI":
        for cat, criteria in (("INCLUSION", p.eligibility.inclusion), ("EXCLUSION", p.eligibility.exclusion)):
            for c in criteria:
                yield {"IETESTCD": c.id, "IETEST": _cut(c.text.en), "IECAT": cat, "TIVERS": str(p.version)}
    elif name == "TS":
        seen: dict = {}
        for row in _ts(env):
            seen[row["TSPARMCD"]] = seen.get(row["TSPARMCD"], 0) + 1
            yield {"TSSEQ": seen[row["TSPARMCD"]], **row}


def _ts(env: Env):
    ctx, p = env.ctx, env.ctx.protocol
    cdisc = "CDISC CT"

    def param(code, value, *, codelist="", nf=None):
        out = {"TSPARMCD": code, "TSPARM": _TSPARM[code], "TSVAL": _cut(value), "TSVALNF": nf,
               "TSVALCD": None, "TSVCDREF": None, "TSVCDVER": None}
        if codelist and value is not None:
            out.update(TSVALCD=ct.code(codelist, value), TSVCDREF=cdisc)
        return out

    yield param("TITLE", ctx.title_en)
    yield param("TPHASE", "PHASE II TRIAL", codelist="TPHASE")
    yield param("STYPE", "INTERVENTIONAL", codelist="STYPE")
    yield param("TBLIND", "DOUBLE BLIND", codelist="TBLIND")
    yield param("RANDOM", "Y", codelist="NY")
    yield param("INTMODEL", "PARALLEL", codelist="INTMODEL")
    yield param("TCNTRL", "PLACEBO", codelist="TCNTRL")
    for t in ("EFFICACY", "SAFETY", "DOSE RESPONSE"):
        yield param("TTYPE", t, codelist="TTYPE")
    yield param("NARMS", str(len(p.arms)))
    yield param("PLANSUB", str(p.sample_size.total))
    yield param("ACTSUB", str(env.counts["randomised"]))
    yield param("AGEMIN", "P18Y")
    yield param("SEXPOP", "BOTH", codelist="SEXPOP")
    last = max((v.offset_days for v in p.schedule.visits if v.anchor == "transplant"), default=730)
    yield param("LENGTH", f"P{last}D")
    yield param("REGID", ctx.registry_number)
    yield param("FCNTRY", COUNTRY)
    yield param("INDIC", "Discogenic low back pain")
    yield param("TRT", _cut(p.product.name.en))
    yield param("COMPTRT", "Normal saline")
    yield param("SDTIGVER", SDTMIG)


_TSPARM = {"TITLE": "Trial Title", "TPHASE": "Trial Phase Classification", "STYPE": "Study Type",
           "TBLIND": "Trial Blinding Schema", "RANDOM": "Trial is Randomized", "PLANSUB": "Planned Number of Subjects",
           "NARMS": "Planned Number of Arms", "REGID": "Registry Identifier", "INTMODEL": "Intervention Model",
           "TCNTRL": "Control Type", "AGEMIN": "Planned Minimum Age of Subjects", "SEXPOP": "Sex of Participants",
           "LENGTH": "Trial Length", "SDTIGVER": "SDTM IG Version", "INDIC": "Trial Disease/Condition Indication",
           "TRT": "Investigational Therapy or Treatment", "COMPTRT": "Comparative Treatment Name",
           "ACTSUB": "Actual Number of Subjects", "TTYPE": "Trial Type",
           "FCNTRY": "Planned Country of Investigational Sites"}


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
    specs = domains(ctx.blinding)
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
            env.counts["treated"] += 1 if s.transplanted_at else 0
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

