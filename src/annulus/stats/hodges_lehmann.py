"""The Hodges–Lehmann shift between two samples and its confidence interval, as R
``wilcox.test(x, y, conf.int = TRUE)``.

The estimate is the median of the m·n differences ``x_i − y_j``. The interval inverts the
Wilcoxon–Mann–Whitney test, so it agrees with the test's p-value:

* **exact** (both samples under 50 and no value tied; R's default): the order statistics
  ``d[q]`` and ``d[mn − q + 1]`` of the sorted differences, where ``q`` is the ``α/2`` quantile of
  the Mann–Whitney null distribution (R ``qwilcox``; at least 1). When so few values cannot reach
  the requested level, the interval is the widest possible and its level is reported as the one
  achieved (R does the same, with a warning);
* **normal approximation** (ties, or a sample of 50 or more): the shifts ``d`` at which the
  tie-corrected, continuity-corrected standardised rank sum of ``x − d`` against ``y`` crosses
  ``±z(1 − α/2)``; when no shift inside ``[min x − max y, max x − min y]`` reaches it the end of
  that range is the limit.

R finds the normal-approximation limits by a root search with tolerance 1e-4 (``uniroot``), so its
limits lie within about 1e-4 of the exact crossings computed here, which are differences
``x_i − y_j``. On the same path R also takes its *estimate* from a root search of the rank sum; the
median of the differences is that root, except that where the rank sum equals its null mean over a
whole interval between two differences R stops anywhere inside it; the median is the interval's
midpoint. See ``tests/fixtures/stats/make_per_visit_methods.R``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import stats

from annulus.stats._io import InputError

EXACT_LIMIT = 50  # R: exact when both samples are smaller than this and nothing is tied
_EPS = np.finfo(float).eps


@lru_cache(maxsize=64)
def _null_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u) for u = 0 … m·n under the null (R ``pwilcox``), from exact integer counts."""
    # Generating function of U: prod_{i=1..m} (1 - t^(n+i)) / (1 - t^i), in exact integers.
    size = m * n + 1
    c = [0] * size
    c[0] = 1
    for i in range(1, m + 1):
        step = n + i
        for k in range(size - 1, step - 1, -1):  # multiply by (1 - t^(n+i))
            c[k] -= c[k - step]
        for k in range(i, size):  # divide by (1 - t^i)
            c[k] += c[k - i]
    total = sum(c)
    out, run = [], 0
    for count in c:
        run += count
        out.append(run / total)
    return tuple(out)


def _qwilcox(p: float, m: int, n: int) -> int:
    """R ``qwilcox(p, m, n)`` for p <= 0.5: the smallest u with P(U <= u) >= p (less 10 eps)."""
    cdf = _null_cdf(m, n)
    target = p - 10 * _EPS
    for u, value in enumerate(cdf):
        if value >= target:
            return u
    return m * n


def _standardised(x: np.ndarray, y: np.ndarray, d: float, correct: bool) -> float:
    """R's ``wdiff(d, 0)``: the tie- and continuity-corrected z of the rank sum of x − d vs y."""
    m, n = len(x), len(y)
    dr = np.concatenate([x - d, y])
    ranks = stats.rankdata(dr)
    _, ties = np.unique(dr, return_counts=True)
    dz = ranks[:m].sum() - m * (m + 1) / 2 - m * n / 2
    corr = math.copysign(0.5, dz) if (correct and dz != 0) else 0.0
    sigma = math.sqrt((m * n / 12) * ((m + n + 1) - (ties**3 - ties).sum() / ((m + n) * (m + n - 1))))
    if sigma == 0:
        raise InputError("cannot compute a confidence interval when all observations are tied")
    return (dz - corr) / sigma


def _crossing(x: np.ndarray, y: np.ndarray, diffs: np.ndarray, zq: float, correct: bool) -> float:
    """The shift at which the standardised rank sum, which falls as the shift grows, crosses zq."""
    lo, hi = float(diffs[0]), float(diffs[-1])
    if _standardised(x, y, lo, correct) - zq <= 0:
        return lo
    if _standardised(x, y, hi, correct) - zq >= 0:
        return hi
    m, n = len(x), len(y)
    u = np.unique(diffs)
    # Between two neighbouring differences nothing in x − d ties with y: the rank sum counts the
    # differences above d, and the tie correction has only the ties within x and within y.
    above = len(diffs) - np.searchsorted(diffs, u, side="right")  # on (u_k, u_k+1)
    dz = above[:-1] - m * n / 2
    if correct:
        dz = dz - np.sign(dz) * 0.5
    tx = np.unique(x, return_counts=True)[1]
    ty = np.unique(y, return_counts=True)[1]
    tie_sum = float((tx**3 - tx).sum() + (ty**3 - ty).sum())
    sigma = math.sqrt((m * n / 12) * ((m + n + 1) - tie_sum / ((m + n) * (m + n - 1))))
    g = dz / sigma - zq  # non-increasing in k
    k = int(np.argmax(g <= 0)) if np.any(g <= 0) else len(g)
    if k < len(g) and g[k] == 0:
        # the statistic equals zq over a whole stretch: its midpoint
        j = k
        while j + 1 < len(g) and g[j + 1] == 0:
            j += 1
        return float((u[k] + u[j + 1]) / 2)
    return float(u[k])


def hodges_lehmann(x: Sequence[float], y: Sequence[float], level: float = 0.95,
                   exact: bool | None = None, correct: bool = True) -> dict:
    """Hodges–Lehmann estimate of the shift x − y with its ``level`` confidence interval.

    Returns ``estimate`` (median of the differences), ``lower``, ``upper``, ``level`` (the level
    achieved: below the request only when tiny exact samples cannot reach it) and ``exact``
    (whether the exact interval was used; by default when both samples are under 50 and no value is
    tied, as R). Missing values are dropped. When every x is the same and every y is the same
    (with ties) there is no interval: ``lower`` and ``upper`` are None and ``note`` says why.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise InputError("the Hodges–Lehmann estimate needs values in both samples")
    if not 0 < level < 1:
        raise InputError(f"the confidence level must lie between 0 and 1, got {level}")
    both = np.concatenate([x, y])
    ties = len(np.unique(both)) < len(both)
    if exact is None:
        exact = m < EXACT_LIMIT and n < EXACT_LIMIT
    exact = bool(exact and not ties)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    estimate = float(np.median(diffs))
    alpha = 1 - level
    if exact:
        q = max(_qwilcox(alpha / 2, m, n), 1)
        achieved_alpha = 2 * _null_cdf(m, n)[q - 1]
        lower, upper = float(diffs[q - 1]), float(diffs[m * n - q])
        achieved = 1 - achieved_alpha if achieved_alpha - alpha > alpha / 2 else level
    elif np.ptp(x) == 0 and np.ptp(y) == 0:
        # every x equal and every y equal: the rank sum has no spread at the shift x − y (R stops
        # with "cannot compute confidence interval when all observations are tied")
        return {"estimate": estimate, "lower": None, "upper": None, "level": level,
                "exact": False, "n": [m, n],
                "note": "no confidence interval: every value in each sample is the same"}
    else:
        z = float(stats.norm.ppf(1 - alpha / 2))
        lower = _crossing(x, y, diffs, z, correct)
        upper = _crossing(x, y, diffs, -z, correct)
        achieved = level
    return {"estimate": estimate, "lower": lower, "upper": upper, "level": achieved,
            "exact": exact, "n": [m, n]}
