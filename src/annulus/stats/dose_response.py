"""Dose–response: Dunnett's many-to-one comparisons, a linear trend test and MCP-Mod.

All multiplicity adjustments use the joint (multivariate t) distribution of the test statistics,
so they are exact rather than Bonferroni-type bounds:

* :func:`dunnett` — each dose against the control from one-way ANOVA data (as R
  ``multcomp::glht(aov, mcp(arm = "Dunnett"))``);
* :func:`dunnett_contrasts` — the same adjustment for any set of estimated contrasts with a known
  covariance, e.g. the MMRM differences from control at one visit (as ``emmeans`` with
  ``adjust = "mvt"``); :func:`mmrm_dunnett` applies it to a fitted MMRM visit by visit;
* :func:`trend_test` — a single contrast with centred dose scores;
* :func:`mcpmod` — MCP-Mod (Bretz, Pinheiro & Branson 2005, Biometrics 61:738–748), following R
  ``DoseFinding``: optimal contrasts for candidate shapes, a multiplicity-adjusted maximum-contrast
  test, then least-squares fits of the significant models.

Multivariate t probabilities use Genz's separation-of-variables method with fixed-seed
quasi-random (Sobol') points, so results are reproducible. The integration error depends on the
correlation: its standard error (the spread of the 8 independent scramblings,
:func:`_mvt_box_shifts`) is below 1e-6 for Dunnett's many-to-one comparisons but 1e-5 to 2e-5 for
MCP-Mod's nearly collinear or singular candidate contrasts, where adjusted p-values differ from R
(DoseFinding / mvtnorm) by up to 3e-5 and are tested to 1e-4 (Dunnett: 5e-5). It is written out here
because ``scipy.stats.multivariate_t.cdf`` (scipy 1.17) gives wrong answers for singular
correlation matrices, which MCP-Mod contrasts have whenever there are as many models as doses.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special, stats
from scipy.stats import qmc

from annulus.stats._io import InputError

ALTERNATIVES = ("two-sided", "greater", "less")
_SEED = 20220410  # fixed so that adjusted p-values do not change from run to run
# 2^14 quasi-random points in each of 8 independent scramblings: standard error below 1e-6 on a
# Dunnett probability, 1e-5 to 2e-5 on MCP-Mod's nearly collinear contrasts (see the docstring).
# 2^16 points would halve the latter at four times the cost (MCP-Mod's critical value alone takes
# three to five evaluations), so the budget is left as it is.
_LOG2_POINTS, _SHIFTS = 14, 8


# --- multivariate t ---------------------------------------------------------------------------
#
# What is cached, and why: a visit's p-values and the steps of its critical-value search all
# integrate over the same Sobol' points, so the point sets are built once per dimension
# (``_lattice``) and the t denominators once per (df, dimension) (``_t_scale``). Each MMRM
# contrast has its own Satterthwaite df, so the t denominators are interpolated from exact chi
# quantiles at 1025 fixed nodes instead of inverting the gamma function at all 131072 points,
# which took most of the time. ``_MaxT`` factorises a correlation matrix once for all the
# probabilities asked of it.


def _cdf(x, df: float | None):
    """The t (df None: normal) distribution function, without building a scipy distribution."""
    return special.ndtr(x) if df is None else special.stdtr(df, x)


def _ppf(q, df: float | None):
    return special.ndtri(q) if df is None else special.stdtrit(df, q)


def _finite_df(df: float | None) -> float | None:
    return None if df is None or not math.isfinite(df) else float(df)


def _prob_max_below(c: float, corr: np.ndarray, df: float | None, two_sided: bool) -> float:
    """P(max_i |T_i| <= c) (two-sided) or P(max_i T_i <= c) for T ~ multivariate t(corr, df)."""
    return _MaxT(corr, two_sided).prob(c, df)


class _MaxT:
    """The distribution of max_i |T_i| (two-sided) or max_i T_i for T ~ multivariate t(corr, df).

    The Cholesky factor is taken once, for all the p-values and root-search steps asked of it.
    """

    def __init__(self, corr: np.ndarray, two_sided: bool):
        corr = np.asarray(corr, dtype=float)
        self.k = corr.shape[0]
        self.two_sided = two_sided
        self.factor = _cholesky_rows(corr) if self.k > 1 else None

    def prob(self, c: float, df: float | None, points: int | None = None) -> float:
        """P(max <= c). ``points``: use only the first ``points`` of one scrambling, a rough
        value for a root search to start from."""
        df = _finite_df(df)
        if self.k == 1:  # one contrast: the ordinary t (or normal) distribution
            below = float(_cdf(c, df))
            return below - float(_cdf(-c, df)) if self.two_sided else below
        upper = np.full(self.k, float(c))
        lower = -upper if self.two_sided else np.full(self.k, -np.inf)
        total = float(_box_shifts(self.factor, lower, upper, df, points).mean())
        return float(min(1.0, max(0.0, total)))


def _cholesky_rows(corr: np.ndarray, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangular L with corr = L L' that tolerates a singular matrix.

    A row whose pivot vanishes is a linear combination of earlier rows; it gets no variable of its
    own and its limits are applied to the last variable it depends on (``owner``). This is exact,
    because that variable is drawn after the ones before it are fixed (as in Genz & Bretz 2009).
    """
    k = corr.shape[0]
    L = np.zeros((k, k))
    cols: list[int] = []  # the rows that own a variable
    owner = np.empty(k, dtype=int)
    for i in range(k):
        row = corr[i].copy()
        for j, ci in enumerate(cols):
            L[i, j] = (row[ci] - L[i, :j] @ L[ci, :j]) / L[ci, j]
        m = len(cols)
        pivot = corr[i, i] - L[i, :m] @ L[i, :m]
        if pivot > tol:
            L[i, m] = math.sqrt(pivot)
            cols.append(i)
            owner[i] = m
        else:
            nonzero = np.flatnonzero(np.abs(L[i, :m]) > 1e-12)
            if len(nonzero) == 0:
                raise InputError("a contrast has zero variance")
            owner[i] = int(nonzero[-1])
    return L[:, : len(cols)], owner


