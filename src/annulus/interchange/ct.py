"""The CDISC Controlled Terminology that the SDTM export writes, with NCIt codes (no Django).

Only the terms Annulus writes are here. Each was looked up in the published CDISC SDTM CT (NCI
EVS); ``tests/fixtures/cdisc_ct_subset.json`` records where each came from, and a test holds this
module and that fixture to the same values and codes. A code of ``None`` marks a term written as
SDTMIG 3.3 shows it whose NCIt code could not be confirmed from the source used.

``SPONSOR`` holds the sponsor-defined codelists (CDISC publishes no codelist for AEREL or
AETOXGR in SDTMIG 3.3; the study's own words are used).
"""

from __future__ import annotations

from typing import NamedTuple


class Codelist(NamedTuple):
    ncit: str  # the codelist's NCIt code ("" for a sponsor codelist)
    name: str
    extensible: bool
    terms: dict  # submission value -> NCIt code (None: unconfirmed)


CDISC: dict[str, Codelist] = {
    'SEX': Codelist('C66731', 'Sex', False, {
        'F': 'C16576', 'M': 'C20197',
    }),
    'AGEU': Codelist('C66781', 'Age Unit', False, {
        'YEARS': 'C29848',
    }),
    'NY': Codelist('C66742', 'No Yes Response', False, {
        'Y': 'C49488', 'N': 'C49487',
    }),
    'ARMNULRS': Codelist('C142179', 'Arm Null Reason', True, {
        'SCREEN FAILURE': 'C49628', 'NOT ASSIGNED': 'C142239', 'ASSIGNED, NOT TREATED': 'C142238',
    }),
    'DOMAIN': Codelist('C66734', 'SDTM Domain Abbreviation', True, {
        'DM': 'C49572', 'DS': 'C49576', 'SV': 'C49617', 'AE': 'C49562', 'EX': 'C49587', 'PR': 'C102700',
        'QS': 'C49609', 'VS': 'C49622', 'LB': 'C49592', 'MK': 'C102674', 'TS': 'C53483', 'TA': 'C49618',
        'TV': 'C49621', 'TE': 'C49619', 'TI': 'C49620',
    }),
    'DSCAT': Codelist('C74558', 'Category of Disposition Event', False, {
        'DISPOSITION EVENT': 'C74590', 'PROTOCOL MILESTONE': 'C74588',
    }),
    'NCOMPLT': Codelist('C66727', 'Completion/Reason for Non-Completion', True, {
        'COMPLETED': 'C25250', 'SCREEN FAILURE': 'C49628', 'WITHDRAWAL BY SUBJECT': 'C49634',
        'WITHDRAWAL OF CONSENT': 'C176342', 'ADVERSE EVENT': 'C41331', 'PHYSICIAN DECISION': 'C48250',
        'LOST TO FOLLOW-UP': 'C48227', 'OTHER': 'C17649', 'DEATH': 'C28554',
    }),
    'PROTMLST': Codelist('C114118', 'Protocol Milestone', True, {
        'INFORMED CONSENT OBTAINED': None, 'RANDOMIZED': None,
    }),
    'EPOCH': Codelist('C99079', 'Epoch', True, {
        'SCREENING': 'C48262', 'TREATMENT': 'C101526', 'FOLLOW-UP': 'C99158',
    }),
    'OUT': Codelist('C66768', 'Outcome of Event', False, {
        'RECOVERED/RESOLVED': 'C49498', 'RECOVERING/RESOLVING': 'C49496', 'NOT RECOVERED/NOT RESOLVED': 'C49494',
        'RECOVERED/RESOLVED WITH SEQUELAE': 'C49495', 'FATAL': 'C48275', 'UNKNOWN': 'C17998',
    }),
    'NRIND': Codelist('C78736', 'Reference Range Indicator', True, {
        'LOW': 'C78801', 'NORMAL': 'C78727', 'HIGH': 'C78800', 'ABNORMAL': 'C78802',
    }),
    'SPECTYPE': Codelist('C78734', 'Specimen Type', True, {
        'BLOOD': 'C12434', 'URINE': 'C13283', 'SERUM': 'C13325',
    }),
    'VSTESTCD': Codelist('C66741', 'Vital Signs Test Code', True, {
        'TEMP': 'C174446', 'PULSE': 'C49676', 'RESP': 'C49678', 'SYSBP': 'C25298', 'DIABP': 'C25299',
    }),
    'VSTEST': Codelist('C67153', 'Vital Signs Test Name', True, {
        'Temperature': 'C174446', 'Pulse Rate': 'C49676', 'Respiratory Rate': 'C49678',
        'Systolic Blood Pressure': 'C25298', 'Diastolic Blood Pressure': 'C25299',
    }),
    'VSRESU': Codelist('C66770', 'Units for Vital Signs Results', True, {
        'C': 'C42559', 'beats/min': 'C49673', 'breaths/min': 'C49674', 'mmHg': 'C49670',
    }),
    'LBTESTCD': Codelist('C65047', 'Laboratory Test Code', True, {
        'WBC': 'C51948', 'NEUT': 'C63321', 'HGB': 'C64848', 'PLAT': 'C51951', 'ALT': 'C64433', 'AST': 'C64467',
        'BILI': 'C38037', 'ALB': 'C64431', 'CREAT': 'C64547', 'UREA': 'C64815', 'CRP': 'C64548', 'ESR': 'C74611',
        'IGG': 'C81971', 'C3': 'C80174', 'PROT': 'C64858', 'GLUC': 'C105585', 'RBC': 'C51946',
    }),
    'LBTEST': Codelist('C67154', 'Laboratory Test Name', True, {
        'Leukocytes': 'C51948', 'Neutrophils': 'C63321', 'Hemoglobin': 'C64848', 'Platelets': 'C51951',
        'Alanine Aminotransferase': 'C64433', 'Aspartate Aminotransferase': 'C64467', 'Bilirubin': 'C38037',
        'Albumin': 'C64431', 'Creatinine': 'C64547', 'Urea': 'C64815', 'C Reactive Protein': 'C64548',
        'Erythrocyte Sedimentation Rate': 'C74611', 'Immunoglobulin G': 'C81971', 'Complement C3': 'C80174',
        'Protein': 'C64858', 'Glucose': 'C105585', 'Erythrocytes': 'C51946',
    }),
    'UNIT': Codelist('C71620', 'Unit', True, {
        '10^9/L': 'C67255', 'g/L': 'C42576', 'U/L': 'C67456', 'umol/L': 'C48508', 'mmol/L': 'C64387',
        'mg/L': 'C64572', 'mm/h': 'C67419', '10^6/L': 'C67452', 'mm': 'C28251', '%': 'C25613', 'C': 'C42559',
        'mL': 'C28254', 'deg': 'C68667', 'HOURS': 'C25529', 'YEARS': 'C29848', '10^6 Therapeutic Cells': 'C187973',
        'mmHg': 'C49670',
    }),
    'ROUTE': Codelist('C66729', 'Route of Administration Response', True, {
        'INTRADISCAL': 'C38239',
    }),
    'FRM': Codelist('C66726', 'Pharmaceutical Dosage Form', True, {
        'INJECTION, SUSPENSION': 'C42995',
    }),
    'LOC': Codelist('C74456', 'Anatomical Location', True, {
        'L4-L5 INTERVERTEBRAL SPACE': 'C142296', 'L3-L4 INTERVERTEBRAL SPACE': 'C112328',
        'L5-S1 INTERVERTEBRAL SPACE': 'C154781',
    }),
    'METHOD': Codelist('C85492', 'Method', True, {
        'MRI': 'C16809', 'X-RAY': 'C38101',
    }),
    'IECAT': Codelist('C66797', 'Category of Inclusion/Exclusion', False, {
        'INCLUSION': 'C25532', 'EXCLUSION': 'C25370',
    }),
    'TSPARMCD': Codelist('C66738', 'Trial Summary Parameter Test Code', True, {
        'TITLE': 'C49802', 'TPHASE': 'C48281', 'STYPE': 'C142175', 'TBLIND': 'C49658', 'RANDOM': 'C25196',
        'PLANSUB': 'C49692', 'NARMS': 'C98771', 'REGID': 'C98714', 'INTMODEL': 'C98746', 'TCNTRL': 'C49647',
        'AGEMIN': 'C49693', 'SEXPOP': 'C49696', 'LENGTH': 'C49697', 'SDTIGVER': 'C156604', 'INDIC': 'C112038',
        'TRT': 'C41161', 'COMPTRT': 'C68612', 'ACTSUB': 'C98703', 'TTYPE': 'C49660', 'ADDON': 'C49703',
        'FCNTRY': 'C98770', 'SSTDTC': 'C69208', 'RANDQT': None,
    }),
    'TSPARM': Codelist('C67152', 'Trial Summary Parameter Test Name', True, {
        'Trial Title': 'C49802', 'Trial Phase Classification': 'C48281', 'Study Type': 'C142175',
        'Trial Blinding Schema': 'C49658', 'Trial is Randomized': 'C25196', 'Planned Number of Subjects': 'C49692',
        'Planned Number of Arms': 'C98771', 'Registry Identifier': 'C98714', 'Intervention Model': 'C98746',
        'Control Type': 'C49647', 'Planned Minimum Age of Subjects': 'C49693', 'Sex of Participants': 'C49696',
        'Trial Length': 'C49697', 'SDTM IG Version': 'C156604', 'Trial Disease/Condition Indication': 'C112038',
        'Investigational Therapy or Treatment': 'C41161', 'Comparative Treatment Name': 'C68612',
        'Actual Number of Subjects': 'C98703', 'Trial Type': 'C49660', 'Added on to Existing Treatments': 'C49703',
        'Planned Country of Investigational Sites': 'C98770', 'Study Start Date': 'C69208',
        'Randomization Quotient': None,
    }),
    'TPHASE': Codelist('C66737', 'Trial Phase Response', True, {
        'PHASE II TRIAL': 'C15601',
    }),
    'TBLIND': Codelist('C66735', 'Trial Blinding Schema Response', True, {
        'DOUBLE BLIND': 'C15228',
    }),
    'INTMODEL': Codelist('C99076', 'Intervention Model Response', True, {
        'PARALLEL': 'C82639',
    }),
    'STYPE': Codelist('C99077', 'Study Type Response', False, {
        'INTERVENTIONAL': 'C98388',
    }),
    'TCNTRL': Codelist('C66785', 'Control Type Response', True, {
        'PLACEBO': 'C49648',
    }),
    'TTYPE': Codelist('C66739', 'Trial Type Response', True, {
        'EFFICACY': 'C49666', 'SAFETY': 'C49667', 'DOSE RESPONSE': 'C127803',
    }),
    'SEXPOP': Codelist('C66732', 'Sex of Participants Response', False, {
        'BOTH': 'C49636',
    }),
}

