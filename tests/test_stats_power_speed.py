"""The fast MMRM of the power simulation (issue: statistics item 9) gives the numbers of a full
``fit_mmrm``; trial i is seeded by (seed, i), so the result does not depend on the number of
processes."""

from __future__ import annotations

import json

import numpy as np
from unittest import mock

import pytest

from annulus.cli import main
from annulus.stats import power as P
from annulus.stats.mmrm import MmrmError, fit_mmrm

pytestmark = pytest.mark.req("P-8.3")


def _standalone(frame, visits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, se, df, p) of each dose - control at the last visit, as `annulus power` did
    before: a full fit_mmrm of the trial's table and its contrasts (NaN: not estimable)."""
    fit = fit_mmrm(frame, P.FORMULA, subject="subject", visit="visit", cov="us")
    rows = [r for r in fit.contrasts(arm="arm", control="control", by="visit")
            if r["visit"] == f"V{visits}"]
    get = lambda key: np.array([np.nan if r[key] is None else r[key] for r in rows])  # noqa: E731
    return get("estimate"), get("se"), get("df"), get("p")


@pytest.mark.parametrize(("per_group", "groups", "visits", "dropout", "trials"), [
    (25, 4, 7, 0.2, [0]),  # the protocol's design
    (6, 3, 4, 0.35, [0, 1, 2, 3]),  # few subjects, many dropout patterns
])
def test_fast_fit_matches_a_full_fit_mmrm_trial_by_trial(per_group, groups, visits, dropout,
                                                         trials):
    effects = [6.0] * (groups - 1)
    model = P._TrialMmrm(per_group, effects, 10.27, 0.5, visits)
    compared = 0
    for i in trials:
        y, last_seen = P._draw(P.trial_rng(7, i), per_group, effects, 10.27, 0.5, dropout, visits)
        frame = P.simulate_trial(P.trial_rng(7, i), per_group, effects, dropout=dropout,
                                 visits=visits)
        try:
            want = _standalone(frame, visits)
        except MmrmError:
            with pytest.raises(P._FitFailed):
                model.fit(y, last_seen)
            continue
        got = model.fit(y, last_seen)
        # Same data, model, starting values and optimiser: the estimates agree to rounding; df
        # and p rest on a finite-difference Hessian, so they agree to the optimiser's tolerance.
        est, se, df, p = got
        np.testing.assert_allclose(est, want[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(se, want[1], rtol=1e-8)
        np.testing.assert_allclose(df, want[2], rtol=1e-6)
        np.testing.assert_allclose(p, want[3], rtol=1e-6, atol=1e-12)
        compared += 1
    assert compared >= 1


def test_failed_fits_are_the_trials_fit_mmrm_refuses():
    # 4 per group and 40 % dropout: many trials lose a whole arm at a visit (a singular design)
    # or put a covariance estimate on a boundary, which fit_mmrm refuses; the fast path refuses
    # exactly those trials.
    effects = [5.0]
    model = P._TrialMmrm(4, effects, 10.27, 0.5, 3)
    outcomes = []
    for i in range(6):
        y, last_seen = P._draw(P.trial_rng(2, i), 4, effects, 10.27, 0.5, 0.4, 3)
        frame = P.simulate_trial(P.trial_rng(2, i), 4, effects, dropout=0.4, visits=3)
        try:
            _standalone(frame, 3)
            refused = False
        except MmrmError:
            refused = True
        try:
            model.fit(y, last_seen)
            failed = False
        except P._FitFailed:
            failed = True
        assert failed == refused, i
        outcomes.append(failed)
    assert any(outcomes) and not all(outcomes)
    r = P.simulate_power(6, 4, 5.0, groups=2, visits=3, dropout=0.4, seed=2)
    assert r["mmrm_failed_fits"] == sum(outcomes)
    assert r["mmrm"]["dose1"]["sims"] == 6 - sum(outcomes)


def test_stacked_likelihood_equals_one_at_a_time():
    model = P._TrialMmrm(6, [4.0, 4.0], 10.27, 0.5, 4)
    y, last_seen = P._draw(P.trial_rng(3, 0), 6, [4.0, 4.0], 10.27, 0.5, 0.4, 4)
    seen = last_seen[model.order]
    yy = y[model.order]
    x3 = model.x3.copy()
    x3[:, :, model.bcol] = yy[:, :1]
    st = model._patterns(x3, yy[:, 1:] - yy[:, :1], seen)
    rng = np.random.default_rng(0)
    sigmas = []
    for _ in range(5):
        a = rng.normal(size=(4, 4))
        sigmas.append(a @ a.T + 4 * np.eye(4))
    values, grads, bad = model._evaluate_many(st, np.array(sigmas))
    assert not bad.any()
    for sigma, value, grad in zip(sigmas, values, grads):
        v1, g1, *_ = model._evaluate(st, sigma)
        assert value == pytest.approx(v1, rel=1e-12)
        np.testing.assert_allclose(grad, g1, rtol=1e-9, atol=1e-12)
    # a matrix that is not positive definite is flagged, the others still evaluated
    sigmas[2] = -np.eye(4)
    values, grads, bad = model._evaluate_many(st, np.array(sigmas))
    assert bad.tolist() == [False, False, True, False, False]
    assert values[2] == np.inf and not grads[2].any() and np.isfinite(values[[0, 1, 3, 4]]).all()


def test_one_and_two_jobs_give_identical_results():
    options = {"sims": 6, "per_group": 5, "effects": 8.0, "groups": 2, "visits": 3, "seed": 11,
               "per_trial": True}
    one = P.simulate_power(**options, jobs=1)
    done = []
    two = P.simulate_power(**options, jobs=2, progress=done.append)
    assert done[-1] == 6 and done == sorted(done)
    for key in ("t_p", "mmrm_p", "mmrm_estimate", "mmrm_failed"):
        np.testing.assert_array_equal(one["per_trial"][key], two["per_trial"][key])
    one.pop("per_trial")
    two.pop("per_trial")
    assert one == two


def _with_another_thread(run):
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        return run()
    finally:
        stop.set()
        other.join()


def test_workers_are_spawned_when_this_process_runs_threads_and_get_the_design_by_pickle():
    # Another thread may hold a lock at a fork, so then the workers start as fresh interpreters
    # (spawn) and receive the design by pickling: the unpickled design gives the same numbers.
    import pickle

    assert _with_another_thread(lambda: P._process_context().get_start_method()) == "spawn"
    # alone (other tests in this process may have left threads running, so "alone" is simulated)
    with mock.patch("threading.active_count", return_value=1):
        assert P._process_context().get_start_method() == "fork"
    effects = (8.0,)
    plan = P._Plan(11, 5, effects, 10.27, 0.5, 0.2, 2, 3, P._TrialMmrm(5, effects, 10.27, 0.5, 3))
    copy = pickle.loads(pickle.dumps(plan))
    a, b = P._simulate_range(plan, 0, 3), P._simulate_range(copy, 0, 3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow  # each spawned worker imports NumPy, SciPy and pandas afresh: seconds
def test_spawned_workers_give_the_same_results():
    options = {"sims": 2, "per_group": 5, "effects": 8.0, "groups": 2, "visits": 3, "seed": 11,
               "per_trial": True}
    two = _with_another_thread(lambda: P.simulate_power(**options, jobs=2))
    one = P.simulate_power(**options, jobs=1)
    for key in ("t_p", "mmrm_p", "mmrm_estimate", "mmrm_failed"):
        np.testing.assert_array_equal(one["per_trial"][key], two["per_trial"][key])


def test_trial_i_is_the_same_trial_whatever_else_is_simulated():
    a = P.simulate_power(3, 5, 8.0, groups=2, visits=3, seed=4, per_trial=True)["per_trial"]
    b = P.simulate_power(5, 5, 8.0, groups=2, visits=3, seed=4, per_trial=True)["per_trial"]
    np.testing.assert_array_equal(a["mmrm_p"], b["mmrm_p"][:3])
    frame = P.simulate_trial(P.trial_rng(4, 1), 5, [8.0], visits=3)
    assert np.allclose(_standalone(frame, 3)[3], b["mmrm_p"][1], rtol=1e-6)


def test_cli_jobs_option(capsys):
    argv = ["power", "--sims", "4", "--per-group", "5", "--effect", "8", "--groups", "2",
            "--visits", "2", "--seed", "3", "--json"]
    assert main(argv + ["--jobs", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sims"] == 4 and out["mmrm_failed_fits"] + out["mmrm"]["dose1"]["sims"] == 4
    assert main(argv + ["--jobs", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "jobs must be at least 1" in err
