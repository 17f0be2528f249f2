"""Sample size and power (P-8.1) against the protocol's figures and R ``power.t.test``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.stats import achieved_power, power_t, power_z, sample_size
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"


@pytest.fixture(scope="module")
def ref():
    # R power.t.test output, made by tests/fixtures/stats/make_fixtures.R
    return json.loads((STATS / "reference.json").read_text())["samplesize"]


@pytest.mark.req("P-8.1")
def test_normal_approximation_gives_the_protocol_numbers():
    # Protocol: delta 10.6, SD 10.27, two-sided alpha 0.05, power 0.9, 20 % dropout
    # -> 25 per group, 100 in total.
    r = sample_size(10.6, 10.27, alpha=0.05, power=0.9, dropout=0.2, groups=4)
    assert (r.per_group_before_dropout, r.per_group, r.total, r.method) == (20, 25, 100, "z")
    assert r.achieved_power >= 0.9


@pytest.mark.req("P-8.1")
def test_exact_t_method_matches_r_power_t_test(ref):
    r = sample_size(ref["delta"], ref["sd"], ref["alpha"], ref["power"], dropout=0.2, groups=4,
                    method="t")
    # R solves for a fractional n; the sample size is the next whole number.
    assert r.per_group_before_dropout == math.ceil(ref["t_n_strict"])
    assert r.per_group == math.ceil(math.ceil(ref["t_n_strict"]) / 0.8)
    assert r.total == 4 * r.per_group
    assert r.per_group > sample_size(10.6, 10.27, dropout=0.2, groups=4).per_group


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("i", range(5))
def test_t_power_matches_r(ref, i):
    case = ref["power_at_n"][i]
    assert power_t(case["n"], ref["delta"], ref["sd"], ref["alpha"]) == pytest.approx(
        case["power"], abs=1e-8)


@pytest.mark.req("P-8.1")
def test_achieved_power_counts_evaluable_subjects(ref):
    # 25 enrolled with 20 % dropout leaves 20 evaluable: R's power at n = 20.
    at20 = next(c["power"] for c in ref["power_at_n"] if c["n"] == 20)
    r = achieved_power(25, ref["delta"], ref["sd"], dropout=0.2, method="t")
    assert r.evaluable_per_group == 20
    assert r.power == pytest.approx(at20, abs=1e-8)


def test_z_power_is_above_t_power_and_close_for_large_n():
    assert power_z(20, 10.6, 10.27) > power_t(20, 10.6, 10.27)
    assert power_z(2000, 1, 10.27) == pytest.approx(power_t(2000, 1, 10.27), abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, word",
    [({"power": 1.2}, "power"), ({"sd": -1}, "sd"), ({"dropout": 1.0}, "dropout"),
     ({"alpha": 0}, "alpha"), ({"delta": 0}, "delta"), ({"method": "x"}, "method"),
     ({"groups": 1}, "groups")],
)
def test_bad_parameters_are_named(kwargs, word):
    args = {"delta": 10.6, "sd": 10.27, **kwargs}
    with pytest.raises(InputError, match=word):
        sample_size(**args)


@pytest.mark.req("P-8.1")
def test_cli_json_prints_25_and_100(capsys):
    code = main(["samplesize", "--delta", "10.6", "--sd", "10.27", "--alpha", "0.05", "--power",
                 "0.9", "--dropout", "0.2", "--groups", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["per_group"], out["total"], out["per_group_before_dropout"], out["method"]) == (
        25, 100, 20, "z")


@pytest.mark.req("P-8.1")
def test_cli_method_t_and_achieved_power(capsys, ref):
    main(["samplesize", "--delta", "10.6", "--sd", "10.27", "--dropout", "0.2", "--groups", "4",
          "--method", "t", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["per_group_before_dropout"] == math.ceil(ref["t_n_strict"])
    main(["samplesize", "--delta", "10.6", "--sd", "10.27", "--n", "20", "--method", "t", "--json"])
    out = json.loads(capsys.readouterr().out)
    at20 = next(c["power"] for c in ref["power_at_n"] if c["n"] == 20)
    assert out["power"] == pytest.approx(at20, abs=1e-8)
