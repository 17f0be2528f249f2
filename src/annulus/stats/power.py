"""Power by simulation under the protocol's assumptions.

Each simulated trial has ``groups`` arms (a control and ``groups - 1`` doses) of ``per_group``
subjects, a baseline and ``visits`` post-baseline measurements. Every measurement has SD ``sd``
(10.27 mm: the SD of one VAS measurement) and any two measurements of a subject are correlated
``rho`` (compound symmetry), so the change from baseline has SD ``sd * sqrt(2 (1 - rho))`` — equal
to ``sd`` when ``rho = 0.5``. A dose lowers the mean by its ``effect`` at every post-baseline visit.
A fraction ``dropout`` of the subjects leave the trial, each after a visit drawn at random, and
have no data from then on (monotone, missing completely at random).

Two analyses of the last visit are counted as successes when two-sided p < alpha:

* the t test of the change from baseline, dose vs control, in the subjects still in the trial;
* the MMRM contrast (change ~ baseline + arm * visit, unstructured covariance, REML,
  Satterthwaite) which also uses the earlier visits of subjects who dropped out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from annulus.stats._io import InputError, check_positive, check_probability
from annulus.stats.samplesize import power_t

PROTOCOL = {"sd": 10.27, "dropout": 0.2, "groups": 4, "visits": 7, "rho": 0.5}
BASELINE_MEAN = 65.0  # mm; only shifts all values, so it does not affect power


def arm_labels(groups: int) -> list[str]:
    return ["control"] + [f"dose{i}" for i in range(1, groups)]


def simulate_trial(
    rng: np.random.Generator,
    per_group: int,
    effects: Sequence[float],
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    visits: int = PROTOCOL["visits"],
) -> pd.DataFrame:
    """One simulated trial as a long table: subject, arm, visit (``V1``…), value, baseline, change.

    ``effects`` holds one mean reduction per dose (the control has none). Rows after a subject's
    dropout are absent.
    """
    arms = arm_labels(len(effects) + 1)
    shift = np.repeat(np.r_[0.0, np.asarray(effects, dtype=float)], per_group)
    n = len(shift)
    # Compound symmetry: a shared subject effect plus independent noise per measurement.
    subject_effect = rng.normal(0, sd * math.sqrt(rho), size=(n, 1))
    noise = rng.normal(0, sd * math.sqrt(1 - rho), size=(n, visits + 1))
    y = BASELINE_MEAN + subject_effect + noise
    y[:, 1:] -= shift[:, None]
    # Dropouts leave after a random visit 1..visits-1, so they miss the last visit at least.
    leaves = rng.random(n) < dropout
    last_seen = np.where(leaves, rng.integers(1, visits, size=n) if visits > 1 else 0, visits)
    subject = np.repeat(np.arange(n), visits)
    visit = np.tile(np.arange(1, visits + 1), n)
    keep = visit <= np.repeat(last_seen, visits)
    width = len(str(visits))
    frame = pd.DataFrame({
        "subject": [f"S{s + 1:04d}" for s in subject[keep]],
        "arm": np.repeat(np.array(arms), per_group)[subject[keep]],
        "visit": [f"V{v:0{width}d}" for v in visit[keep]],
        "value": y[:, 1:].ravel()[keep],
        "baseline": y[subject[keep], 0],
    })
    frame["change"] = frame["value"] - frame["baseline"]
    return frame


def analytic_t_power(
    per_group: int,
    effect: float,
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    alpha: float = 0.05,
) -> float:
    """Expected power of the last-visit t test on the change, averaging over the number of
    completers in each arm (binomial with probability ``1 - dropout``)."""
    sd_change = sd * math.sqrt(2 * (1 - rho))
    if dropout == 0:
        return power_t(per_group, effect, sd_change, alpha)
    k = np.arange(per_group + 1)
    w = stats.binom.pmf(k, per_group, 1 - dropout)
    total = 0.0
    for i in range(2, per_group + 1):
        for j in range(2, per_group + 1):
            total += w[i] * w[j] * power_t(i, effect, sd_change, alpha, n2=j)
    return float(total)


def _mmrm_fitter() -> tuple[Callable | None, type[Exception] | tuple, str | None]:
    try:
        from annulus.stats.mmrm import MmrmError, fit_mmrm
    except ImportError as exc:
        return None, (), f"MMRM not available ({exc}); only the t test was simulated"
    return fit_mmrm, MmrmError, None


def _contrast_p_by_arm(rows: list[dict], last_visit: str) -> dict[str, float]:
    from annulus.stats.dose_response import _row_level

    out = {}
    for row in rows:
        if str(_row_level(row, ("visit", "by"))) == last_visit:
            # a contrast that is not estimable (p None) counts as not significant
            p = row["p"]
            out[str(_row_level(row, ("arm", "contrast", "level")))] = 1.0 if p is None else float(p)
    return out


def simulate_power(
    sims: int,
    per_group: int,
    effects: float | Sequence[float],
    sd: float = PROTOCOL["sd"],
    rho: float = PROTOCOL["rho"],
    dropout: float = PROTOCOL["dropout"],
    groups: int = PROTOCOL["groups"],
    visits: int = PROTOCOL["visits"],
    alpha: float = 0.05,
    seed: int = 1,
    mmrm: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Simulated power of the last-visit t test and MMRM contrast for each dose vs control.

    ``effects`` is one reduction for every dose or one per dose. ``progress`` is called with the
    number of finished simulations. Reports the Monte Carlo SE of each power and, for the t test,
    the analytic value it should agree with.
    """
    if sims < 1:
        raise InputError(f"sims must be at least 1, got {sims}")
    if per_group < 3:
        raise InputError(f"per-group must be at least 3, got {per_group}")
    if groups < 2:
        raise InputError(f"groups must be at least 2, got {groups}")
    if visits < 1:
        raise InputError(f"visits must be at least 1, got {visits}")
    check_positive(sd, "sd")
    check_probability(alpha, "alpha")
    check_probability(dropout, "dropout", open_low=False)
    if not 0 <= rho < 1:
        # Compound symmetry is simulated as a shared subject effect of variance rho * sd^2.
        raise InputError(f"rho must be in [0, 1) (the simulation adds a subject effect of "
                         f"variance rho * sd^2), got {rho:g}")
    if np.isscalar(effects):
        effects = [float(effects)] * (groups - 1)
    effects = [float(e) for e in effects]
    if len(effects) != groups - 1:
        raise InputError(f"give one effect or {groups - 1} (one per dose), got {len(effects)}")

    if not mmrm:
        fit_mmrm, mmrm_error, note = None, (), "MMRM not requested"
    elif visits < 2:
        fit_mmrm, mmrm_error, note = None, (), "MMRM needs at least 2 visits; t test only"
    else:
        fit_mmrm, mmrm_error, note = _mmrm_fitter()
    arms = arm_labels(groups)
    doses = arms[1:]
    last_visit = f"V{visits:0{len(str(visits))}d}"
    rng = np.random.default_rng(seed)
    t_hits = dict.fromkeys(doses, 0)
    t_valid = dict.fromkeys(doses, 0)
    m_hits = dict.fromkeys(doses, 0)
    m_failed = 0
    for s in range(sims):
        trial = simulate_trial(rng, per_group, effects, sd, rho, dropout, visits)
        last = trial[trial["visit"] == last_visit]
        ctl = last.loc[last["arm"] == "control", "change"].to_numpy()
        for d in doses:
            x = last.loc[last["arm"] == d, "change"].to_numpy()
            if len(x) >= 2 and len(ctl) >= 2:
                t_valid[d] += 1
                t_hits[d] += stats.ttest_ind(x, ctl).pvalue < alpha
        if fit_mmrm is not None:
            try:
                fit = fit_mmrm(trial, "change ~ baseline + arm * visit", subject="subject",
                               visit="visit", cov="us")
                p = _contrast_p_by_arm(fit.contrasts(arm="arm", control="control", by="visit"),
                                       last_visit)
                for d in doses:
                    m_hits[d] += p.get(d, 1.0) < alpha
            except mmrm_error:
                m_failed += 1
        if progress is not None:
            progress(s + 1)

    def summary(hits: int, n: int) -> dict:
        pw = hits / n if n else math.nan
        return {"power": pw, "se": math.sqrt(pw * (1 - pw) / n) if n else math.nan, "sims": n}

    out = {
        "sims": sims, "seed": seed, "per_group": per_group, "groups": groups, "visits": visits,
        "sd": sd, "rho": rho, "dropout": dropout, "alpha": alpha,
        "effects": dict(zip(doses, effects, strict=True)),
        "t_test": {d: {**summary(t_hits[d], t_valid[d]),
                       "analytic": analytic_t_power(per_group, e, sd, rho, dropout, alpha)}
                   for d, e in zip(doses, effects, strict=True)},
        "mmrm": None,
        "note": note,
    }
    if fit_mmrm is not None:
        ok = sims - m_failed
        out["mmrm"] = {d: summary(m_hits[d], ok) for d in doses}
        out["mmrm_failed_fits"] = m_failed
    return out
