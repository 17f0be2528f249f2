"""Per-visit comparisons between arms (requirement P-8.2).

From a long table (one row per subject and visit) this gives, at every visit:

* per arm: n, mean, SD, median, quartiles and a t-based 95 % CI, for the value and for the change
  from baseline;
* the comparison of the arms by one of four methods (``method``), and optionally others as
  sensitivity analyses (``sensitivity``):

  - ``ancova``: ``change ~ arm + baseline`` (or ``value ~ …``), each arm against the control by
    the difference of adjusted means with its CI, and Dunnett-adjusted (:mod:`annulus.stats.ancova`);
  - ``welch``: Welch's ANOVA and Welch t tests of each arm against the control, with CIs;
  - ``rank``: Kruskal–Wallis and Wilcoxon–Mann–Whitney tests with the Hodges–Lehmann shift and its
    CI (:mod:`annulus.stats.hodges_lehmann`);
  - ``auto`` (the default): the omnibus test chosen by the data, with the reason — Shapiro–Wilk in
    every arm (normality) and Levene's test with the median as centre (Brown–Forsythe; equal
    variances) lead to one-way ANOVA, Welch's ANOVA or the Kruskal–Wallis test — and each arm
    against the control by the matching two-sample test (Student t, Welch t or Mann–Whitney with
    the Hodges–Lehmann shift) and by Dunnett's many-to-one test. A pre-test choosing the test is
    not a sound primary analysis (it changes the error rates); a protocol pre-specifies one;
* responder rates (improvement of at least a threshold) by the chi-square test, or Fisher's exact
  test when an expected count is below 5.

All tests are two-sided. Numbers agree with R (``t.test``, ``oneway.test``, ``kruskal.test``,
``wilcox.test``, ``car::leveneTest``, ``chisq.test``, ``fisher.test``, ``multcomp``, ``lm``,
``emmeans``); see ``tests/fixtures/stats/make_fixtures.R`` and ``make_per_visit_methods.R``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats

from annulus.stats import _io
from annulus.stats._io import InputError
from annulus.stats.ancova import ancova
from annulus.stats.dose_response import dunnett
from annulus.stats.hodges_lehmann import hodges_lehmann
from annulus.stats.visits import order_visits, visit_number_column

NORMALITY_ALPHA = 0.05  # Shapiro–Wilk level below which an arm counts as non-normal
VARIANCE_ALPHA = 0.05  # Levene level below which the variances count as unequal
MIN_EXPECTED = 5  # below this expected count the chi-square approximation is not trusted

# the per-visit methods; "auto" is the test chosen by the data (kept, but not a sound primary rule)
METHODS = ("auto", "ancova", "welch", "rank")
METHOD_NAMES = {
    "auto": "test chosen by the data",
    "ancova": "ANCOVA",
    "welch": "Welch t tests",
    "rank": "rank tests (Mann–Whitney with Hodges–Lehmann shift, Kruskal–Wallis)",
}


# --- the input table --------------------------------------------------------------------------


def load_long_table(
    data: str | Path | pd.DataFrame,
    subject: str,
    arm: str,
    visit: str,
    value: str,
    baseline: str | None = None,
    control: str | None = None,
    visit_number: str | None = None,
    visit_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read and check a long table; returns columns subject, arm, visit, value[, baseline].

    The visit column comes back as an ordered categorical in time order (``visit_order``, else
    the numeric column ``visit_number`` or ``AVISITN`` when present, else the labels' time
    units; see :mod:`annulus.stats.visits`).

    Missing values (``NA``, empty) are allowed and dropped per analysis; anything else that is not
    a number, a subject in two arms or twice at one visit, a visit without any value, a single arm
    or an unknown control level raises :class:`InputError`.
    """
    frame = _io.read_csv(data) if not isinstance(data, pd.DataFrame) else data.copy()
    cols = [subject, arm, visit, value, baseline]
    _io.require_columns(frame, cols)
    out = pd.DataFrame(
        {
            "subject": _io.text_column(frame, subject),
            "arm": _io.text_column(frame, arm),
            "visit": _io.text_column(frame, visit),
            "value": _io.numeric_column(frame, value),
        }
    )
    if baseline is not None:
        out["baseline"] = _io.numeric_column(frame, baseline)
    if out.empty:
        raise InputError("the data have no rows")
    number_col = visit_number_column(frame.columns, visit, visit_number)
    numbers = _io.numeric_column(frame, number_col) if number_col is not None else None
    order = order_visits(out["visit"], explicit=visit_order, numbers=numbers,
                         number_column=number_col or "AVISITN", visit_column=visit)
    out["visit"] = pd.Categorical(out["visit"], categories=order, ordered=True)
    _io.check_one_arm_per_subject(out, "subject", "arm")
    twice = out.duplicated(["subject", "visit"])
    if twice.any():
        first = out[twice].iloc[0]
        raise InputError(f"subject '{first['subject']}' has more than one row for visit "
                         f"'{first['visit']}'")
    if baseline is not None:
        # One baseline per subject: a second value means the file mixes up subjects.
        per_subject = out.dropna(subset=["baseline"]).groupby("subject")["baseline"].nunique()
        if (per_subject > 1).any():
            raise InputError(
                f"subject '{per_subject[per_subject > 1].index[0]}' has more than one "
                f"'{baseline}' value"
            )
    arms = _io.arm_order(out["arm"], control)
    _io.check_arms(arms, control, arm)
    for v in _io.ordered_levels(out["visit"]):
        if out.loc[out["visit"] == v, "value"].notna().sum() == 0:
            raise InputError(f"visit '{v}' has no data in column '{value}'")
    return out


