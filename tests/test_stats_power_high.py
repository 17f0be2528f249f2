"""High-powered designs and out-of-range parameters (issue 14, item 6).

R reference: tests/fixtures/stats/make_power_high.R (power.t.test, pt) wrote power_high.json;
the tests never call R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.stats import power_t, sample_size

REF = json.loads((Path(__file__).parent / "fixtures" / "stats" / "power_high.json").read_text())


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("case", REF["power_at_n"], ids=lambda c: f"n{c['n']}-d{c['delta']}")
def test_t_power_matches_r_up_to_ncp_63(case):
    p = power_t(case["n"], case["delta"], case["sd"], REF["alpha"])
    assert math.isfinite(p)
    assert p == pytest.approx(case["power"], abs=1e-10)
    if case["beta"] > 1e-12:  # 1 - power where it is not lost to rounding
        assert 1 - p == pytest.approx(case["beta"], rel=1e-5)


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("case", REF["n_for_power"], ids=lambda c: f"p{c['power']}-d{c['delta']}")
def test_t_sample_size_for_high_power_matches_r(case):
    r = sample_size(case["delta"], case["sd"], REF["alpha"], case["power"], method="t")
    assert r.per_group_before_dropout == math.ceil(case["n"])
    assert math.isfinite(r.achieved_power) and r.achieved_power >= case["power"]


@pytest.mark.req("P-8.1")
def test_cli_prints_a_number_not_nan(capsys):
    assert main(["samplesize", "--delta", "20", "--sd", "10.27", "--power", "0.9999999",
                 "--method", "t", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_group_before_dropout"] == 29 and out["achieved_power"] > 0.9999999
    assert main(["samplesize", "--delta", "10", "--sd", "10", "--n", "500", "--method", "t"]) == 0
    assert "power 1.0000" in capsys.readouterr().out


def _one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


@pytest.mark.req("P-8.1")
def test_tiny_delta_and_huge_n_are_refused(capsys):
    for method in ("t", "z"):
        _one_line_error(capsys, ["samplesize", "--delta", "1e-9", "--sd", "10", "--method", method],
                        "delta 1e-09 is too small for sd 10", "2.1e+21")
    _one_line_error(capsys, ["samplesize", "--delta", "10", "--sd", "10", "--n", "1e12"],
                    "n must be at most")


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize("rho", ["-0.5", "1", "-1.5"])
def test_power_refuses_rho_outside_0_1(capsys, rho):
    _one_line_error(capsys, ["power", "--rho", rho, "--no-mmrm", "--per-group", "10", "--effect",
                             "5", "--sims", "10"], "rho must be in [0, 1)")