SPONSOR: dict[str, Codelist] = {
    "AEREL": Codelist("", "Causality (study product)", False,
                      {"NOT RELATED": None, "UNLIKELY RELATED": None, "POSSIBLY RELATED": None,
                       "PROBABLY RELATED": None, "DEFINITELY RELATED": None, "NOT APPLICABLE": None}),
    "TOXGR": Codelist("", "CTCAE grade", False, {"1": None, "2": None, "3": None, "4": None, "5": None}),
}

# a variable drawing on several CDISC codelists (DSDECOD: NCOMPLT for dispositions, PROTMLST for
# protocol milestones)
COMBINED = {"DSDECOD": ("NCOMPLT", "PROTMLST")}


def codelist(name: str) -> Codelist:
    if name in COMBINED:
        parts = [CDISC[p] for p in COMBINED[name]]
        terms = {k: v for part in parts for k, v in part.terms.items()}
        return Codelist("", " / ".join(p.name for p in parts), any(p.extensible for p in parts), terms)
    return CDISC.get(name) or SPONSOR[name]


def code(name: str, value: str) -> str | None:
    """The NCIt code of ``value`` in codelist ``name`` (``KeyError`` when the value is not in it)."""
    return codelist(name).terms[value]


def term(name: str, value: str) -> str:
    """``value`` itself, after checking it is a term of codelist ``name`` (a typo fails loudly)."""
    if value not in codelist(name).terms:
        raise KeyError(f"{value!r} is not a term of codelist {name}")
    return value
