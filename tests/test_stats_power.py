"""Power by simulation: the simulated t-test power agrees with the analytic power."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from annulus.cli import main
from annulus.stats import analytic_t_power, power_t, simulate_power, simulate_trial


def within(sim: dict, expected: float, z: float = 4.0) -> bool:
    # Binomial Monte Carlo error of the simulated power, at the expected value.
    se = np.sqrt(expected * (1 - expected) / sim["sims"])
    return abs(sim["power"] - expected) <= z * se


def test_t_power_without_dropout_matches_the_noncentral_t():
    r = simulate_power(400, 20, [4.0, 8.0], groups=3, visits=2, dropout=0.0, seed=7, mmrm=False)
    for dose, effect in r["effects"].items():
        # rho 0.5 makes the SD of the change equal to the SD of one measurement.
        assert r["t_test"][dose]["analytic"] == pytest.approx(power_t(20, effect, 10.27))
        assert within(r["t_test"][dose], r["t_test"][dose]["analytic"]), (dose, r["t_test"][dose])


def test_t_power_with_dropout_matches_the_binomial_average():
    r = simulate_power(400, 25, 10.6, groups=2, visits=3, dropout=0.2, seed=11, mmrm=False)
    t = r["t_test"]["dose1"]
    # The dropouts make the power lower than with 25 complete per group.
    assert t["analytic"] < power_t(25, 10.6, 10.27)
    assert within(t, t["analytic"])


def test_rho_changes_the_sd_of_the_change():
    rng = np.random.default_rng(5)
    trial = simulate_trial(rng, 4000, [0.0], sd=10.0, rho=0.8, dropout=0.0, visits=1)
    assert trial["change"].std() == pytest.approx(10.0 * np.sqrt(2 * 0.2), rel=0.03)
    assert analytic_t_power(20, 5, sd=10.0, rho=0.8, dropout=0) == pytest.approx(
        power_t(20, 5, 10.0 * np.sqrt(0.4)))


def test_dropout_is_monotone_and_at_the_requested_rate():
    trial = simulate_trial(np.random.default_rng(2), 2000, [1.0], dropout=0.2, visits=4)
    visits = trial.groupby("subject")["visit"].agg(["count", "max"])
    # Every subject is seen at the first visits without gaps.
    assert (visits["max"].str[1:].astype(int) == visits["count"]).all()
    completers = (visits["count"] == 4).mean()
    assert completers == pytest.approx(0.8, abs=4 * np.sqrt(0.16 / 4000))


def test_same_seed_same_answer_other_seed_other_answer():
    a = simulate_power(60, 10, 6.0, groups=2, visits=2, seed=3, mmrm=False)
    b = simulate_power(60, 10, 6.0, groups=2, visits=2, seed=3, mmrm=False)
    c = simulate_power(60, 10, 6.0, groups=2, visits=2, seed=4, mmrm=False)
    assert a == b
    assert a["t_test"] != c["t_test"]


@pytest.mark.req("P-8.3")
def test_mmrm_power_is_simulated_when_the_model_is_available():
    pytest.importorskip("annulus.stats.mmrm")
    r = simulate_power(4, 12, 12.0, groups=2, visits=2, dropout=0.2, seed=5)
    assert r["note"] is None
    assert r["mmrm_failed_fits"] + r["mmrm"]["dose1"]["sims"] == 4
    assert 0 <= r["mmrm"]["dose1"]["power"] <= 1


def test_without_the_mmrm_module_the_t_test_still_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "annulus.stats.mmrm", None)  # import fails
    r = simulate_power(5, 10, 5.0, groups=2, visits=2, seed=1)
    assert r["mmrm"] is None
    assert "MMRM not available" in r["note"]
    assert r["t_test"]["dose1"]["sims"] == 5


def test_cli_reports_power_and_seed(capsys):
    code = main(["power", "--sims", "200", "--per-group", "20", "--effect", "10.6", "--groups",
                 "2", "--visits", "2", "--dropout", "0", "--seed", "9", "--no-mmrm", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["seed"] == 9 and out["sims"] == 200
    t = out["t_test"]["dose1"]
    assert t["analytic"] == pytest.approx(power_t(20, 10.6, 10.27))
    assert within(t, t["analytic"])
