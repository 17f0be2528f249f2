"""Analysis of covariance at one visit: ``y ~ arm + covariate`` by least squares.

Each arm is compared with the control by the difference of adjusted means (the arm's coefficient
with the control as reference level): estimate, SE, residual df, t, two-sided p and the t-based
CI, as R ``summary(lm(y ~ arm + baseline))`` and ``confint``. Also the F test of the arm adjusted
for the covariate (R ``anova(lm(y ~ baseline + arm))``), the adjusted means at the covariate's
mean (R ``emmeans(fit, "arm")``) and Dunnett's many-to-one adjustment of the contrasts from the
model's own covariance (R ``multcomp::glht(fit, mcp(arm = "Dunnett"))``); see
``tests/fixtures/stats/make_per_visit_methods.R``.

With ``y`` the change from baseline and the baseline as covariate the arm differences equal those
of ``value ~ arm + baseline`` (only the baseline slope moves by one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import linalg, stats

from annulus.stats._io import InputError
from annulus.stats.dose_response import dunnett_contrasts


def ancova(
    y: Sequence[float],
    arm: Sequence[str],
    covariate: Sequence[float],
    arms: Sequence[str],
    level: float = 0.95,
    response: str = "change",
    covariate_name: str = "baseline",
) -> dict:
    """Fit ``y ~ arm + covariate``; ``arms`` lists the levels with the control first.

    Rows with a missing ``y`` or covariate are left out. Returns ``n``, ``df``, ``slope`` (of the
    covariate), ``covariate_mean``, ``omnibus`` (the arm F test), ``adjusted_means`` and
    ``vs_control`` (per arm: ``test`` with estimate, se, df, statistic, p, lower, upper, and
    ``dunnett``). When the model cannot be estimated (an arm without data, the covariate
    indistinguishable from the arms, no residual variation) it returns ``note`` instead.
    """
    y = np.asarray(y, dtype=float)
    cov = np.asarray(covariate, dtype=float)
    arm = np.asarray(arm, dtype=object)
    arms = list(arms)
    if not (len(y) == len(cov) == len(arm)):
        raise InputError("y, arm and covariate must have the same length")
    if len(arms) < 2:
        raise InputError("the ANCOVA needs the control and at least one other arm")
    keep = np.isfinite(y) & np.isfinite(cov)
    y, cov, arm = y[keep], cov[keep], arm[keep]
    name = f"ANCOVA ({response} ~ arm + {covariate_name})"
    base = {"name": name, "n": int(len(y))}
    counts = {a: int((arm == a).sum()) for a in arms}
    empty = [a for a, c in counts.items() if c == 0]
    if empty:
        return {**base, "note": f"ANCOVA not estimable: no {covariate_name} and value in arm "
                                f"{', '.join(empty)}"}
    k = len(arms)
    X = np.column_stack([np.ones(len(y))] + [(arm == a).astype(float) for a in arms[1:]] + [cov])
    n, p = X.shape
    df = n - p
    if df < 1 or np.linalg.matrix_rank(X) < p:
        why = ("too few subjects for the model" if df < 1
               else f"the {covariate_name} does not vary apart from the arms")
        return {**base, "note": f"ANCOVA not estimable: {why}"}
    q, r = np.linalg.qr(X)
    beta = linalg.solve_triangular(r, q.T @ y)
    resid = y - X @ beta
    rss = float(resid @ resid)
    s2 = rss / df
    if not s2 > 1e-12 * max(1.0, float(np.var(y))):
        return {**base, "note": "ANCOVA not estimable: no residual variation"}
    r_inv = linalg.solve_triangular(r, np.eye(p))
    vcov = s2 * (r_inv @ r_inv.T)
    tq = float(stats.t.ppf(1 - (1 - level) / 2, df))

    # F test of the arm, adjusted for the covariate: compare with y ~ covariate.
    X0 = np.column_stack([np.ones(n), cov])
    b0, *_ = np.linalg.lstsq(X0, y, rcond=None)
    rss0 = float(((y - X0 @ b0) ** 2).sum())
    F = ((rss0 - rss) / (k - 1)) / s2
    omnibus = {"name": f"ANCOVA F test of the arm (adjusted for {covariate_name})",
               "statistic": float(F), "df1": float(k - 1), "df2": float(df),
               "p": float(stats.f.sf(F, k - 1, df))}

    xbar = float(cov.mean())
    means = []
    for i, a in enumerate(arms):
        L = np.zeros(p)
        L[0], L[-1] = 1.0, xbar
        if i:
            L[i] = 1.0
        est, se = float(L @ beta), float(math.sqrt(L @ vcov @ L))
        means.append({"arm": a, "n": counts[a], "mean": est, "se": se, "df": float(df),
                      "lower": est - tq * se, "upper": est + tq * se})

    est = beta[1:k]
    cov_arms = vcov[1:k, 1:k]
    dun = dunnett_contrasts(est, cov_arms, df, labels=arms[1:], alpha=1 - level)
    rows = []
    for i, a in enumerate(arms[1:]):
        se = float(math.sqrt(cov_arms[i, i]))
        t = float(est[i] / se)
        rows.append({
            "arm": a,
            "test": {"name": "ANCOVA", "estimate": float(est[i]), "se": se, "df": float(df),
                     "statistic": t, "p": float(2 * stats.t.sf(abs(t), df)),
                     "lower": float(est[i] - tq * se), "upper": float(est[i] + tq * se)},
            "dunnett": {key: dun[i][key]
                        for key in ("estimate", "se", "df", "t", "p", "lower", "upper", "crit")},
        })
    return {**base, "df": float(df), "slope": float(beta[-1]), "covariate_mean": xbar,
            "omnibus": omnibus, "adjusted_means": means, "vs_control": rows}
