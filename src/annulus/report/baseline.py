"""Table 1: demographics and baseline scores by arm and overall, from ADSL (no Django).

``table(adsl_rows, arms=..., language=...)`` returns a ``Table``: its columns (one per arm in the
order of ``arms``, then "Overall"; the blinded report, ``arms=None``, has the overall column only
and never reads ``TRT01P``) and its rows, each a label and one formatted cell per column, that a
template renders as they are.

Population: the participants with ``population`` = "Y" (``ITTFL`` by default: everyone randomised).

Variables (``variables_for(protocol)``; the ADSL columns of ``annulus.interchange.adam``): age, sex,
the duration of low back pain after conservative treatment (``PAINDUR``, months, from the
screening evidence), then the baseline of each efficacy parameter of the protocol, named as the
instruments library names it (``annulus.instruments.results.PARAMETERS``: for the first trial the
baseline VAS, ODI, JOA, SF-36 PCS and MCS, and the baseline imaging of the L4-5 disc: Pfirrmann
grade (``BASEPFIR``) and Modic type of the worse endplate (``BASEMODI``) as categories, disc height
loss (``BASEDHT``, %) and segmental range of motion (``BASEROM``, degrees)) or as the protocol
declares it (``analysis.parameters``: its ``name``). ``VARIABLES`` are those of every parameter
the library gives. Height, weight and BMI
are not collected by the trial's forms, so the table has no BMI row. A variable whose column is in
none of the rows (an ADSL written before the column existed) is left out of the table rather
than shown as all missing.

Continuous variables (age, pain duration, the baseline scores, disc height loss and range of
motion): one row with the summary, then a row "n" (participants with a value) and a row
"Missing" (without). The summary is

- **median (Q1, Q3)** when the Shapiro-Wilk test of the variable's values in the whole population
  (all arms pooled) gives p < 0.05 (at least 3 values, not all equal),
- **mean (SD)** otherwise,

chosen once per variable on the pooled values, so that every column of a row shows the same
statistic and the blinded and unblinded tables agree. SD is the sample SD (n - 1); quartiles are
those of R's default (type 7, numpy's "linear"). Each variable has its number of decimals
(``Variable.decimals``), used for the mean, SD, median and quartiles alike, halves rounded away
from zero (``fmt``); a statistic that does not exist (no value, or the SD of one value) is shown
as "—".

Categorical variables (sex, Pfirrmann grade, Modic type): a row with the variable, a row per
category "n (%)", and a row "Missing". Percentages are of the participants with a value in that column (missing excluded),
with ``PERCENT_DECIMALS`` decimals; every category of the variable is listed even when its count
is 0, in the variable's order (the grades and types the inclusion criteria admit: Pfirrmann 3-5,
Modic I-II), then any other code found, in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from annulus.instruments.results import PARAMETERS as LIBRARY_PARAMETERS
from annulus.report.adsl import flag, number, split_arms, text

PERCENT_DECIMALS = 1
NOT_AVAILABLE = "—"
SHAPIRO_ALPHA = 0.05


@dataclass(frozen=True)
class Variable:
    column: str  # the ADSL column
    label: str  # the key of its name in LABELS
    kind: str = "continuous"  # "continuous" | "categorical"
    decimals: int = 1
    categories: tuple[str, ...] = ()  # codes, in the order shown; their names are LABELS[f"{label}_{code}"]
    name: object = None  # the name in each language (``get(language)``) when LABELS has none


def _parameter_variable(p) -> Variable:
    """The baseline of an efficacy parameter (``annulus.interchange.adam.Param`` or the instruments
    library's ``Parameter``): its ADSL column, its name from the library (``table_name``) or the
    protocol's declaration (``name``); a categorical one's categories are named in ``LABELS`` under
    its lower-case code."""
    name = getattr(p, "table_name", None) or getattr(p, "name", None)
    return Variable(p.baseline_column, p.code.lower(), getattr(p, "kind", "continuous"), decimals=1,
                    categories=tuple(getattr(p, "categories", ()) or ()), name=name)


DEMOGRAPHICS: tuple[Variable, ...] = (
    Variable("AGE", "age", decimals=1),
    Variable("SEX", "sex", "categorical", categories=("F", "M")),
    Variable("PAINDUR", "pain_duration", decimals=1),
)

# the demographics, then the baseline of each parameter the instruments library's results give
VARIABLES: tuple[Variable, ...] = DEMOGRAPHICS + tuple(_parameter_variable(p) for p in LIBRARY_PARAMETERS)


def variables_for(protocol) -> tuple[Variable, ...]:
    """``DEMOGRAPHICS`` and the baseline of each efficacy parameter of the protocol's analysis
    datasets (``annulus.interchange.adam.params_for``: those of its forms' instruments, then those
    ``analysis.parameters`` declares), in their order."""
    from annulus.interchange.adam import params_for

    return DEMOGRAPHICS + tuple(_parameter_variable(p) for p in params_for(protocol) if p.baseline_column)


LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Baseline characteristics",
        "overall": "Overall",
        "characteristic": "Characteristic",
        "age": "Age (years)",
        "sex": "Sex",
        "sex_F": "Female",
        "sex_M": "Male",
        "pain_duration": "Duration of low back pain after conservative treatment (months)",
        "pfirrm_1": "Grade I",
        "pfirrm_2": "Grade II",
        "pfirrm_3": "Grade III",
        "pfirrm_4": "Grade IV",
        "pfirrm_5": "Grade V",
        "modic_0": "None",
        "modic_1": "Type I",
        "modic_2": "Type II",
        "modic_3": "Type III",
        "mean_sd": "{label}, mean (SD)",
        "median_iqr": "{label}, median (Q1, Q3)",
        "count_pct": "{label}, n (%)",
        "n": "n",
        "missing": "Missing",
        "group": "Group {x}",
        "population_ITTFL": "Intention-to-treat population (all randomised participants)",
        "population_SAFFL": "Safety population (participants who received the product)",
        "population_PPROTFL": "Per-protocol population",
        "population": "Participants with {flag} = Y",
        "note_rule": ("Continuous variables: median (Q1, Q3) when the Shapiro-Wilk test over all participants "
                      "gives p < 0.05, otherwise mean (SD)."),
        "note_percent": "Percentages are of the participants with a value (missing excluded).",
    },
    "zh": {
        "title": "基线特征",
        "overall": "合计",
        "characteristic": "特征",
        "age": "年龄（岁）",
        "sex": "性别",
        "sex_F": "女",
        "sex_M": "男",
        "pain_duration": "保守治疗后腰痛持续时间（月）",
        "pfirrm_1": "I级",
        "pfirrm_2": "II级",
        "pfirrm_3": "III级",
        "pfirrm_4": "IV级",
        "pfirrm_5": "V级",
        "modic_0": "无",
        "modic_1": "I型",
        "modic_2": "II型",
        "modic_3": "III型",
        "mean_sd": "{label}，均值（标准差）",
        "median_iqr": "{label}，中位数（Q1, Q3）",
        "count_pct": "{label}，n（%）",
        "n": "n",
        "missing": "缺失",
        "group": "{x}组",
        "population_ITTFL": "意向性治疗人群（全部随机化受试者）",
        "population_SAFFL": "安全性人群（接受移植的受试者）",
        "population_PPROTFL": "符合方案人群",
        "population": "{flag} = Y的受试者",
        "note_rule": "连续变量：全体受试者Shapiro-Wilk检验p < 0.05时以中位数（Q1, Q3）描述，否则以均值（标准差）描述。",
        "note_percent": "百分比的分母为该变量有数据的受试者（不含缺失）。",
    },
}


@dataclass(frozen=True)
class Column:
    arm: str | None  # the TRT01P value; None for the overall column
    label: str
    n: int  # participants of the population in the column


@dataclass(frozen=True)
class Row:
    kind: str  # "summary" | "variable" | "category" | "n" | "missing"
    variable: str  # the ADSL column
    label: str
    level: int  # 0: a variable's first row; 1: a row under it
    statistic: str  # "mean_sd" | "median_iqr" | "count_pct" | "count" | ""
    cells: tuple[str, ...]  # one per column, formatted
    values: tuple[tuple[float, ...], ...]  # per column the unformatted numbers of the cell (may be empty)


@dataclass(frozen=True)
class Table:
    title: str
    population: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def fmt(x: float | None, decimals: int) -> str:
    """``x`` with ``decimals`` fixed decimals, halves rounded away from zero as SAS and most
    published tables do (of the number as Python prints it: 38.75 -> "38.8", 2.675 -> "2.68");
    "—" for None or NaN; never "-0.0"."""
    if x is None or x != x:
        return NOT_AVAILABLE
    q = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    s = f"{q:f}"
    return s[1:] if s.startswith("-") and q == 0 else s


def summary_statistic(values: Sequence[float]) -> str:
    """"median_iqr" when Shapiro-Wilk gives p < 0.05 (3 values or more, not all equal), else
    "mean_sd"."""
    from scipy import stats  # on use: importing the report stays quick

    x = np.asarray(values, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return "mean_sd"
    return "median_iqr" if float(stats.shapiro(x).pvalue) < SHAPIRO_ALPHA else "mean_sd"


def _summary(values: list[float], statistic: str, decimals: int) -> tuple[str, tuple[float, ...]]:
    if not values:
        return NOT_AVAILABLE, ()
    x = np.asarray(values, dtype=float)
    if statistic == "median_iqr":
        q1, med, q3 = (float(v) for v in np.percentile(x, [25, 50, 75]))
        return f"{fmt(med, decimals)} ({fmt(q1, decimals)}, {fmt(q3, decimals)})", (med, q1, q3)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else None
    return f"{fmt(mean, decimals)} ({fmt(sd, decimals)})", (mean,) if sd is None else (mean, sd)


def _count(k: int, of: int) -> tuple[str, tuple[float, ...]]:
    if of == 0:
        return str(k), (float(k),)
    pct = 100.0 * k / of
    return f"{k} ({fmt(pct, PERCENT_DECIMALS)})", (float(k), pct)


def _words(language: str) -> dict[str, str]:
    lang = (language or "en").lower()
    if lang.startswith("zh"):
        return LABELS["zh"]
    if lang.startswith("en"):
        return LABELS["en"]
    raise ValueError(f"language {language!r} is not one of {sorted(LABELS)}")


def _arm_label(arm: str, w: Mapping[str, str], arm_names: Mapping[str, str]) -> str:
    if arm in arm_names:
        return arm_names[arm]
    if arm.startswith("Group ") and len(arm) == 7 and arm[-1].isupper():
        return w["group"].format(x=arm[-1])
    return arm


def table(adsl_rows: Iterable[Mapping], *, arms: Sequence[str] | None, language: str = "en",
          population: str = "ITTFL", variables: Sequence[Variable] = VARIABLES,
          arm_names: Mapping[str, str] | None = None) -> Table:
    """Table 1 of the participants with ``population`` = "Y": one column per arm of ``arms`` (by
    ``TRT01P``) then "Overall", or the overall column only when ``arms`` is None (blinded)."""
    w = _words(language)
    arm_names = arm_names or {}
    rows = list(adsl_rows)
    groups = [] if arms is None else split_arms(rows, arms, lambda r: flag(r, population))
    overall = [r for r in rows if flag(r, population)]
    groups = [*groups, (None, overall)]
    columns = tuple(Column(arm, w["overall"] if arm is None else _arm_label(arm, w, arm_names), len(members))
                    for arm, members in groups)
    out: list[Row] = []
    for v in variables:
        if not any(v.column in r for r in rows):
            continue  # an ADSL without the column: not collected when it was written
        name = v.name.get(language) if v.name is not None else w[v.label]
        if v.kind == "continuous":
            per_col = [[x for x in (number(r, v.column) for r in members) if x is not None] for _, members in groups]
            statistic = summary_statistic(per_col[-1])
            cells = [_summary(vals, statistic, v.decimals) for vals in per_col]
            out.append(Row("summary", v.column, w[statistic].format(label=name), 0, statistic,
                           tuple(c for c, _ in cells), tuple(x for _, x in cells)))
            out.append(Row("n", v.column, w["n"], 1, "count", tuple(str(len(vals)) for vals in per_col),
                           tuple((float(len(vals)),) for vals in per_col)))
            missing = [len(members) - len(vals) for (_, members), vals in zip(groups, per_col)]
        elif v.kind == "categorical":
            per_col = [[text(r, v.column) for r in members] for _, members in groups]
            out.append(Row("variable", v.column, w["count_pct"].format(label=name), 0, "",
                           tuple("" for _ in groups), tuple(() for _ in groups)))
            known = [[c for c in codes if c] for codes in per_col]
            extra = sorted({c for codes in known for c in codes} - set(v.categories))
            for code in (*v.categories, *extra):
                cells = [_count(codes.count(code), len(codes)) for codes in known]
                out.append(Row("category", v.column, w.get(f"{v.label}_{code}", code), 1, "count_pct",
                               tuple(c for c, _ in cells), tuple(x for _, x in cells)))
            missing = [len(codes) - len(k) for codes, k in zip(per_col, known)]
        else:
            raise ValueError(f"variable {v.column} has kind {v.kind!r}, not continuous or categorical")
        out.append(Row("missing", v.column, w["missing"], 1, "count", tuple(str(m) for m in missing),
                       tuple((float(m),) for m in missing)))
    pop = w.get(f"population_{population}") or w["population"].format(flag=population)
    return Table(title=w["title"], population=pop, columns=columns, rows=tuple(out),
                 notes=(w["note_rule"], w["note_percent"]))