@functools.lru_cache(maxsize=16)
def _lattice(dims: int) -> np.ndarray:
    """The ``_SHIFTS`` scrambled Sobol' point sets, fixed by the seed, as one read-only array
    indexed (scrambling, coordinate, point)."""
    sets = []
    for shift in range(_SHIFTS):
        rng = np.random.default_rng([_SEED, dims, shift])
        sets.append(qmc.Sobol(dims, scramble=True, seed=rng).random_base2(_LOG2_POINTS).T)
    u = np.ascontiguousarray(np.stack(sets))
    u.setflags(write=False)
    return u


# Nodes in z = Phi^-1(u) for the t denominators: they span the lattice's clipped last coordinate
# (|z| <= 7.94 for u in [1e-15, 1 - 1e-15]).
_Z_NODES = np.linspace(-8.0, 8.0, 1025)


@functools.lru_cache(maxsize=16)
def _lattice_z(dims: int) -> np.ndarray:
    """Phi^-1 of the lattice's last coordinate, shape (scrambling, point)."""
    return special.ndtri(np.clip(_lattice(dims)[:, dims - 1], 1e-15, 1 - 1e-15))


@functools.lru_cache(maxsize=32)
def _t_scale(df: float, r: int) -> np.ndarray:
    """The t denominators sqrt(chi2_df / df) at the last coordinate of the ``r + 1``-dimensional
    lattice, shape (scrambling, point).

    log sqrt(chi2_df / df) is a smooth function of z = Phi^-1(u); it is interpolated by cubic
    Hermite polynomials between its exact values and slopes at ``_Z_NODES``, with a relative
    error below 1e-10 for df >= 1 (1e-14 above 40 df), far inside the integration error. Below
    1 df, where the lower tail underflows, the quantiles are computed at every point.
    """
    if df < 1:
        u = np.clip(_lattice(r + 1)[:, r], 1e-15, 1 - 1e-15)
        return np.sqrt(2 * special.gammaincinv(df / 2, u) / df)
    z, a = _Z_NODES, df / 2
    x = np.empty_like(z)  # the chi2 quantiles, each tail from its own side for full precision
    low = z <= 0
    x[low] = 2 * special.gammaincinv(a, special.ndtr(z[low]))
    x[~low] = 2 * special.gammainccinv(a, special.ndtr(-z[~low]))
    g = 0.5 * np.log(x / df)
    # dg/dz = phi(z) / (2 x chi2_pdf(x))
    log_pdf = (a - 1) * np.log(x) - x / 2 - a * math.log(2) - special.gammaln(a)
    h = z[1] - z[0]
    m = h * np.exp(-z * z / 2 - 0.5 * math.log(2 * math.pi) - log_pdf - np.log(2 * x))
    # the cubic on each interval, in t = (z - node) / h
    dg = np.diff(g)
    c1, c2, c3 = m[:-1], 3 * dg - 2 * m[:-1] - m[1:], m[:-1] + m[1:] - 2 * dg
    pos = (_lattice_z(r + 1) - z[0]) / h
    i = np.minimum(pos.astype(np.intp), len(z) - 2)
    t = pos - i
    return np.exp(g[i] + t * (c1[i] + t * (c2[i] + t * c3[i])))


