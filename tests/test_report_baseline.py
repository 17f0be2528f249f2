"""Table 1 of the trial report (X-8.5): demographics and baseline scores by arm and overall, from
ADSL alone. Every number is held against numpy and the statistics module computed here on the same
rows; the summary (mean (SD) or median (Q1, Q3)) follows the stated Shapiro-Wilk rule; the blinded
table has the overall column only and is the same whatever the arms in the data."""

from __future__ import annotations

import random
import statistics
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from scipy import stats

from annulus.report import adsl as adsl_io
from annulus.report import baseline

pytestmark = pytest.mark.req("X-8.5")

ARMS = ["Group A", "Group B", "Group C", "Group D"]
CONTINUOUS = ["AGE", "PAINDUR", "BASEVAS", "BASEODI", "BASEJOA", "BASEPCS", "BASEMCS", "BASEDHT", "BASEROM"]


@pytest.fixture
def rows(fixtures_dir):
    return adsl_io.read(fixtures_dir / "report" / "adsl_flow.csv")


def _half_up(x: float, d: int) -> str:
    return str(Decimal(str(x)).quantize(Decimal(1) / Decimal(10) ** d, rounding=ROUND_HALF_UP))


def _columns(rows, population="ITTFL"):
    pop = [r for r in rows if r[population] == "Y"]
    return [[r for r in pop if r["TRT01P"] == a] for a in ARMS] + [pop]


def _rows_of(table, column):
    return {r.kind if r.kind != "category" else r.label: r for r in table.rows if r.variable == column}


def test_continuous_variables_match_numpy_and_statistics(rows):
    table = baseline.table(rows, arms=ARMS)
    assert [(c.label, c.n) for c in table.columns] == [("Group A", 5), ("Group B", 4), ("Group C", 4),
                                                       ("Group D", 5), ("Overall", 18)]
    columns = _columns(rows)
    for col in CONTINUOUS:
        values = [[float(r[col]) for r in members if r[col] != ""] for members in columns]
        missing = [sum(r[col] == "" for r in members) for members in columns]
        skewed = stats.shapiro(values[-1]).pvalue < 0.05
        got = _rows_of(table, col)
        summary = got["summary"]
        assert summary.statistic == ("median_iqr" if skewed else "mean_sd")
        d = next(v.decimals for v in baseline.VARIABLES if v.column == col)
        for cell, raw, vals in zip(summary.cells, summary.values, values):
            if skewed:
                q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")  # R type 7
                med = statistics.median(vals)
                assert cell == f"{_half_up(med, d)} ({_half_up(q1, d)}, {_half_up(q3, d)})"
                assert raw == pytest.approx((np.median(vals), *np.percentile(vals, [25, 75])))
            else:
                mean, sd = statistics.mean(vals), statistics.stdev(vals)
                assert cell == f"{_half_up(mean, d)} ({_half_up(sd, d)})"
                assert raw == pytest.approx((np.mean(vals), np.std(vals, ddof=1)))
        assert got["n"].cells == tuple(str(len(v)) for v in values)
        assert got["missing"].cells == tuple(str(m) for m in missing)
        assert summary.label.endswith("median (Q1, Q3)" if skewed else "mean (SD)")
    # the data were made so that the rule goes both ways: ODI skewed, VAS not
    assert _rows_of(table, "BASEODI")["summary"].statistic == "median_iqr"
    assert _rows_of(table, "BASEVAS")["summary"].statistic == "mean_sd"
    # missing values where the fixture has them: age in C, VAS and PCS in B
    assert _rows_of(table, "AGE")["missing"].cells == ("0", "0", "1", "0", "1")
    assert _rows_of(table, "BASEVAS")["missing"].cells == ("0", "1", "0", "0", "1")
    assert _rows_of(table, "BASEPCS")["missing"].cells == ("0", "1", "0", "0", "1")


