"""Adverse-event tables (P-8.4) against counts and binom.test intervals computed in R
(tests/fixtures/stats/make_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annulus.stats import clopper_pearson, load_safety_tables, pooled_safety_table, safety_table
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())


@pytest.fixture(scope="module")
def tables():
    return load_safety_tables(STATS / "ae.csv", STATS / "subjects.csv")


@pytest.mark.req("P-8.4")
@pytest.mark.parametrize("case", REF["clopper_pearson"], ids=lambda c: f"{c['x']}of{c['n']}")
def test_clopper_pearson_matches_binom_test(case):
    lower, upper = clopper_pearson(case["x"], case["n"])
    assert lower == pytest.approx(case["lower"], abs=1e-12)
    assert upper == pytest.approx(case["upper"], abs=1e-12)


@pytest.mark.req("P-8.4")
def test_table_matches_r_by_arm_and_pooled(tables):
    table = safety_table(*tables).set_index(["arm", "category", "level"])
    for r in REF["safety"]["rows"]:
        row = table.loc[(r["arm"], r["category"], r["level"])]
        assert (row["events"], row["subjects"], row["n"]) == (r["events"], r["subjects"], r["n"]), r
        assert row["incidence"] == pytest.approx(r["subjects"] / r["n"])
        assert row["lower"] == pytest.approx(r["lower"], abs=1e-12)
        assert row["upper"] == pytest.approx(r["upper"], abs=1e-12)


@pytest.mark.req("P-8.4")
def test_pooled_variant_has_only_the_all_column(tables):
    pooled = pooled_safety_table(*tables)
    assert set(pooled["arm"]) == {"All"}
    ref = next(r for r in REF["safety"]["rows"] if r["arm"] == "All" and r["category"] == "any")
    any_row = pooled[pooled["category"] == "any"].iloc[0]
    assert (any_row["events"], any_row["subjects"], any_row["n"]) == (
        ref["events"], ref["subjects"], ref["n"])


@pytest.mark.req("P-8.4")
def test_terms_add_up_to_all_events(tables):
    table = safety_table(*tables)
    for arm, rows in table.groupby("arm"):
        terms = rows[rows["category"] == "term"]["events"].sum()
        assert terms == rows[(rows["category"] == "any")]["events"].iloc[0], arm


def test_arm_without_events_has_zero_incidence_and_a_one_sided_interval():
    events = pd.DataFrame({"subject": ["a1"], "grade": [1], "serious": [False], "related": [True],
                           "term": ["Fever"], "arm": ["A"]})
    subjects = pd.DataFrame({"subject": ["a1", "a2", "b1", "b2"], "arm": ["A", "A", "B", "B"]})
    t = safety_table(events, subjects).set_index(["arm", "category", "level"])
    b = t.loc[("B", "any", "any")]
    assert (b["events"], b["subjects"], b["incidence"], b["lower"]) == (0, 0, 0.0, 0.0)
    assert b["upper"] == pytest.approx(1 - 0.025 ** (1 / 2))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "ae_text, word",
    [
        ("subject,grade,serious,related,term\nS1,2,maybe,no,Fever\n", "serious"),
        ("subject,grade,serious,related,term\nS1,7,no,no,Fever\n", "grade"),
        ("subject,grade,serious,related,term\nS9,1,no,no,Fever\n", "S9"),
        ("subject,grade,serious,related\nS1,1,no,no\n", "term"),
        ("subject,arm,grade,serious,related,term\nS1,B,1,no,no,Fever\n", "arm"),
    ],
)
def test_bad_ae_tables_are_named(tmp_path, ae_text, word):
    subjects = write(tmp_path, "subjects.csv", "subject,arm\nS1,A\nS2,B\n")
    with pytest.raises(InputError, match=word):
        load_safety_tables(write(tmp_path, "ae.csv", ae_text), subjects)