def _mvt_box(corr: np.ndarray, lower: np.ndarray, upper: np.ndarray, df: float | None) -> float:
    """P(lower <= T <= upper) for a multivariate t (df None: normal) with correlation ``corr``.

    Genz's separation-of-variables method: the variables are drawn one at a time from their
    conditional limits, and the probability is the average product of the interval masses. The
    points are scrambled Sobol' sets with a fixed seed, so results are reproducible.
    """
    total = float(_mvt_box_shifts(corr, lower, upper, df).mean())
    return float(min(1.0, max(0.0, total)))


def _mvt_box_shifts(corr: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                    df: float | None) -> np.ndarray:
    """The estimate of :func:`_mvt_box` from each of the ``_SHIFTS`` scramblings: their mean is
    the probability, their standard deviation / sqrt(_SHIFTS) its standard error."""
    return _box_shifts(_cholesky_rows(np.asarray(corr, dtype=float)), np.asarray(lower, float),
                       np.asarray(upper, float), df)


def _box_shifts(factor: tuple[np.ndarray, np.ndarray], lower: np.ndarray, upper: np.ndarray,
                df: float | None, points: int | None = None) -> np.ndarray:
    """:func:`_mvt_box_shifts` from a factor of :func:`_cholesky_rows`; ``points``: only the
    first ``points`` of the first scrambling."""
    L, owner = factor
    r = L.shape[1]
    u = _lattice(r + 1)
    scale = np.ones((_SHIFTS, 1)) if df is None else _t_scale(df, r)
    if points is not None:
        u, scale = u[:1, :, :points], scale[:1, :points]
    return np.array([_genz(L, owner, lower, upper, u[s], scale[s]) for s in range(len(u))])


def _genz(L: np.ndarray, owner: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          u: np.ndarray, scale: np.ndarray) -> float:
    """One scrambling's estimate: ``u`` is (coordinate, point), ``scale`` the t denominators."""
    r = L.shape[1]
    y = np.empty((r - 1, u.shape[1]))
    f = 1.0
    for j in range(r):
        lo = hi = None  # limits of the j-th variable; None: unbounded
        rows = np.flatnonzero(owner == j)
        for i in rows:
            known = L[i, :j] @ y[:j] if j else 0.0  # contribution of the variables already drawn
            coef = L[i, j]
            for limit, is_lower in ((lower[i], coef > 0), (upper[i], coef < 0)):
                if math.isinf(limit):
                    continue
                bound = (scale * limit - known) / coef
                if is_lower:
                    lo = bound if lo is None else np.maximum(lo, bound)
                else:
                    hi = bound if hi is None else np.minimum(hi, bound)
        d = 0.0 if lo is None else special.ndtr(lo)
        if hi is None:
            e = 1.0
        elif j == 0 and lo is not None and np.all(lower[rows] == -upper[rows]):
            e = 1 - d  # a two-sided first variable: its limits are exactly -hi and hi
        else:
            e = special.ndtr(hi)
        mass = np.clip(e - d, 0.0, None)
        f = f * mass
        if j < r - 1:  # the last variable's value is never needed
            y[j] = special.ndtri(np.clip(d + u[j] * mass, 1e-16, 1 - 1e-16))
    return float(np.mean(f))


