"""Sample size and power with one-sided tests and unequal allocation (P-8.1), against R
(``power.t.test``, ``pwr::pwr.t2n.test`` and the closed-form normal approximation), stored by
tests/fixtures/stats/samplesize_r.R in samplesize_r.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.stats import achieved_power, power_t, power_z, sample_size
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "samplesize_r.json").read_text())
CASES = REF["cases"]


def _id(c: dict) -> str:
    return f"d{c['delta']}-sd{c['sd']}-a{c['alpha']}-p{c['power']}-k{c['ratio']}-{c['alternative']}"


def _args(c: dict) -> dict:
    return {"delta": c["delta"], "sd": c["sd"], "alpha": c["alpha"], "power": c["power"],
            "alternative": c["alternative"], "ratio": c["ratio"]}


def test_the_grid_covers_both_alternatives_and_unequal_allocation():
    assert {c["alternative"] for c in CASES} == {"two-sided", "one-sided"}
    assert {c["ratio"] for c in CASES} >= {1, 2, 0.5, 1.5}
    assert len({(c["delta"], c["sd"], c["alpha"], c["power"]) for c in CASES}) >= 8
    assert REF["r_version"].startswith("R version") and REF["pwr_version"]


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("c", CASES, ids=_id)
def test_z_sample_size_matches_the_closed_form_in_r(c):
    r = sample_size(**_args(c), method="z")
    assert (r.control_before_dropout, r.treatment_before_dropout) == (c["z_control"], c["z_treatment"])
    assert r.total == c["z_control"] + c["z_treatment"]
    assert r.achieved_power == pytest.approx(c["z_power"], abs=1e-12)
    assert r.achieved_power >= c["power"]


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("c", CASES, ids=_id)
def test_t_sample_size_matches_r_pwr_t2n_test(c):
    r = sample_size(**_args(c), method="t")
    assert (r.control_before_dropout, r.treatment_before_dropout) == (c["t_control"], c["t_treatment"])
    assert r.achieved_power == pytest.approx(c["t_power"], abs=1e-8)
    # R's power one control subject fewer is below the target: the answer is the smallest
    assert c["t_power_one_less"] < c["power"] <= c["t_power"]
    if c["ratio"] == 1:
        # R power.t.test solves for a fractional n; the sample size is the next whole number
        assert r.per_group_before_dropout == math.ceil(c["power_t_test_n"])
        assert r.achieved_power == pytest.approx(c["power_t_test_power"], abs=1e-8)
    else:
        assert r.per_group is None and r.per_group_before_dropout is None


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("c", CASES, ids=_id)
def test_achieved_power_at_fixed_sizes_matches_r(c):
    for at in c["power_at_n"]:
        for method in ("z", "t"):
            r = achieved_power(at["control"], c["delta"], c["sd"], c["alpha"], method=method,
                               alternative=c["alternative"], ratio=c["ratio"])
            assert (r.control, r.treatment) == (at["control"], at["treatment"])
            assert r.power == pytest.approx(at[method], abs=1e-8), method


@pytest.mark.req("P-8.1")
def test_power_functions_take_unequal_sizes_and_one_sided_tests():
    c = next(c for c in CASES if c["ratio"] == 2 and c["alternative"] == "one-sided")
    at = c["power_at_n"][1]
    assert power_t(at["control"], c["delta"], c["sd"], c["alpha"], n2=at["treatment"],
                   alternative="one-sided") == pytest.approx(at["t"], abs=1e-8)
    assert power_z(at["control"], c["delta"], c["sd"], c["alpha"], n2=at["treatment"],
                   alternative="one.sided") == pytest.approx(at["z"], abs=1e-12)


def test_defaults_are_unchanged_two_sided_equal_allocation():
    # The protocol's figures (25 per group, 100 in total) with the new options at their defaults.
    a = sample_size(10.6, 10.27, power=0.9, dropout=0.2, groups=4)
    b = sample_size(10.6, 10.27, power=0.9, dropout=0.2, groups=4, alternative="two-sided", ratio=1)
    assert a == b
    assert (a.per_group, a.total, a.control, a.treatment) == (25, 100, 25, 25)


def test_one_sided_at_half_alpha_is_the_two_sided_z_size():
    # z_{1-0.025} is z_{1-0.05/2}: the closed forms coincide (exact arithmetic on the formula).
    for ratio in (1, 2, 0.5):
        one = sample_size(10.6, 10.27, alpha=0.025, alternative="one-sided", ratio=ratio)
        two = sample_size(10.6, 10.27, alpha=0.05, ratio=ratio)
        assert (one.control, one.treatment) == (two.control, two.treatment)


@pytest.mark.req("P-8.1")
def test_unequal_allocation_with_dropout_and_several_groups():
    c = next(c for c in CASES if c["ratio"] == 2 and c["alternative"] == "two-sided"
             and c["delta"] == 10.6 and c["sd"] == 10.27 and c["alpha"] == 0.05 and c["power"] == 0.9)
    r = sample_size(**_args(c), method="t", dropout=0.2, groups=4)
    assert (r.control_before_dropout, r.treatment_before_dropout) == (c["t_control"], c["t_treatment"])
    assert r.control == math.ceil(c["t_control"] / 0.8)
    assert r.treatment == math.ceil(c["t_treatment"] / 0.8)
    assert r.total == r.control + 3 * r.treatment
    # 25 control enrolled with 20 % dropout: 20 and 40 evaluable
    p = achieved_power(25, c["delta"], c["sd"], dropout=0.2, method="t", ratio=2)
    assert (p.control, p.treatment, p.evaluable_control, p.evaluable_treatment) == (25, 50, 20, 40)
    assert p.per_group is None and p.evaluable_per_group is None


@pytest.mark.parametrize("kwargs, word", [
    ({"ratio": 0}, "ratio"), ({"ratio": -2}, "ratio"), ({"ratio": float("inf")}, "ratio"),
    ({"ratio": "2"}, "ratio"), ({"alternative": "greater"}, "alternative"),
    ({"alternative": "one-sided", "power": 0.01, "alpha": 0.05}, "power must exceed alpha"),
])
def test_bad_options_are_named(kwargs, word):
    with pytest.raises(InputError, match=word):
        sample_size(**{"delta": 10.6, "sd": 10.27, **kwargs})


# --- command line ---------------------------------------------------------------------------

def _run(capsys, *argv):
    code = main(["samplesize", "--delta", "10.6", "--sd", "10.27", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("P-8.1")
def test_cli_ratio_gives_both_groups_and_the_total(capsys):
    c = next(c for c in CASES if c["ratio"] == 2 and c["alternative"] == "two-sided"
             and c["delta"] == 10.6 and c["sd"] == 10.27 and c["alpha"] == 0.05 and c["power"] == 0.9)
    for ratio in ("2", "2:1"):
        code, out, _ = _run(capsys, "--ratio", ratio, "--method", "t", "--json")
        doc = json.loads(out)
        assert code == 0
        assert (doc["control"], doc["treatment"], doc["total"]) == (
            c["t_control"], c["t_treatment"], c["t_control"] + c["t_treatment"])
        assert doc["per_group"] is None and doc["ratio"] == 2
    code, out, _ = _run(capsys, "--ratio", "2", "--method", "t")
    assert code == 0
    assert f"control before dropout    {c['t_control']}" in out
    assert f"treatment before dropout  {c['t_treatment']}" in out


@pytest.mark.req("P-8.1")
def test_cli_one_sided_and_achieved_power(capsys):
    c = next(c for c in CASES if c["ratio"] == 1.5 and c["alternative"] == "one-sided"
             and c["delta"] == 10.6 and c["sd"] == 10.27 and c["alpha"] == 0.025 and c["power"] == 0.8)
    code, out, _ = _run(capsys, "--alternative", "one-sided", "--alpha", "0.025", "--power", "0.8",
                        "--ratio", "1.5", "--method", "t", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["alternative"] == "one-sided"
    assert (doc["control_before_dropout"], doc["treatment_before_dropout"]) == (c["t_control"], c["t_treatment"])
    at = c["power_at_n"][0]
    code, out, _ = _run(capsys, "--alternative", "one-sided", "--alpha", "0.025", "--ratio", "1.5",
                        "--n", str(at["control"]), "--method", "t", "--json")
    doc = json.loads(out)
    assert (doc["control"], doc["treatment"]) == (at["control"], at["treatment"])
    assert doc["power"] == pytest.approx(at["t"], abs=1e-8)
    code, out, _ = _run(capsys, "--alternative", "one-sided", "--alpha", "0.025", "--ratio", "1.5",
                        "--n", str(at["control"]), "--method", "t")
    assert code == 0 and "one-sided alpha 0.025" in out and f"{at['treatment']} treatment" in out


@pytest.mark.parametrize("argv, option", [
    (["--ratio", "0"], "--ratio"), (["--ratio", "-1"], "--ratio"), (["--ratio", "abc"], "--ratio"),
    (["--ratio", "1:0"], "--ratio"), (["--ratio", "nan"], "--ratio"),
    (["--alternative", "less"], "--alternative"), (["--alternative", "x", "--n", "20"], "--alternative"),
])
def test_cli_bad_ratio_or_alternative_is_one_line_naming_the_option(capsys, argv, option):
    code, out, err = _run(capsys, *argv)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in err
