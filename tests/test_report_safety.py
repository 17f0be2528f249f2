"""The trial report's safety tables (X-8.5, P-8.4) from hand-made ADSL, ADAE and ADLB rows whose
counts are known: treatment-emergent events of the safety population, participants counted once,
the worst grade, and the laboratory shifts (normal at baseline, then high or low); the shift table
read from an ``adlb.csv`` file equals the one from rows."""

from __future__ import annotations

import csv

import pytest

from annulus.report import safety
from annulus.stats.safety_tables import clopper_pearson

pytestmark = [pytest.mark.req("X-8.5"), pytest.mark.req("P-8.4")]

ADSL = [
    {"USUBJID": "S1", "SAFFL": "Y", "TRT01P": "Placebo"},
    {"USUBJID": "S2", "SAFFL": "Y", "TRT01P": "Placebo"},
    {"USUBJID": "S3", "SAFFL": "Y", "TRT01P": "Dose"},
    {"USUBJID": "S4", "SAFFL": "Y", "TRT01P": "Dose"},
    {"USUBJID": "S5", "SAFFL": "N", "TRT01P": "Dose"},  # not treated: never counted
]
ARMS = ["Placebo", "Dose"]


def _ae(subject, *, emergent="Y", serious="N", related="NOT RELATED", grade="1", withdrew="N", death="N",
        term="Back pain"):
    return {"USUBJID": subject, "TRTEMFL": emergent, "AESER": serious, "AREL": related, "AETOXGR": grade,
            "AEWDFL": withdrew, "AESDTH": death, "AEDECOD": term, "AETERM": term, "AEBODSYS": ""}


ADAE = [
    _ae("S1"), _ae("S1", grade="3", serious="Y", term="Fever"),  # one participant, two events
    _ae("S3", related="RELATED"),
    _ae("S4", emergent=""),  # before the transplant: not treatment-emergent
    _ae("S5", grade="4"),  # outside the safety population
]


def _lb(subject, code, indicator, *, baseline=False):
    return {"USUBJID": subject, "PARAMCD": code, "PARAM": {"HGB": "Haemoglobin", "ALT": "ALT"}[code],
            "LBCAT": {"HGB": "Haematology", "ALT": "Chemistry"}[code], "ABLFL": "Y" if baseline else "",
            "ANRIND": indicator}


ADLB = [
    # S1: normal at baseline, high later
    _lb("S1", "HGB", "NORMAL", baseline=True), _lb("S1", "HGB", "NORMAL"), _lb("S1", "HGB", "HIGH"),
    # S2: normal at baseline, then both low and high
    _lb("S2", "HGB", "NORMAL", baseline=True), _lb("S2", "HGB", "LOW"), _lb("S2", "HGB", "HIGH"),
    # S3: high at baseline: not in the denominator
    _lb("S3", "HGB", "HIGH", baseline=True), _lb("S3", "HGB", "LOW"),
    # S4: normal at baseline but no post-baseline value: not in the denominator
    _lb("S4", "HGB", "NORMAL", baseline=True),
    # S5: outside the safety population
    _lb("S5", "HGB", "NORMAL", baseline=True), _lb("S5", "HGB", "HIGH"),
    # ALT, with cells as a person might type them: spaces and lower case
    {**_lb("S3", "ALT", " normal ", baseline=True), "ABLFL": "y"}, _lb("S3", "ALT", "low"),
    # the last baseline row is the baseline: S4 first high, then normal
    _lb("S4", "ALT", "HIGH", baseline=True), _lb("S4", "ALT", "NORMAL", baseline=True), _lb("S4", "ALT", "NORMAL"),
    _lb("S4", "ALT", ""),  # no indicator: not a post-baseline value
]


def _counts(cells):
    return [(c["n"], c["of"]) for c in cells]


def test_summary_counts_participants_once_and_only_emergent_events_of_the_safety_population():
    t = safety.tables(ADSL, ADAE, ADLB, arms=ARMS)
    assert [c["n"] for c in t["columns"]] == [2, 2, 4]  # placebo, dose, overall
    rows = {r["key"]: r["cells"] for r in t["summary"]}
    assert _counts(rows["any"]) == [(1, 2), (1, 2), (2, 4)]
    assert [c["events"] for c in rows["any"]] == [2, 1, 3]
    assert _counts(rows["serious"]) == [(1, 2), (0, 2), (1, 4)]
    assert _counts(rows["related"]) == [(0, 2), (1, 2), (1, 4)]
    assert _counts(rows["grade3"]) == [(1, 2), (0, 2), (1, 4)]
    lo, hi = clopper_pearson(2, 4, 0.95)
    assert rows["any"][2]["lower"] == pytest.approx(100 * lo) and rows["any"][2]["upper"] == pytest.approx(100 * hi)
    grades = {g["grade"]: _counts(g["cells"]) for g in t["by_grade"]}
    assert grades[3] == [(1, 2), (0, 2), (1, 4)] and grades[1] == [(0, 2), (1, 2), (1, 4)]


def test_lab_shifts_count_normal_at_baseline_then_high_or_low():
    shifts = {s["code"]: s for s in safety.tables(ADSL, ADAE, ADLB, arms=ARMS)["lab_shifts"]}
    assert list(shifts) == ["ALT", "HGB"]  # by category (Chemistry before Haematology), then name
    hgb = shifts["HGB"]
    assert hgb["label"] == "Haemoglobin" and hgb["category"] == "Haematology"
    assert _counts(hgb["high"]) == [(2, 2), (0, 0), (2, 2)]  # S1 and S2, both placebo
    assert _counts(hgb["low"]) == [(1, 2), (0, 0), (1, 2)]  # S2
    alt = shifts["ALT"]
    assert _counts(alt["low"]) == [(0, 0), (1, 2), (1, 2)]  # S3 (typed in lower case), S4 normal throughout
    assert _counts(alt["high"]) == [(0, 0), (0, 2), (0, 2)]  # S4's high baseline was replaced by its last


def test_the_blinded_table_has_the_pooled_column_only():
    t = safety.tables([{k: v for k, v in r.items() if k != "TRT01P"} for r in ADSL], ADAE, ADLB, arms=None)
    assert [c["arm"] for c in t["columns"]] == [None]
    assert _counts(next(s for s in t["lab_shifts"] if s["code"] == "HGB")["high"]) == [(2, 2)]


def test_the_shift_table_read_from_a_file_equals_the_one_from_rows(tmp_path):
    path = tmp_path / "adlb.csv"
    columns = ["STUDYID", *safety.LAB_COLUMNS, "AVAL"]
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:  # with the byte-order mark Excel's option writes
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        for r in ADLB:
            w.writerow({"STUDYID": "T", **r, "AVAL": "1.5"})
    frame = safety.read_lab(path)
    assert list(frame.columns) == list(safety.LAB_COLUMNS) and len(frame) == len(ADLB)
    columns_ = safety._columns(ADSL, ARMS)
    assert safety._lab_shifts(frame, columns_, 0.95) == safety._lab_shifts(ADLB, columns_, 0.95)
    assert safety._lab_shifts([], columns_, 0.95) == []