# --- descriptive statistics -------------------------------------------------------------------


def summarise(values: Sequence[float], level: float = 0.95) -> dict:
    """n, mean, SD, median, quartiles (R type 7) and the t-based CI of the mean."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    out = {"n": n, "mean": math.nan, "sd": math.nan, "median": math.nan, "q1": math.nan,
           "q3": math.nan, "lower": math.nan, "upper": math.nan}
    if n == 0:
        return out
    out.update(mean=float(x.mean()), median=float(np.median(x)),
               q1=float(np.quantile(x, 0.25)), q3=float(np.quantile(x, 0.75)))
    if n > 1:
        sd = float(x.std(ddof=1))
        half = stats.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, lower=out["mean"] - half, upper=out["mean"] + half)
    return out


# --- tests ------------------------------------------------------------------------------------


def welch_anova(samples: Sequence[Sequence[float]]) -> dict:
    """Welch's one-way ANOVA for unequal variances (R ``oneway.test(var.equal = FALSE)``)."""
    groups = [np.asarray(s, dtype=float) for s in samples]
    k = len(groups)
    n = np.array([len(g) for g in groups], dtype=float)
    m = np.array([g.mean() for g in groups])
    v = np.array([g.var(ddof=1) for g in groups])
    if np.any(v == 0):
        raise InputError("Welch's ANOVA needs some spread in every arm")
    w = n / v
    mw = (w * m).sum() / w.sum()
    tmp = (((1 - w / w.sum()) ** 2) / (n - 1)).sum() / (k**2 - 1)
    F = ((w * (m - mw) ** 2).sum() / (k - 1)) / (1 + 2 * (k - 2) * tmp)
    df2 = 1 / (3 * tmp)
    return {"statistic": float(F), "df1": k - 1.0, "df2": float(df2),
            "p": float(stats.f.sf(F, k - 1, df2))}