def _as_corr(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def adjusted_p_values(
    t: Sequence[float],
    corr: np.ndarray,
    df: float | Sequence[float] | None,
    alternative: str = "two-sided",
) -> np.ndarray:
    """Single-step adjusted p-values ``P(max T >= t_i)`` for correlated t statistics.

    ``df`` may be one value, one per statistic (each p-value then uses its own, as emmeans does),
    or ``None`` for the normal limit. ``alternative``: ``two-sided``, ``greater`` or ``less``.
    """
    if alternative not in ALTERNATIVES:
        raise InputError(f"alternative must be one of {', '.join(ALTERNATIVES)}")
    t = np.asarray(t, dtype=float)
    dfs = np.broadcast_to(np.asarray(np.nan if df is None else df, dtype=float), t.shape)
    dist = _MaxT(corr, two_sided=alternative == "two-sided")
    out = np.empty_like(t)
    for i, ti in enumerate(t):
        c = abs(ti) if alternative == "two-sided" else ti if alternative == "greater" else -ti
        out[i] = 1 - dist.prob(c, float(dfs[i]))
    return np.clip(out, 0.0, 1.0)


# The rough estimate that starts the critical-value search: the first 2^10 points of one scrambling.
_ROUGH_POINTS = 2**10


def critical_value(
    corr: np.ndarray, df: float | None, alpha: float = 0.05, alternative: str = "two-sided"
) -> float:
    """The c with ``P(max |T| <= c) = 1 - alpha`` (two-sided) or ``P(max T <= c) = 1 - alpha``.

    The root is first found on a rough estimate of the probability (1/128 of the points), then
    refined by Newton steps on the full estimate with the rough estimate's slope, until a step is
    below 1e-7: about two full evaluations instead of the nine a bracketing search takes.
    """
    two = alternative == "two-sided"
    df = _finite_df(df)
    dist = _MaxT(corr, two)
    target = 1 - alpha
    a_side = alpha / 2 if two else alpha
    if dist.k == 1:
        return float(_ppf(1 - a_side, df))
    # The Bonferroni bound brackets the answer from above, the single-test quantile from below,
    # widened a little because the integration error can exceed the distance to the bounds when
    # the contrasts are almost perfectly correlated.
    lo, hi = float(_ppf(1 - a_side, df)) - 0.05, float(_ppf(1 - a_side / dist.k, df)) + 0.05

    def gap(c: float, points: int | None = None) -> float:
        return dist.prob(c, df, points) - target

    try:
        c = optimize.brentq(gap, lo, hi, args=(_ROUGH_POINTS,), xtol=1e-6)
    except ValueError:  # the rough estimate does not change sign in the bracket
        return float(optimize.brentq(gap, lo, hi, xtol=1e-6))
    h = 1e-3
    slope = (gap(c + h, _ROUGH_POINTS) - gap(c - h, _ROUGH_POINTS)) / (2 * h)
    if slope > 0:
        for _ in range(8):
            step = gap(c) / slope
            c -= step
            if abs(step) < 1e-7 and lo < c < hi:
                return float(c)
    return float(optimize.brentq(gap, lo, hi, xtol=1e-6))


# --- Dunnett ----------------------------------------------------------------------------------


def _groups(samples: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    out = {}
    for label, values in samples.items():
        arr = np.asarray(values, dtype=float)
        out[str(label)] = arr[np.isfinite(arr)]
    return out


def _pooled_variance(groups: Mapping[str, np.ndarray]) -> tuple[float, int]:
    df = sum(len(g) - 1 for g in groups.values())
    if df < 1:
        raise InputError("not enough observations to estimate the variance")
    ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups.values())
    return ss / df, df


def dunnett_contrasts(
    estimates: Sequence[float],
    cov: np.ndarray,
    df: float | Sequence[float] | None,
    labels: Sequence[str] | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> list[dict]:
    """Multiplicity-adjusted tests and simultaneous CIs for correlated contrasts.

    ``cov`` is the covariance matrix of the ``estimates``. Returns one dict per contrast with
    ``estimate, se, df, t, p`` (adjusted), ``p_unadjusted``, ``lower, upper`` (simultaneous
    ``1 - alpha`` limits; a one-sided alternative leaves the other limit infinite) and ``crit``.
    Each p-value uses its contrast's own df; the critical value uses their mean.
    """
    est = np.asarray(estimates, dtype=float)
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    if cov.shape != (len(est), len(est)):
        raise InputError("the covariance matrix does not match the number of contrasts")
    se = np.sqrt(np.diag(cov))
    if not np.all(se > 0):
        raise InputError("a contrast has zero standard error")
    corr = _as_corr(cov)
    t = est / se
    dfs = np.broadcast_to(np.asarray(np.nan if df is None else df, dtype=float), est.shape)
    p_adj = adjusted_p_values(t, corr, None if df is None else dfs, alternative)
    labels = list(labels) if labels is not None else [str(i) for i in range(len(est))]
    # One critical value for the family, at the mean df: the dfs of contrasts fitted together
    # (e.g. Satterthwaite at one visit) differ by a fraction of a degree of freedom.
    finite = dfs[np.isfinite(dfs)]
    common_df = float(finite.mean()) if len(finite) == len(dfs) else None
    crit = critical_value(corr, common_df, alpha, alternative)
    rows = []
    for i in range(len(est)):
        d = float(dfs[i]) if np.isfinite(dfs[i]) else None
        if alternative == "two-sided":
            p_raw = 2 * _cdf(-abs(t[i]), d)
            lower, upper = est[i] - crit * se[i], est[i] + crit * se[i]
        elif alternative == "greater":
            p_raw, lower, upper = _cdf(-t[i], d), est[i] - crit * se[i], math.inf
        else:
            p_raw, lower, upper = _cdf(t[i], d), -math.inf, est[i] + crit * se[i]
        rows.append(
            {
                "contrast": labels[i],
                "estimate": float(est[i]),
                "se": float(se[i]),
                "df": d if d is not None else math.inf,
                "t": float(t[i]),
                "p": float(p_adj[i]),
                "p_unadjusted": float(p_raw),
                "lower": float(lower),
                "upper": float(upper),
                "crit": crit,
            }
        )
    return rows


def dunnett(
    samples: Mapping[str, Sequence[float]],
    control: str,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> list[dict]:
    """Dunnett's test of every group against ``control`` (pooled variance, one-way layout).

    ``samples`` maps a group label to its observations (missing values are dropped). Each result
    row has ``arm``, ``estimate`` (mean difference arm − control), ``se``, ``df``, ``t``, ``p``
    (adjusted), ``p_unadjusted``, simultaneous ``lower``/``upper`` and the critical value ``crit``.
    """
    groups = _groups(samples)
    if control not in groups:
        raise InputError(f"control group '{control}' not found")
    if len(groups) < 2:
        raise InputError("Dunnett's test needs the control and at least one other group")
    for label, g in groups.items():
        if len(g) == 0:
            raise InputError(f"group '{label}' has no observations")
    s2, df = _pooled_variance(groups)
    others = [g for g in groups if g != control]
    n0, m0 = len(groups[control]), groups[control].mean()
    inv_n = np.array([1 / len(groups[g]) for g in others])
    # Differences from a common control are correlated through the control mean's variance.
    cov = s2 * (np.diag(inv_n) + 1 / n0)
    est = [groups[g].mean() - m0 for g in others]
    rows = dunnett_contrasts(est, cov, df, labels=others, alpha=alpha, alternative=alternative)
    return [{"arm": row.pop("contrast"), **row} for row in rows]


def _row_level(row: Mapping, keys: Sequence[str]) -> object:
    for key in keys:
        if key in row:
            return row[key]
    return None


def mmrm_dunnett(result, arm: str, control: str, visit: str, alpha: float = 0.05) -> list[dict]:
    """Dunnett-adjusted MMRM contrasts (each arm − control) at every visit.

    ``result`` is a fitted model from :func:`annulus.stats.mmrm.fit_mmrm`. The joint distribution
    of the contrasts at one visit comes from the model's covariance of the fixed effects, so the
    adjustment accounts for the shared control and the covariance structure. Each contrast keeps its
    own (Satterthwaite or Kenward–Roger) degrees of freedom, as emmeans does.
    """
    rows = list(result.contrasts(arm=arm, control=control, by=visit))
    cov = _contrast_covariance(result, rows, arm=arm, control=control, visit=visit)
    by_visit: dict[object, list[int]] = {}
    for i, row in enumerate(rows):
        by_visit.setdefault(_row_level(row, (visit, "visit", "by")), []).append(i)
    out = []
    for level, idx in by_visit.items():
        labels = [str(_row_level(rows[i], (arm, "arm", "contrast", "level"))) for i in idx]
        if any(rows[i].get("estimable") is False for i in idx):
            # no adjustment can be made when a contrast of the family has no meaningful df
            out.extend({"visit": level, "arm": lab, "estimate": rows[i]["estimate"], "se": None,
                        "df": None, "t": None, "p": None, "lower": None, "upper": None,
                        "estimable": False, "note": rows[i].get("note") or "not estimable"}
                       for i, lab in zip(idx, labels))
            continue
        sub = cov[np.ix_(idx, idx)]
        adjusted = dunnett_contrasts(
            [rows[i]["estimate"] for i in idx], sub, [rows[i]["df"] for i in idx], labels, alpha
        )
        out.extend({"visit": level, "arm": r.pop("contrast"), **r} for r in adjusted)
    return out


def _contrast_covariance(result, rows, **kwargs) -> np.ndarray:
    """Covariance of the contrast estimates, in the order the fitted model lists them."""
    method = getattr(result, "contrast_cov", None)
    if not callable(method):
        raise InputError("the fitted model does not provide the covariance of its contrasts (contrast_cov)")
    return np.asarray(method(arm=kwargs["arm"], control=kwargs["control"], by=kwargs["visit"]), dtype=float)


# --- linear trend -----------------------------------------------------------------------------


def linear_contrast(
    estimates: Sequence[float],
    cov: np.ndarray,
    weights: Sequence[float],
    df: float | None,
    alternative: str = "two-sided",
    level: float = 0.95,
) -> dict:
    """Test of ``sum(w_i * estimate_i) = 0`` from the estimates' covariance (e.g. LS-means)."""
    w = np.asarray(weights, dtype=float)
    est = float(w @ np.asarray(estimates, dtype=float))
    se = float(np.sqrt(w @ np.asarray(cov, dtype=float) @ w))
    t = est / se
    dist = stats.norm if df is None or not math.isfinite(df) else stats.t(df)
    p = {"two-sided": 2 * dist.sf(abs(t)), "greater": dist.sf(t), "less": dist.cdf(t)}[alternative]
    q = dist.ppf(1 - (1 - level) / 2)
    return {
        "weights": w.tolist(),
        "estimate": est,
        "se": se,
        "df": df if df is not None else math.inf,
        "t": t,
        "p": float(p),
        "lower": est - q * se,
        "upper": est + q * se,
    }


def trend_test(
    samples: Mapping[str, Sequence[float]],
    scores: Mapping[str, float],
    alternative: str = "two-sided",
) -> dict:
    """Linear trend across doses: the contrast with centred dose scores on the group means.

    ``scores`` gives each group's dose (e.g. 0, 5, 10, 20 ×10⁶ cells); the weights are the scores
    minus their plain average, so they sum to zero and a flat response gives no signal. Uses the
    pooled ANOVA variance with N − k degrees of freedom.
    """
    groups = _groups(samples)
    missing = [g for g in groups if g not in scores]
    if missing:
        raise InputError(f"no dose score for group '{missing[0]}'")
    if len(groups) < 3:
        raise InputError("a trend test needs at least three dose groups")
    labels = sorted(groups, key=lambda g: scores[g])
    s2, df = _pooled_variance({g: groups[g] for g in labels})
    x = np.array([scores[g] for g in labels], dtype=float)
    if np.ptp(x) == 0:
        raise InputError("all dose scores are equal")
    w = x - x.mean()
    means = np.array([groups[g].mean() for g in labels])
    cov = s2 * np.diag([1 / len(groups[g]) for g in labels])
    out = linear_contrast(means, cov, w, df, alternative)
    out["groups"] = labels
    out["scores"] = x.tolist()
    return out


# --- MCP-Mod ----------------------------------------------------------------------------------

# Standardised shapes f0(d, theta): the contrast only needs the shape, not location or scale.
SHAPES: dict[str, Callable[[np.ndarray, float | None], np.ndarray]] = {
    "linear": lambda d, _: d,
    "emax": lambda d, ed50: d / (ed50 + d),
    "exponential": lambda d, delta: np.expm1(d / delta),
    "quadratic": lambda d, delta: d + delta * d**2,
}


def optimal_contrasts(
    doses: Sequence[float],
    n: Sequence[float],
    models: Mapping[str, float | None],
    direction: str = "increasing",
) -> np.ndarray:
    """Optimal contrast for each candidate model (columns), unit length, for group sizes ``n``.

    The contrast maximises the non-centrality of the test under that model's mean shape:
    ``c ∝ S⁻¹ (μ − (μ'S⁻¹1 / 1'S⁻¹1) 1)`` with ``S = diag(1/n)``.
    """
    doses = np.asarray(doses, dtype=float)
    s_inv = np.asarray(n, dtype=float)  # S^{-1} = diag(n)
    sign = 1.0 if direction == "increasing" else -1.0
    cols = []
    for name, theta in models.items():
        if name not in SHAPES:
            raise InputError(f"unknown dose-response model '{name}' (known: {', '.join(SHAPES)})")
        mu = sign * SHAPES[name](doses, theta)
        centre = (mu * s_inv).sum() / s_inv.sum()
        c = s_inv * (mu - centre)
        norm = np.sqrt((c**2).sum())
        if norm == 0:
            raise InputError(f"model '{name}' is flat over the doses")
        cols.append(c / norm)
    return np.column_stack(cols)


@dataclass
class DoseModelFit:
    """Least-squares fit of one dose–response model."""

    model: str
    coef: dict[str, float]
    rss: float
    aic: float
    fitted: dict[float, float] = field(default_factory=dict)

    def predict(self, dose: float | Sequence[float]) -> np.ndarray:
        d = np.asarray(dose, dtype=float)
        c = self.coef
        if self.model == "linear":
            return c["e0"] + c["delta"] * d
        if self.model == "quadratic":
            return c["e0"] + c["b1"] * d + c["b2"] * d**2
        if self.model == "emax":
            return c["e0"] + c["eMax"] * d / (c["ed50"] + d)
        return c["e0"] + c["e1"] * np.expm1(d / c["delta"])


def _default_bounds(model: str, max_dose: float) -> tuple[float, float]:
    # Same defaults as DoseFinding::defBnds.
    bounds = {"emax": (0.001, 1.5), "exponential": (0.1, 2.0)}[model]
    return bounds[0] * max_dose, bounds[1] * max_dose


def fit_dose_model(
    dose: Sequence[float],
    response: Sequence[float],
    model: str,
    bounds: tuple[float, float] | None = None,
) -> DoseModelFit:
    """Least-squares fit of ``linear``, ``quadratic``, ``emax`` or ``exponential`` to raw data.

    The nonlinear parameter (ED50 or delta) is profiled: for each value the others follow by linear
    least squares, and the residual sum of squares is minimised within ``bounds`` (default as
    DoseFinding). AIC is for a normal model with the variance estimated (parameters + 1).
    """
    d = np.asarray(dose, dtype=float)
    y = np.asarray(response, dtype=float)
    ok = np.isfinite(d) & np.isfinite(y)
    d, y = d[ok], y[ok]

    def linear_fit(columns: list[np.ndarray]) -> tuple[np.ndarray, float]:
        X = np.column_stack([np.ones_like(d), *columns])
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ beta
        return beta, float(resid @ resid)

    if model == "linear":
        beta, rss = linear_fit([d])
        coef = {"e0": beta[0], "delta": beta[1]}
    elif model == "quadratic":
        beta, rss = linear_fit([d, d**2])
        coef = {"e0": beta[0], "b1": beta[1], "b2": beta[2]}
    elif model in ("emax", "exponential"):
        lo, hi = bounds or _default_bounds(model, float(d.max()))

        def profile(theta: float) -> float:
            return linear_fit([SHAPES[model](d, theta)])[1]

        # A grid first, because the profile can have more than one local minimum.
        grid = np.linspace(lo, hi, 201)
        values = [profile(g) for g in grid]
        k = int(np.argmin(values))
        a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        best = optimize.minimize_scalar(profile, bounds=(a, b), method="bounded",
                                        options={"xatol": 1e-10 * max(1.0, hi)})
        theta = float(best.x) if best.fun <= values[k] else float(grid[k])
        beta, rss = linear_fit([SHAPES[model](d, theta)])
        coef = (
            {"e0": beta[0], "eMax": beta[1], "ed50": theta}
            if model == "emax"
            else {"e0": beta[0], "e1": beta[1], "delta": theta}
        )
    else:
        raise InputError(f"unknown dose-response model '{model}' (known: {', '.join(SHAPES)})")
    n = len(y)
    log_lik = -n / 2 * (math.log(2 * math.pi) + math.log(rss / n) + 1)
    aic = -2 * log_lik + 2 * (len(coef) + 1)
    fit = DoseModelFit(model, {k: float(v) for k, v in coef.items()}, rss, aic)
    fit.fitted = {float(x): float(fit.predict(x)) for x in np.unique(d)}
    return fit


def target_dose(fit: DoseModelFit, delta: float, direction: str = "increasing") -> float | None:
    """Smallest dose whose modelled effect over placebo reaches ``delta`` (DoseFinding's ``TD``,
    continuous type); ``None`` when the model never reaches it. Not limited to the tested doses."""
    c = dict(fit.coef)
    if direction == "decreasing":  # mirror the curve so that a benefit is an increase
        for k in ("delta", "eMax", "e1", "b1", "b2"):
            if k in c and not (fit.model == "exponential" and k == "delta"):
                c[k] = -c[k]
    td: float | None
    if fit.model == "linear":
        td = delta / c["delta"] if c["delta"] != 0 else None
    elif fit.model == "emax":
        td = None if delta > c["eMax"] else delta * c["ed50"] / (c["eMax"] - delta)
    elif fit.model == "exponential":
        ratio = 1 + delta / c["e1"] if c["e1"] != 0 else -1
        td = c["delta"] * math.log(ratio) if ratio > 0 else None
    else:  # quadratic: b1 d + b2 d^2 = delta, smallest positive root
        b1, b2 = c["b1"], c["b2"]
        if b2 == 0:
            td = delta / b1 if b1 != 0 else None
        else:
            disc = b1**2 + 4 * b2 * delta
            if disc < 0:
                return None
            roots = [(-b1 - math.sqrt(disc)) / (2 * b2), (-b1 + math.sqrt(disc)) / (2 * b2)]
            positive = [r for r in roots if r > 0]
            td = min(positive) if positive else None
    return td if td is not None and td > 0 else None


@dataclass
class McpModResult:
    """Result of :func:`mcpmod`."""

    doses: list[float]
    models: list[str]
    contrasts: np.ndarray  # dose × model
    corr: np.ndarray
    t: np.ndarray
    p: np.ndarray
    crit: float
    df: int
    alpha: float
    significant: list[str]
    fits: dict[str, DoseModelFit]
    selected: str | None
    delta: float | None = None
    target_doses: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "doses": self.doses,
            "alpha": self.alpha,
            "df": self.df,
            "critical_value": self.crit,
            "tests": [
                {
                    "model": m,
                    "contrast": self.contrasts[:, j].tolist(),
                    "t": float(self.t[j]),
                    "p": float(self.p[j]),
                    "significant": m in self.significant,
                }
                for j, m in enumerate(self.models)
            ],
            "contrast_correlation": self.corr.tolist(),
            "fits": {
                m: {"coef": f.coef, "aic": f.aic,
                    "fitted": {str(k): v for k, v in f.fitted.items()},
                    "target_dose": self.target_doses.get(m)}
                for m, f in self.fits.items()
            },
            "selected": self.selected,
            "delta": self.delta,
        }


def mcpmod(
    dose: Sequence[float],
    response: Sequence[float],
    models: Mapping[str, float | None],
    alpha: float = 0.025,
    direction: str = "increasing",
    delta: float | None = None,
) -> McpModResult:
    """MCP-Mod for a normal response with one observation per subject.

    ``models`` maps a candidate to its guesstimate, as in ``DoseFinding::Mods``: ``linear: None``,
    ``emax: ED50``, ``exponential: delta``, ``quadratic: delta`` (the ratio b2/b1, negative for an
    umbrella shape). The test is one-sided in ``direction`` at level ``alpha`` (DoseFinding's
    default 0.025). Significant models are fitted and the one with the smallest AIC is selected;
    with ``delta`` (a clinically relevant effect over placebo) each fit also gives the target dose
    reaching it (:func:`target_dose`).
    """
    if direction not in ("increasing", "decreasing"):
        raise InputError("direction must be 'increasing' or 'decreasing'")
    d = np.asarray(dose, dtype=float)
    y = np.asarray(response, dtype=float)
    ok = np.isfinite(d) & np.isfinite(y)
    d, y = d[ok], y[ok]
    levels = np.unique(d)
    if len(levels) < 3:
        raise InputError("MCP-Mod needs at least three dose levels")
    groups = {str(x): y[d == x] for x in levels}
    n = np.array([len(g) for g in groups.values()], dtype=float)
    means = np.array([g.mean() for g in groups.values()])
    s2, df = _pooled_variance(groups)
    C = optimal_contrasts(levels, n, models, direction)
    D = np.diag(1 / n)
    cov = C.T @ D @ C
    corr = _as_corr(cov)
    t = (C.T @ means) / np.sqrt(s2 * np.diag(cov))
    alt = "greater"  # the contrasts already point in the expected direction
    p = adjusted_p_values(t, corr, df, alt)
    crit = critical_value(corr, df, alpha, alt)
    names = list(models)
    significant = [m for m, tj in zip(names, t, strict=True) if tj > crit]
    fits = {m: fit_dose_model(d, y, m) for m in significant}
    selected = min(fits, key=lambda m: fits[m].aic) if fits else None
    targets = ({m: target_dose(f, delta, direction) for m, f in fits.items()}
               if delta is not None else {})
    return McpModResult(
        doses=levels.tolist(),
        models=names,
        contrasts=C,
        corr=corr,
        t=t,
        p=p,
        crit=crit,
        df=df,
        alpha=alpha,
        significant=significant,
        fits=fits,
        selected=selected,
        delta=delta,
        target_doses=targets,
    )