def test_sex_counts_and_percentages_of_those_with_a_value(rows):
    table = baseline.table(rows, arms=ARMS)
    got = _rows_of(table, "SEX")
    assert got["variable"].label == "Sex, n (%)" and got["variable"].cells == ("",) * 5
    for members, female, male, missing in zip(_columns(rows), got["Female"].cells, got["Male"].cells,
                                              got["missing"].cells):
        known = [r["SEX"] for r in members if r["SEX"]]
        for code, cell in (("F", female), ("M", male)):
            k = known.count(code)
            assert cell == f"{k} ({_half_up(100 * k / len(known), 1)})"
        assert missing == str(len(members) - len(known))
    assert got["Female"].cells == ("3 (60.0)", "1 (33.3)", "2 (50.0)", "3 (60.0)", "9 (52.9)")
    assert got["missing"].cells == ("0", "1", "0", "0", "1")
    # row order: variable, its categories, missing; continuous: summary, n, missing
    assert [(r.kind, r.level) for r in table.rows[:6]] == [("summary", 0), ("n", 1), ("missing", 1),
                                                           ("variable", 0), ("category", 1), ("category", 1)]


def test_baseline_imaging_grades_are_categories_with_codes_outside_the_criteria_after_them(rows):
    table = baseline.table(rows, arms=ARMS)
    columns = _columns(rows)
    for column, name, codes, words in (
            ("BASEPFIR", "Pfirrmann grade of L4-5, n (%)", ["3", "4", "5", "2"],
             ["Grade III", "Grade IV", "Grade V", "Grade II"]),
            ("BASEMODI", "Modic change of L4-5 (worse endplate), n (%)", ["1", "2", "0"],
             ["Type I", "Type II", "None"])):
        got = [r for r in table.rows if r.variable == column]
        assert got[0].label == name and got[0].kind == "variable"
        # the categories the inclusion criteria admit, then the code found outside them (R17, not eligible)
        assert [r.label for r in got[1:-1]] == words
        for row, code in zip(got[1:-1], codes):
            for cell, members in zip(row.cells, columns):
                known = [r[column] for r in members if r[column]]
                k = known.count(code)
                assert cell == f"{k} ({_half_up(100 * k / len(known), 1)})", (column, code)
        assert got[-1].cells == tuple(str(sum(r[column] == "" for r in members)) for members in columns)
    pf = _rows_of(table, "BASEPFIR")
    assert pf["Grade IV"].cells == ("3 (60.0)", "2 (50.0)", "2 (66.7)", "2 (40.0)", "9 (52.9)")
    assert pf["Grade II"].cells == ("0 (0.0)", "0 (0.0)", "0 (0.0)", "1 (20.0)", "1 (5.9)")
    assert pf["missing"].cells == ("0", "0", "1", "0", "1")  # R13
    assert _rows_of(table, "BASEMODI")["missing"].cells == ("0", "0", "0", "1", "1")  # R14
    # the pain duration, disc height and range of motion have their gaps where the fixture has them
    assert _rows_of(table, "PAINDUR")["missing"].cells == ("0", "1", "0", "0", "1")  # R09
    assert _rows_of(table, "BASEDHT")["missing"].cells == ("0", "0", "0", "1", "1")  # R16
    assert _rows_of(table, "BASEROM")["missing"].cells == ("1", "0", "1", "0", "2")  # R04, R13
    assert _rows_of(table, "PAINDUR")["summary"].label.startswith(
        "Duration of low back pain after conservative treatment (months), ")
    # the rows in the order of VARIABLES, each variable once
    order = list(dict.fromkeys(r.variable for r in table.rows))
    assert order == [v.column for v in baseline.VARIABLES] == [
        "AGE", "SEX", "PAINDUR", "BASEVAS", "BASEODI", "BASEJOA", "BASEPCS", "BASEMCS", "BASEPFIR", "BASEMODI",
        "BASEDHT", "BASEROM"]
    zh = baseline.table(rows, arms=None, language="zh")
    assert {"L4-5椎间盘Pfirrmann分级，n（%）", "IV级", "II型"} <= {r.label for r in zh.rows}


def test_a_column_the_adsl_does_not_have_is_left_out(rows):
    """An ADSL written before the imaging and pain-duration columns existed: those rows are not
    shown (rather than as all missing); the other rows are as before."""
    new = {"PAINDUR", "PAINDURU", "BASEPFIR", "BASEMODI", "BASEDHT", "BASEROM"}
    older = [{k: v for k, v in r.items() if k not in new} for r in rows]
    table = baseline.table(older, arms=ARMS)
    assert list(dict.fromkeys(r.variable for r in table.rows)) == ["AGE", "SEX", "BASEVAS", "BASEODI", "BASEJOA",
                                                                  "BASEPCS", "BASEMCS"]
    full = baseline.table(rows, arms=ARMS)
    assert [r for r in full.rows if r.variable not in new] == list(table.rows)