def choose_test(samples: Mapping[str, Sequence[float]]) -> dict:
    """Pick ANOVA, Welch's ANOVA or Kruskal–Wallis from the data, and say why.

    Returns ``test`` (``anova``, ``welch``, ``kruskal``), ``reason``, the Shapiro–Wilk p-value of
    every arm and Levene's F and p.
    """
    groups = {a: np.asarray(s, dtype=float) for a, s in samples.items()}
    normality: dict[str, float | None] = {}
    for a, g in groups.items():
        # Shapiro–Wilk needs 3 values and some spread.
        normality[a] = float(stats.shapiro(g).pvalue) if len(g) >= 3 and np.ptp(g) > 0 else None
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Tiny groups can make Levene's F undefined (nan); that is reported, not warned about.
        warnings.simplefilter("ignore", RuntimeWarning)
        lev = stats.levene(*groups.values(), center="median")
    levene = {"statistic": float(lev.statistic), "p": float(lev.pvalue)}
    small = [a for a, p in normality.items() if p is None]
    non_normal = [a for a, p in normality.items() if p is not None and p < NORMALITY_ALPHA]
    if small:
        test = "kruskal"
        reason = (f"normality cannot be checked in arm {', '.join(small)} "
                  "(fewer than 3 distinct values)")
    elif non_normal:
        test = "kruskal"
        worst = min(non_normal, key=lambda a: normality[a])
        reason = (f"not normal in {', '.join(non_normal)} "
                  f"(Shapiro–Wilk p = {normality[worst]:.3g} in {worst})")
    elif math.isfinite(levene["p"]) and levene["p"] < VARIANCE_ALPHA:
        test = "welch"
        reason = (f"normal in every arm (Shapiro–Wilk p ≥ {NORMALITY_ALPHA}) but unequal "
                  f"variances (Levene p = {levene['p']:.3g})")
    else:
        test = "anova"
        reason = (f"normal in every arm (Shapiro–Wilk p ≥ {NORMALITY_ALPHA}) and equal "
                  f"variances (Levene p = {levene['p']:.3g})")
    return {"test": test, "reason": reason, "shapiro_p": normality, "levene": levene}


def omnibus_test(samples: Mapping[str, Sequence[float]], test: str) -> dict:
    """Run ``anova``, ``welch`` or ``kruskal`` on the arms' samples."""
    groups = [np.asarray(s, dtype=float) for s in samples.values()]
    k, n = len(groups), sum(len(g) for g in groups)
    if test == "anova":
        r = stats.f_oneway(*groups)
        return {"name": "one-way ANOVA", "statistic": float(r.statistic), "df1": k - 1.0,
                "df2": float(n - k), "p": float(r.pvalue)}
    if test == "welch":
        return {"name": "Welch's ANOVA", **welch_anova(groups)}
    if test == "kruskal":
        r = stats.kruskal(*groups)
        return {"name": "Kruskal–Wallis", "statistic": float(r.statistic), "df1": k - 1.0,
                "df2": None, "p": float(r.pvalue)}
    raise InputError(f"unknown test '{test}'")


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> dict:
    """Wilcoxon–Mann–Whitney test as R ``wilcox.test``: exact when both samples are under 50 and
    there are no ties, otherwise the normal approximation with continuity and tie corrections.
    ``W`` is the statistic of ``x``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = np.concatenate([x, y])
    exact = len(x) < 50 and len(y) < 50 and len(np.unique(both)) == len(both)
    r = stats.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True,
                           method="exact" if exact else "asymptotic")
    return {"statistic": float(r.statistic), "p": float(r.pvalue), "exact": exact}


def two_sample_test(x: Sequence[float], y: Sequence[float], test: str, level: float = 0.95) -> dict:
    """The two-sample test matching the omnibus choice: x − y."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if test in ("anova", "welch"):
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # an arm without spread: scipy warns of precision loss; the result is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            r = stats.ttest_ind(x, y, equal_var=test == "anova")
            ci = r.confidence_interval(confidence_level=level)
        nx, ny = len(x), len(y)
        vx, vy = x.var(ddof=1), y.var(ddof=1)
        if test == "welch":
            se = math.sqrt(vx / nx + vy / ny)
        else:
            se = math.sqrt(((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2) * (1 / nx + 1 / ny))
        return {"name": "Student t" if test == "anova" else "Welch t",
                "estimate": float(x.mean() - y.mean()), "se": float(se),
                "statistic": float(r.statistic), "df": float(r.df), "p": float(r.pvalue),
                "lower": float(ci.low), "upper": float(ci.high)}
    return rank_test(x, y, level)


def rank_test(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> dict:
    """Wilcoxon–Mann–Whitney test of x against y with the Hodges–Lehmann shift x − y and its CI
    (R ``wilcox.test(x, y, conf.int = TRUE)``); ``difference_of_medians`` is descriptive only."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mw = mann_whitney(x, y)
    out = {"name": "Mann–Whitney", "estimate_name": "Hodges–Lehmann shift",
           "statistic": mw["statistic"], "df": None, "p": mw["p"], "exact": mw["exact"],
           "difference_of_medians": float(np.median(x) - np.median(y))}
    hl = hodges_lehmann(x, y, level)
    return {**out, "estimate": hl["estimate"], "lower": hl["lower"], "upper": hl["upper"],
            "level": hl["level"], **({"note": hl["note"]} if "note" in hl else {})}


def fisher_exact_2xk(table: np.ndarray) -> float:
    """Two-sided Fisher exact test for a 2 × k table (as R ``fisher.test``).

    Sums the probabilities of all tables with the same margins that are no more likely than the
    observed one (with R's relative tolerance 1e-7 for ties in probability).
    """
    table = np.asarray(table, dtype=np.int64)
    if table.shape[0] != 2:
        raise InputError("fisher_exact_2xk expects two rows")
    cols = table.sum(axis=0)
    r1 = int(table[0].sum())

    def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
        return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)

    # Enumerate first-row counts column by column, keeping the partial sums that can reach r1.
    sums = np.array([0], dtype=np.int64)
    logp = np.array([0.0])
    remaining = int(cols.sum())
    for c in cols:
        c = int(c)
        remaining -= c
        x = np.arange(c + 1)
        new_sums = (sums[:, None] + x[None, :]).ravel()
        new_logp = (logp[:, None] + log_choose(c, x)[None, :]).ravel()
        keep = (new_sums <= r1) & (new_sums + remaining >= r1)
        sums, logp = new_sums[keep], new_logp[keep]
    logp = logp[sums == r1]
    observed = float(log_choose(cols, table[0]).sum())
    # Normalise on the log scale to avoid overflow.
    top = logp.max()
    probs = np.exp(logp - top)
    p_obs = math.exp(observed - top)
    p = probs[probs <= p_obs * (1 + 1e-7)].sum() / probs.sum()
    return float(min(1.0, p))


def responder_test(responders: Sequence[int], totals: Sequence[int]) -> dict:
    """Chi-square test of responder rates (Yates-corrected for 2 × 2, as R), or Fisher's exact
    test when an expected count is below 5."""
    r = np.asarray(responders, dtype=np.int64)
    n = np.asarray(totals, dtype=np.int64)
    table = np.vstack([r, n - r])
    if table.sum() == 0 or (table.sum(axis=1) == 0).any():
        rate = "none" if r.sum() == 0 else "all"
        return {"name": None, "p": None, "reason": f"no test: {rate} of the subjects responded"}
    chi = stats.chi2_contingency(table, correction=True)
    min_exp = float(chi.expected_freq.min())
    if min_exp < MIN_EXPECTED:
        return {"name": "Fisher's exact", "statistic": None, "df": None,
                "p": fisher_exact_2xk(table), "min_expected": min_exp,
                "reason": f"smallest expected count {min_exp:.2f} < {MIN_EXPECTED}"}
    return {"name": "chi-square" + (" (Yates)" if table.shape[1] == 2 else ""),
            "statistic": float(chi.statistic), "df": int(chi.dof), "p": float(chi.pvalue),
            "min_expected": min_exp,
            "reason": f"every expected count ≥ {MIN_EXPECTED} (smallest {min_exp:.2f})"}


# --- the whole comparison ---------------------------------------------------------------------


def check_methods(method: str, sensitivity: Sequence[str] = ()) -> list[str]:
    """Refuse an unknown method, a repeated sensitivity analysis or one equal to the primary;
    returns the sensitivity analyses as a list."""
    for where, m in [("method", method)] + [("sensitivity", m) for m in sensitivity]:
        if m not in METHODS:
            raise InputError(f"{where}: unknown method '{m}'; choose one of {', '.join(METHODS)}")
    sens = list(sensitivity)
    if method in sens:
        raise InputError(f"sensitivity: '{method}' is already the primary method")
    if len(set(sens)) != len(sens):
        raise InputError("sensitivity: a method is listed twice")
    return sens


def per_visit_analysis(
    method: str,
    at: pd.DataFrame,
    samples: Mapping[str, np.ndarray],
    arms: Sequence[str],
    control: str,
    endpoint: str,
    level: float = 0.95,
) -> dict:
    """One method's comparison of the arms at one visit (``at``: that visit's rows, ``samples``:
    the analysed quantity per arm, at least 2 values in each). Returns ``method``, ``name``,
    ``omnibus`` and ``vs_control`` (per arm ``test``, and ``dunnett`` for ``auto`` and
    ``ancova``), plus ``choice`` (auto), ``model`` and ``adjusted_means`` (ancova), or ``note``
    when the method cannot be applied."""
    out: dict = {"method": method}
    if method == "auto":
        choice = choose_test(samples)
        dun = {r["arm"]: r for r in dunnett(samples, control, alpha=1 - level)}
        return {**out, "name": METHOD_NAMES[method], "choice": choice,
                "omnibus": omnibus_test(samples, choice["test"]),
                "vs_control": [
                    {"arm": a,
                     "test": two_sample_test(samples[a], samples[control], choice["test"], level),
                     "dunnett": {k: dun[a][k]
                                 for k in ("estimate", "se", "df", "t", "p", "lower", "upper")}}
                    for a in arms[1:]]}
    if method == "ancova":
        fit = ancova(at[endpoint], at["arm"], at["baseline"], arms, level, response=endpoint)
        out["name"] = fit.pop("name")
        if "note" in fit:
            return {**out, "note": fit["note"], "model": {"n": fit["n"]}}
        out["model"] = {k: fit[k] for k in ("n", "df", "slope", "covariate_mean")}
        return {**out, "omnibus": fit["omnibus"], "adjusted_means": fit["adjusted_means"],
                "vs_control": fit["vs_control"]}
    if method == "welch":
        try:
            omnibus = {"name": "Welch's ANOVA", **welch_anova(list(samples.values()))}
        except InputError as exc:
            omnibus = {"name": "Welch's ANOVA", "statistic": None, "df1": None, "df2": None,
                       "p": None, "note": str(exc)}
        return {**out, "name": METHOD_NAMES[method], "omnibus": omnibus,
                "vs_control": [{"arm": a, "test": two_sample_test(samples[a], samples[control],
                                                                 "welch", level)}
                               for a in arms[1:]]}
    if method == "rank":
        try:
            omnibus = omnibus_test(samples, "kruskal")
        except ValueError as exc:  # scipy: every value identical
            omnibus = {"name": "Kruskal–Wallis", "statistic": None, "df1": None, "df2": None,
                       "p": None, "note": str(exc)}
        return {**out, "name": METHOD_NAMES[method], "omnibus": omnibus,
                "vs_control": [{"arm": a, "test": rank_test(samples[a], samples[control], level)}
                               for a in arms[1:]]}
    raise InputError(f"method: unknown method '{method}'; choose one of {', '.join(METHODS)}")


def compare_visits(
    frame: pd.DataFrame,
    control: str,
    endpoint: str = "change",
    responder_threshold: float | None = None,
    lower_is_better: bool = True,
    level: float = 0.95,
    method: str = "auto",
    sensitivity: Sequence[str] = (),
) -> dict:
    """Every per-visit comparison for a table from :func:`load_long_table`.

    ``endpoint`` is the analysed quantity: ``change`` (value − baseline, needs a baseline column)
    or ``value``. ``method`` is the primary comparison of the arms (``auto``, ``ancova``,
    ``welch`` or ``rank``; see the module docstring) and ``sensitivity`` further methods reported
    after it; ``ancova`` needs a baseline column (the covariate). The primary method's results are
    in each visit's ``omnibus`` and ``vs_control`` (and ``choice`` for ``auto``), the others in
    its ``sensitivity`` list. A subject responds when the improvement — baseline − value when
    lower is better, value − baseline otherwise — is at least ``responder_threshold`` (e.g. 15 mm
    on the VAS, 10 points on the ODI); without a threshold the responder analysis is left out.
    """
    has_baseline = "baseline" in frame.columns
    if endpoint not in ("change", "value"):
        raise InputError(f"endpoint must be 'change' or 'value', got '{endpoint}'")
    sensitivity = check_methods(method, sensitivity)
    if endpoint == "change" and not has_baseline:
        raise InputError("endpoint 'change' needs a baseline column")
    if "ancova" in [method, *sensitivity] and not has_baseline:
        raise InputError("method 'ancova' needs a baseline column (the covariate: --baseline)")
    if responder_threshold is not None and not has_baseline:
        raise InputError("a responder analysis needs a baseline column")
    arms = _io.arm_order(frame["arm"], control)
    _io.check_arms(arms, control, "arm")
    for col in ("value", "baseline") if has_baseline else ("value",):
        inf = np.isinf(frame[col].to_numpy(float))
        if inf.any():
            raise InputError(f"column '{col}' has a non-finite value (row {int(np.flatnonzero(inf)[0])}); "
                             "numbers must be finite")
    data = frame.dropna(subset=["value"]).copy()
    if has_baseline:
        data["change"] = data["value"] - data["baseline"]
    visits = []
    for v in _io.ordered_levels(frame["visit"]):
        at = data[data["visit"] == v]
        if endpoint == "change":
            at = at.dropna(subset=["change"])
        samples = {a: at.loc[at["arm"] == a, endpoint].to_numpy() for a in arms}
        summary = [
            {
                "arm": a,
                "value": summarise(at.loc[at["arm"] == a, "value"], level),
                **({"change": summarise(at.loc[at["arm"] == a, "change"], level)}
                   if has_baseline else {}),
            }
            for a in arms
        ]
        entry: dict = {"visit": v, "endpoint": endpoint, "summary": summary}
        empty = [a for a, s in samples.items() if len(s) < 2]
        if empty:
            entry["note"] = f"no tests: fewer than 2 observations in arm {', '.join(empty)}"
            visits.append(entry)
            continue
        entry.update(per_visit_analysis(method, at, samples, arms, control, endpoint, level))
        if sensitivity:
            entry["sensitivity"] = [per_visit_analysis(m, at, samples, arms, control, endpoint,
                                                       level)
                                    for m in sensitivity]
        if responder_threshold is not None:
            entry["responders"] = _responders(at, arms, control, responder_threshold,
                                              lower_is_better)
        visits.append(entry)
    return {"control": control, "arms": arms, "endpoint": endpoint, "level": level,
            "method": method, "sensitivity": sensitivity,
            "covariate": "baseline" if "ancova" in [method, *sensitivity] else None,
            "responder_threshold": responder_threshold, "lower_is_better": lower_is_better,
            "visits": visits}


def decimal_places(values: Sequence[float], most: int = 10) -> int:
    """The fewest decimal places that write every value exactly (up to binary rounding), at
    most ``most``: 16.4 and 1.4 have 1, 15 has 0.

    >>> decimal_places([16.4, 1.4, 70]), decimal_places([0.125])
    (1, 3)
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    for places in range(most + 1):
        scaled = x * 10.0**places
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return places
    return most


def _responders(at: pd.DataFrame, arms: list[str], control: str, threshold: float,
                lower_is_better: bool) -> dict:
    at = at.dropna(subset=["baseline"])
    improvement = at["baseline"] - at["value"] if lower_is_better else at["value"] - at["baseline"]
    # At the data's precision: 16.4 - 1.4 is 14.999999999999998 in binary floating point but an
    # improvement of exactly 15 in data recorded to one decimal.
    places = decimal_places(np.concatenate([at["baseline"].to_numpy(float),
                                            at["value"].to_numpy(float)]))
    hit = improvement.round(places) >= threshold
    counts = [int(hit[at["arm"] == a].sum()) for a in arms]
    totals = [int((at["arm"] == a).sum()) for a in arms]
    rows = [{"arm": a, "responders": c, "n": n, "rate": c / n if n else math.nan}
            for a, c, n in zip(arms, counts, totals, strict=True)]
    pairwise = []
    for i, a in enumerate(arms[1:], start=1):
        test = responder_test([counts[i], counts[0]], [totals[i], totals[0]])
        pairwise.append({"arm": a, **test})
    return {"threshold": threshold, "rates": rows, "overall": responder_test(counts, totals),
            "vs_control": pairwise}


def compare_file(
    path: str | Path,
    subject: str,
    arm: str,
    visit: str,
    value: str,
    control: str,
    baseline: str | None = None,
    **options,
) -> dict:
    """:func:`load_long_table` followed by :func:`compare_visits` (the ``annulus compare`` core)."""
    frame = load_long_table(path, subject, arm, visit, value, baseline, control)
    return compare_visits(frame, control, **options)