def test_blinded_table_is_the_overall_column_whatever_the_arms(rows):
    by_arm = baseline.table(rows, arms=ARMS)
    blinded = baseline.table(rows, arms=None)
    assert [(c.arm, c.label, c.n) for c in blinded.columns] == [(None, "Overall", 18)]
    assert [(r.label, r.cells) for r in blinded.rows] == [(r.label, r.cells[-1:]) for r in by_arm.rows]
    rng = random.Random(3)
    for _ in range(4):
        labels = [r["TRT01P"] for r in rows]
        rng.shuffle(labels)
        assert baseline.table([{**r, "TRT01P": t} for r, t in zip(rows, labels)], arms=None) == blinded
    assert baseline.table([{k: v for k, v in r.items() if k != "TRT01P"} for r in rows], arms=None) == blinded


def test_other_population_language_and_names(rows):
    safety = baseline.table(rows, arms=ARMS, population="SAFFL", language="zh",
                            arm_names={"Group D": "高剂量组"})
    assert [(c.label, c.n) for c in safety.columns] == [("A组", 4), ("B组", 4), ("C组", 3), ("高剂量组", 5), ("合计", 16)]
    assert safety.title == "基线特征" and safety.population.startswith("安全性人群")
    labels = [r.label for r in safety.rows]
    assert "年龄（岁），均值（标准差）" in labels and "女" in labels and "缺失" in labels
    assert any("Shapiro-Wilk" in n for n in safety.notes)
    assert list(baseline.table(rows, arms=None).as_dict()["columns"]) == [{"arm": None, "label": "Overall", "n": 18}]


def test_number_formatting_and_edge_cases():
    fmt = baseline.fmt
    assert [fmt(x, 1) for x in (38.75, 22.25, -0.04, -0.05, 12)] == ["38.8", "22.3", "0.0", "-0.1", "12.0"]
    assert fmt(2.675, 2) == "2.68" and fmt(0.5, 0) == "1" and fmt(None, 1) == "—" and fmt(float("nan"), 1) == "—"
    assert baseline.summary_statistic([1.0, 2.0]) == "mean_sd"  # too few for Shapiro-Wilk
    assert baseline.summary_statistic([5.0] * 10) == "mean_sd"  # all equal
    skewed = [1.0] * 12 + [2.0, 3.0, 50.0, 90.0]
    assert stats.shapiro(skewed).pvalue < 0.05 and baseline.summary_statistic(skewed) == "median_iqr"
    rows = [{"USUBJID": "X1", "ITTFL": "Y", "TRT01P": "Group A", "AGE": "40", "SEX": "F", "BASEVAS": ""},
            {"USUBJID": "X2", "ITTFL": "Y", "TRT01P": "Group B", "AGE": "50", "SEX": "U", "BASEVAS": ""}]
    table = baseline.table(rows, arms=["Group A", "Group B"])
    got = {(r.variable, r.label): r.cells for r in table.rows}
    assert got[("AGE", "Age (years), mean (SD)")] == ("40.0 (—)", "50.0 (—)", "45.0 (7.1)")  # SD of one value
    assert got[("BASEVAS", "VAS pain (mm), mean (SD)")] == ("—", "—", "—")  # no value at all
    assert got[("BASEVAS", "Missing")] == ("1", "1", "2")
    # a code outside the variable's categories is listed after them, as it is
    assert got[("SEX", "Female")] == ("1 (100.0)", "0 (0.0)", "1 (50.0)")
    assert got[("SEX", "U")] == ("0 (0.0)", "1 (100.0)", "1 (50.0)")


def test_bad_values_are_refused_naming_them(rows):
    bad = [{**r, "BASEVAS": "abc"} if r["USUBJID"] == "R02" else r for r in rows]
    with pytest.raises(ValueError, match=r"BASEVAS of R02 is 'abc', not a number"):
        baseline.table(bad, arms=None)
    bad = [{**r, "AGE": "inf"} if r["USUBJID"] == "R03" else r for r in rows]
    with pytest.raises(ValueError, match=r"AGE of R03 is 'inf', not a finite number"):
        baseline.table(bad, arms=None)
    with pytest.raises(ValueError, match=r"TRT01P of R10 is 'Group C', not one of"):
        baseline.table(rows, arms=["Group A", "Group B", "Group D"])
    with pytest.raises(ValueError, match="language"):
        baseline.table(rows, arms=None, language="de")
