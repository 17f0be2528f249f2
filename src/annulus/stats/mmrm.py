"""Mixed model for repeated measures (MMRM), as SAS PROC MIXED ``REPEATED ... / TYPE=...``.

The model is ``y_i = X_i beta + e_i`` with ``e_i ~ N(0, Sigma[S_i, S_i])`` for subject ``i``
observed at visits ``S_i``: one visit x visit covariance ``Sigma`` shared by all subjects, and
missing observations simply left out (rows with a missing response are dropped; the subject
stays with the visits it has). ``beta`` is estimated by generalised least squares and the
covariance parameters by maximising the REML (or ML) likelihood with an analytic gradient.
Degrees of freedom by Satterthwaite or Kenward-Roger, computed in SAS's covariance
parameterisation so that the numbers match PROC MIXED.

Worked example (the R ``mmrm`` package's ``fev_data``)::

    >>> import pandas as pd
    >>> from annulus.stats.mmrm import fit_mmrm
    >>> fev = pd.read_csv("tests/fixtures/mmrm/fev_data.csv")          # doctest: +SKIP
    >>> res = fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT",
    ...                subject="USUBJID", visit="AVISIT", cov="us")      # doctest: +SKIP
    >>> round(res.neg2_loglik, 4)                                     # doctest: +SKIP
    3386.4499
    >>> res.contrasts(arm="ARMCD", control="PBO", by="AVISIT")[-1]["estimate"]  # doctest: +SKIP
    4.3985...

Speed comes from grouping subjects by their pattern of observed visits: every subject in a
group shares one Cholesky factor, so the likelihood is a handful of matrix products per group.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from annulus.stats._covariance import STRUCTURES, hessian_of_map, jacobian

__all__ = ["fit_mmrm", "MmrmError", "MmrmResult", "COV_STRUCTURES", "DF_METHODS", "check_arm"]

COV_STRUCTURES = tuple(STRUCTURES)
DF_METHODS = ("satterthwaite", "kenward-roger", "residual", "between-within")
_LOG2PI = math.log(2 * math.pi)

# When an estimate is "not estimable" (its SE, df, t, p and CI are reported as None):
# * a denominator df below 1: a t distribution with fewer than 1 df has no mean, its 97.5 % point
#   exceeds 12.7 and grows without bound (about 1e150 at df 3e-5), so the interval carries no
#   information; such df arise only when the contrast's variance rests on a covariance
#   parameter the data hardly inform (e.g. one subject per arm at a visit);
# * with Kenward-Roger, an adjusted variance more than 10 times the model-based one: the
#   adjustment is a second-order correction (a few per cent to tens of per cent in small trials);
#   a tenfold inflation means the expansion it rests on has broken down.
DF_MIN = 1.0
KR_INFLATION_MAX = 10.0
# A covariance parameter is "not identified" when its standard error exceeds 100 times its
# scale (the largest visit variance for (co)variances, 1 for correlations): with even one
# subject, a variance's asymptotic SE is at most sqrt(2) times the variance and a correlation's
# at most 1, so 100 leaves a wide margin.
COV_PARAM_SE_MAX = 100.0
_CORRELATION_PARAMS = ("CSH", "AR(1)", "ARH(1)")


class MmrmError(ValueError):
    """A problem with the data, formula or model that the user can fix (one-line message)."""


# --------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------


@dataclass
class _Pattern:
    """Subjects sharing the same set of observed visits, reduced to sufficient statistics.

    With ``S`` the covariance block of these visits, every likelihood term is a contraction of
    ``S^-1`` with sums over subjects that do not depend on ``S``; computing those sums once makes
    each likelihood evaluation independent of the number of subjects.
    """

    idx: np.ndarray  # visit indices (into the visit levels) observed by this group
    n: int  # subjects in the group
    mxx: np.ndarray  # (m, m, k, k): sum_i X_i[a]' X_i[b]
    mxy: np.ndarray  # (m, m, k): sum_i X_i[a]' y_i[b]
    myy: np.ndarray  # (m, m): sum_i y_i[a] y_i[b]
    sinv: np.ndarray | None = None  # S^-1 at the estimate (kept for inference)


@dataclass
class _Design:
    response: str
    subject: str
    visit: str
    visits: list
    columns: list
    X: np.ndarray
    y: np.ndarray
    subj_codes: np.ndarray
    visit_idx: np.ndarray
    used: pd.DataFrame
    spec: object
    factors: dict  # categorical variable -> sorted levels
    numerics: dict  # numeric variable -> mean over the analysed rows
    patterns: list


def _time_levels(df: pd.DataFrame, visit: str, visit_number: str | None) -> list:
    """The visit levels in time order (see ``annulus.stats.visits``), errors as MmrmError."""
    from annulus.stats._io import InputError
    from annulus.stats.visits import order_visits, visit_number_column

    try:
        number_col = visit_number_column(df.columns, visit, visit_number)
        values = df[visit]
        if number_col is not None:
            labels = _labels(values)
            return order_visits(labels, numbers=df[number_col], number_column=number_col,
                                visit_column=visit)
        if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(values):
            return _natural_levels(values)
        return order_visits(_labels(values), visit_column=visit)
    except InputError as exc:
        raise MmrmError(str(exc)) from None


def _natural_levels(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories if (values == c).any()]
    if pd.api.types.is_numeric_dtype(values):
        return [_label(v) for v in sorted(values.dropna().unique())]
    return sorted((str(v) for v in values.dropna().unique()), key=_natural_key)


# a number inside a label: signed when the minus stands alone ("Week -1", not "VIS-1"), decimals too
_NUMBER = re.compile(r"(?<![\w.])-?[0-9]+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?")


def _natural_key(label: str) -> tuple:
    """"VIS2" before "VIS10", "Week -1" before "Week 0", "Day 1.25" before "Day 1.5": numbers
    inside a label compare as numbers; the label itself breaks ties ("VIS01" and "VIS1")."""
    parts, pos = [], 0
    for m in _NUMBER.finditer(label):
        if m.start() > pos:
            parts.append((1, 0.0, label[pos:m.start()].lower()))
        parts.append((0, float(m.group()), ""))
        pos = m.end()
    if pos < len(label):
        parts.append((1, 0.0, label[pos:].lower()))
    return tuple(parts), label


def _level_text(v) -> str:
    """A factor level as text for matching user input: 5, 5.0 and "5" are the same level."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return _label(f) if np.isfinite(f) else str(v)


def _label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _labels(values: pd.Series, make=_label) -> pd.Series:
    """``make`` (``_label``) of every value, missing values kept missing; each distinct value is
    labelled once, not once a row (a trial's visit column repeats a few values many times)."""
    present = values.dropna()
    table = {v: make(v) for v in pd.unique(present.to_numpy(dtype=object))}
    out = pd.Series(None, index=values.index, dtype=object)
    out[values.notna()] = present.map(table).to_numpy(dtype=object)
    return out


def _formula_variables(formula: str):
    import formulaic

    if not isinstance(formula, str) or "~" not in formula:
        raise MmrmError(f"formula {formula!r} must have the form 'response ~ terms'")
    try:
        parsed = formulaic.Formula(formula)
    except Exception as exc:  # formulaic raises several syntax error types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmrmError(f"cannot parse formula {formula!r}: {first}") from None
    if not hasattr(parsed, "lhs"):
        raise MmrmError(f"formula {formula!r} must have the form 'response ~ terms'")
    lhs = sorted(parsed.lhs.required_variables)
    if len(lhs) != 1 or str(parsed.lhs).strip() != lhs[0]:
        raise MmrmError(f"formula {formula!r} must have a single column name on the left "
                        "(transform the response in the data first)")
    return lhs[0], sorted(parsed.rhs.required_variables)


def _prepare(data, formula, subject, visit, visit_order, visit_number=None) -> _Design:
    import formulaic

    if not isinstance(data, pd.DataFrame):
        raise MmrmError("data must be a pandas DataFrame")
    response, rhs_vars = _formula_variables(formula)
    for role, col in (("subject", subject), ("visit", visit), ("response", response)):
        if col not in data.columns:
            raise MmrmError(f"{role} column {col!r} not found in the data")
    for col in rhs_vars:
        if col not in data.columns:
            raise MmrmError(f"formula names unknown column {col!r}")

    df = data.copy()
    raw = df[response]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        row = bad.idxmax()
        raise MmrmError(f"response {response!r} has a non-numeric value {raw[row]!r} (row {row})")
    df[response] = num.astype(float)
    for col in [response] + [c for c in rhs_vars if pd.api.types.is_numeric_dtype(df[c])
                             and not pd.api.types.is_bool_dtype(df[c])]:
        inf = np.isinf(df[col].to_numpy(float))
        if inf.any():
            row = df.index[int(np.flatnonzero(inf)[0])]
            raise MmrmError(f"column {col!r} has a non-finite value {float(df[col][row]):g} (row {row}); "
                            "numbers must be finite")

    # Visit levels in time order, by the one rule of annulus.stats.visits: explicit order >
    # numeric visit column (visit_number, or AVISITN when present) > categorical order >
    # numbers > labels with time units > one text with one number; otherwise refused.
    if visit_order is not None:
        visits = [str(v) for v in visit_order]
        unknown = sorted(set(df[visit].dropna().map(_label)) - set(visits))
        if unknown:
            raise MmrmError(f"visit {unknown[0]!r} is not in the visit order {visits}")
    else:
        visits = _time_levels(df, visit, visit_number)
    df[visit] = _labels(df[visit]).where(df[visit].notna(), df[visit])
    if len(visits) == 0:
        raise MmrmError(f"visit column {visit!r} has no values")

    # Categorical variables become plain strings so reference levels are the first sorted.
    factors_all = []
    for col in rhs_vars:
        s = df[col]
        if (isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s)
                or pd.api.types.is_bool_dtype(s) or pd.api.types.is_string_dtype(s)):
            df[col] = _labels(s, str).where(s.notna(), np.nan).astype(object)
            factors_all.append(col)

    needed = [response, subject, visit] + [c for c in rhs_vars if c not in (subject, visit)]
    used = df.loc[df[needed].notna().all(axis=1)].copy()
    for v in visits:
        if not (used[visit] == v).any():
            raise MmrmError(f"visit {v!r} has no non-missing values of {response!r}")
    if used.empty:
        raise MmrmError(f"no rows with a non-missing {response!r}")
    used[subject] = _labels(used[subject])
    dup = used.duplicated([subject, visit])
    if dup.any():
        r = used.loc[dup].iloc[0]
        raise MmrmError(f"subject {r[subject]!r} has more than one row at visit {r[visit]!r}")

    factors = {}
    for col in factors_all:
        if col == visit:
            continue
        # A level with subjects in the data but no analysable row (e.g. an arm whose responses
        # are all missing) would silently drop out of the model: refuse, naming it.
        lost = sorted(set(df[col].dropna()) - set(used[col]))
        if lost:
            n_lost = df.loc[df[col] == lost[0], subject].nunique()
            raise MmrmError(
                f"level {lost[0]!r} of {col!r} has no rows with {response!r} and every model "
                f"variable present ({n_lost} subject{'s' * (n_lost != 1)} in the data); "
                "remove it from the data or check the missing values")
    for col in factors_all:
        levels = sorted(used[col].unique())
        if len(levels) < 2:
            raise MmrmError(
                f"factor {col!r} has a single level {levels[0]!r} in the analysed data; "
                "at least two are needed")
        factors[col] = levels
    if visit in factors:  # LS-means and contrasts list the visits in time order
        factors[visit] = [v for v in visits if v in set(factors[visit])]
    numerics = {c: float(pd.to_numeric(used[c]).mean()) for c in rhs_vars if c not in factors}

    used["_visit_idx"] = used[visit].map({v: i for i, v in enumerate(visits)}).astype(int)
    used = used.sort_values([subject, "_visit_idx"], kind="mergesort").reset_index(drop=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mm = formulaic.model_matrix(formula, used, na_action="raise")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmrmError(f"cannot build the design from formula {formula!r}: {first}") from None
    X = np.asarray(mm.rhs, dtype=float)
    columns = list(mm.rhs.columns)
    # A numeric column used as a factor (C(x) in the formula) is a factor for LS-means too.
    for col in list(numerics):
        coded = re.compile(rf"(^|:)(C\({re.escape(col)}\b[^:]*\)|{re.escape(col)})\[")
        if any(coded.search(c) for c in columns):
            factors[col] = [v.item() if hasattr(v, "item") else v
                            for v in sorted(pd.unique(used[col]))]
            del numerics[col]
    y = used[response].to_numpy(float)
    _check_rank(X, columns)

    subj_codes, _ = pd.factorize(used[subject], sort=True)
    visit_idx = used["_visit_idx"].to_numpy()
    patterns = _patterns(X, y, subj_codes, visit_idx)
    design = _Design(response, subject, visit, visits, columns, X, y, subj_codes, visit_idx,
                     used, mm.rhs.model_spec, factors, numerics, patterns)
    return design


def _check_rank(X: np.ndarray, columns: list) -> None:
    n, k = X.shape
    if n <= k:
        raise MmrmError(f"singular design: {n} observations for {k} fixed-effect columns")
    # Scale columns so the test does not depend on units, then look at X'X's spectrum.
    norms = np.sqrt((X**2).sum(axis=0))
    if np.any(norms == 0):
        raise MmrmError(f"singular design: column {columns[int(np.argmin(norms))]!r} is all zero")
    xs = X / norms
    w, v = np.linalg.eigh(xs.T @ xs)
    tol = w.max() * k * 1e-10
    rank = int((w > tol).sum())
    if rank < k:
        # The null vector's last non-negligible entry names a column the others reproduce.
        null = v[:, 0]
        j = int(np.nonzero(np.abs(null) > 1e-6)[0][-1])
        raise MmrmError(
            f"singular design: column {columns[j]!r} is a linear combination of the others "
            f"(rank {rank} < {k} columns)")


def _patterns(X, y, subj_codes, visit_idx) -> list:
    """Group subjects by their observed-visit pattern; rows arrive sorted by subject, visit."""
    n_subj = subj_codes.max() + 1
    starts = np.searchsorted(subj_codes, np.arange(n_subj))
    counts = np.bincount(subj_codes, minlength=n_subj)
    keys = [tuple(visit_idx[s:s + c]) for s, c in zip(starts, counts)]
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    out = []
    k = X.shape[1]
    for key, members in sorted(groups.items()):
        members = np.asarray(members)
        m = len(key)
        rows = starts[members][:, None] + np.arange(m)[None, :]  # (n, m)
        xf = X[rows].reshape(len(members), m * k)  # one row per subject: visits x columns
        yf = y[rows]  # (n, m)
        mxx = (xf.T @ xf).reshape(m, k, m, k).transpose(0, 2, 1, 3)
        mxy = (xf.T @ yf).reshape(m, k, m).transpose(0, 2, 1)
        out.append(_Pattern(idx=np.asarray(key), n=len(members),
                            mxx=np.ascontiguousarray(mxx), mxy=np.ascontiguousarray(mxy),
                            myy=yf.T @ yf))
    return out


# --------------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------------


class _NotPositiveDefinite(Exception):
    pass


def _evaluate(patterns, sigma, k, n_obs, reml, want_grad=True, keep=False):
    """-2 log-likelihood at ``sigma`` (beta profiled out) and its gradient with respect to the
    elements of ``sigma`` (a T x T matrix G such that d(-2l) = sum(G * dSigma)).

    Returns (value, G, beta, X'V^-1X).
    """
    t = sigma.shape[0]
    xtvx = np.zeros((k, k))
    xtvy = np.zeros(k)
    yvy = 0.0
    logdet = 0.0
    sinvs = []
    for p in patterns:
        try:
            low = np.linalg.cholesky(sigma[np.ix_(p.idx, p.idx)])
        except np.linalg.LinAlgError:
            raise _NotPositiveDefinite from None
        diag = np.diag(low)
        if np.any(diag <= 0) or not np.all(np.isfinite(diag)):
            raise _NotPositiveDefinite
        linv = np.linalg.inv(low)  # tiny (m x m); faster than a triangular solve per call
        sinv = linv.T @ linv
        xtvx += np.tensordot(sinv, p.mxx, axes=([0, 1], [0, 1]))
        xtvy += np.tensordot(sinv, p.mxy, axes=([0, 1], [0, 1]))
        yvy += float((sinv * p.myy).sum())
        logdet += 2.0 * p.n * np.log(diag).sum()
        sinvs.append(sinv)
    xtvx = 0.5 * (xtvx + xtvx.T)
    try:
        lx = np.linalg.cholesky(xtvx)
    except np.linalg.LinAlgError:
        raise _NotPositiveDefinite from None
    lx_inv = np.linalg.inv(lx)
    beta = lx_inv.T @ (lx_inv @ xtvy)
    rss = yvy - beta @ xtvy  # r'V^-1 r at the GLS estimate
    if reml:
        logdet_x = 2.0 * np.log(np.diag(lx)).sum()
        value = (n_obs - k) * _LOG2PI + logdet + logdet_x + rss
    else:
        value = n_obs * _LOG2PI + logdet + rss
    if keep:
        for p, sinv in zip(patterns, sinvs):
            p.sinv = sinv
    if not want_grad:
        return value, None, beta, xtvx
    grad = np.zeros((t, t))
    h = lx_inv.T @ lx_inv if reml else None  # (X'V^-1X)^-1
    for p, sinv in zip(patterns, sinvs):
        # Residual cross-products sum_i r_i r_i' from the stored sums.
        xyb = np.tensordot(p.mxy, beta, axes=([2], [0]))  # (m, m): sum_i (X_i[a] b) y_i[b]
        rr = p.myy - xyb - xyb.T + np.einsum("abkl,k,l->ab", p.mxx, beta, beta)
        inner = p.n * sinv - sinv @ rr @ sinv
        if reml:
            xhx = np.tensordot(p.mxx, h, axes=([2, 3], [0, 1]))  # sum_i X_i H X_i'
            inner -= sinv @ xhx @ sinv
        grad[np.ix_(p.idx, p.idx)] += inner
    return value, 0.5 * (grad + grad.T), beta, xtvx


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass
class MmrmResult:
    """A fitted MMRM. ``coefficients``, ``lsmeans()`` and ``contrasts()`` return lists of dicts.

    ``covariance`` is the visit x visit matrix as a DataFrame labelled by visit (``.to_numpy()``
    for the array); ``vcov`` is the covariance of ``beta`` (Kenward-Roger adjusted when
    ``df_method`` is kenward-roger); ``cov_params`` are the covariance parameters in SAS's
    parameterisation (UN(i,j), Var(i), CSH, AR(1), TOEP(k), Residual) with standard errors.
    """

    formula: str
    cov: str
    method: str
    df_method: str
    neg2_loglik: float
    converged: bool
    coefficients: list
    covariance: pd.DataFrame
    cov_params: list
    n_subjects: int
    n_obs: int
    iterations: int
    diagnostics: dict
    beta: np.ndarray = field(repr=False)
    vcov: np.ndarray = field(repr=False)
    _design: _Design = field(repr=False)
    _infer: object = field(repr=False)
    warnings: list = field(default_factory=list)

    @property
    def visits(self) -> list:
        return list(self._design.visits)

    # -- LS-means ---------------------------------------------------------------------------

    def _grid_rows(self, specs: list):
        """Mean design row for each combination of ``specs`` levels: equal weights over the
        other factors, numeric covariates at their mean (as SAS LSMEANS / emmeans)."""
        d = self._design
        for s in specs:
            if s not in d.factors:
                raise MmrmError(f"{s!r} is not a categorical variable of the model formula")
        names = list(d.factors)
        grid = pd.DataFrame(list(itertools.product(*(d.factors[f] for f in names))), columns=names)
        for c, v in d.numerics.items():
            grid[c] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xg = np.asarray(d.spec.get_model_matrix(grid), dtype=float)
        keys = list(itertools.product(*(d.factors[s] for s in specs)))
        rows = []
        for key in keys:
            mask = np.ones(len(grid), bool)
            for s, lev in zip(specs, key):
                mask &= (grid[s] == lev).to_numpy()
            rows.append(xg[mask].mean(axis=0))
        return keys, np.array(rows)

    def lsmeans(self, specs=None, level: float = 0.95) -> list:
        """LS-means for each combination of the factors in ``specs``.

        >>> res.lsmeans(["ARMCD", "AVISIT"])[0]                # doctest: +SKIP
        {'ARMCD': 'PBO', 'AVISIT': 'VIS1', 'estimate': 33.33..., 'se': ..., 'df': ..., ...}
        """
        if specs is None:
            specs = [self._design.visit] if self._design.visit in self._design.factors else []
        if isinstance(specs, str):
            specs = [specs]
        keys, lmat = self._grid_rows(list(specs))
        est, se, df = self._infer(lmat)
        why = self._infer.not_estimable(lmat, se, df)
        out = []
        for key, e, s, f, w in zip(keys, est, se, df, why):
            row = dict(zip(specs, key))
            row.update(_interval(e, s, f, level, with_test=False, reason=w))
            out.append(row)
        return out

    def contrasts(self, arm: str, control: str | None = None, by: str | None = "__visit__",
                  level: float = 0.95) -> list:
        """Each level of ``arm`` minus ``control`` at each level of ``by`` (default: the visit,
        when it is in the model; ``by=None`` averages over visits).

        >>> res.contrasts(arm="ARMCD", control="PBO", by="AVISIT")[3]   # doctest: +SKIP
        {'arm': 'TRT', 'visit': 'VIS4', 'estimate': 4.3985, 'se': 1.6805, 'df': 133.0, ...}
        """
        labels, control, lmat = self._contrast_matrix(arm, control, by)
        est, se, df = self._infer(lmat)
        why = self._infer.not_estimable(lmat, se, df)
        out = []
        for (a, b), e, s, f, w in zip(labels, est, se, df, why):
            row = {"arm": a, "control": control, "visit": b}
            row.update(_interval(e, s, f, level, with_test=True, reason=w))
            out.append(row)
        return out

    def contrast_cov(self, arm: str, control: str | None = None, by: str | None = "__visit__") -> np.ndarray:
        """Covariance matrix of the estimates of ``contrasts(arm, control, by)``, in the same
        order (Dunnett's adjustment across arms needs their correlation, not only their SEs)."""
        _, _, lmat = self._contrast_matrix(arm, control, by)
        return lmat @ self._infer.vcov_used @ lmat.T

    def _by(self, by):
        """``by`` of the contrasts and the trend: "__visit__" means the visit when the model has it."""
        if by == "__visit__":
            d = self._design
            return d.visit if d.visit in d.factors else None
        return by

    def _contrast_matrix(self, arm, control, by):
        """(labels, control level, coefficient rows) of each arm minus control at each ``by``."""
        d = self._design
        if arm not in d.factors:
            raise MmrmError(f"arm {arm!r} is not a categorical variable of the model formula")
        check_arm(d.used, d.subject, arm)
        levels = d.factors[arm]
        if control is None:
            control = levels[0]
        else:  # match by text too, so "0" from a command line finds the numeric level 0
            found = [lev for lev in levels if lev == control or str(lev) == str(control)]
            if not found:
                raise MmrmError(f"control level {str(control)!r} is not a level of {arm!r} "
                                f"({', '.join(map(str, levels))})")
            control = found[0]
        by = self._by(by)
        specs = [arm] + ([by] if by else [])
        keys, lmat = self._grid_rows(specs)
        index = {k: i for i, k in enumerate(keys)}
        by_levels = d.factors[by] if by else [None]
        rows, labels = [], []
        for a in levels:
            if a == control:
                continue
            for b in by_levels:
                ka, kc = ((a, b), (control, b)) if by else ((a,), (control,))
                rows.append(lmat[index[ka]] - lmat[index[kc]])
                labels.append((a, b))
        return labels, control, np.array(rows)

    def trend(self, arm: str, scores: dict, by: str | None = "__visit__", level: float = 0.95) -> list:
        """Linear dose trend on the LS-means of ``arm`` at each level of ``by`` (default: the
        visit): the contrast with weights = dose score minus the plain mean of the scores (so
        they sum to zero), with the model's standard error and denominator df. ``scores`` maps
        each level of ``arm`` to its dose, e.g. {"control": 0, "low": 5, "mid": 10, "high": 20}.
        A negative estimate means the outcome falls as the dose rises.

        >>> res.trend("arm", {"control": 0, "low": 5, "mid": 10, "high": 20})[-1]   # doctest: +SKIP
        {'visit': 'M24', 'estimate': ..., 'se': ..., 'df': ..., 't': ..., 'p': ..., ...}
        """
        d = self._design
        if arm not in d.factors:
            raise MmrmError(f"arm {arm!r} is not a categorical variable of the model formula")
        levels = d.factors[arm]
        text = {_level_text(k): v for k, v in scores.items()}
        missing = [lev for lev in levels if _level_text(lev) not in text]
        if missing:
            raise MmrmError(f"no dose score for level {str(missing[0])!r} of {arm!r}")
        unknown = sorted(set(text) - {_level_text(lev) for lev in levels})
        if unknown:
            raise MmrmError(f"{unknown[0]!r} is not a level of {arm!r} ({', '.join(map(str, levels))})")
        if len(levels) < 3:
            raise MmrmError("a trend test needs at least three dose groups")
        try:
            x = np.array([float(text[_level_text(lev)]) for lev in levels])
        except (TypeError, ValueError):
            raise MmrmError("dose scores must be numbers") from None
        if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
            raise MmrmError("dose scores must be finite and not all equal")
        w = x - x.mean()
        by = self._by(by)
        keys, lmat = self._grid_rows([arm] + ([by] if by else []))
        index = {k: i for i, k in enumerate(keys)}
        rows, labels = [], []
        for b in d.factors[by] if by else [None]:
            rows.append(sum(wi * lmat[index[(a, b) if by else (a,)]] for wi, a in zip(w, levels)))
            labels.append(b)
        lrows = np.array(rows)
        est, se, df = self._infer(lrows)
        why = self._infer.not_estimable(lrows, se, df)
        out = []
        for b, e, s_, f, r in zip(labels, est, se, df, why):
            row = {"visit": b, "weights": dict(zip(map(str, levels), w.tolist()))}
            row.update(_interval(e, s_, f, level, with_test=True, reason=r))
            out.append(row)
        return out

    def type3_tests(self, basis: str = "reference") -> list:
        """"Type 3 Tests of Fixed Effects" as SAS PROC MIXED prints them: for each term of the
        formula, the F test that its coefficients are zero when the model is coded with
        sum-to-zero contrasts (each factor's effect averaged with equal weights over the levels
        of the factors it is crossed with; continuous covariates at 0). The denominator df of a
        multi-df test comes from the one-df dfs of the contrast's eigen-directions (Fai and
        Cornelius 1996, as SAS and the R package mmrm do); with Kenward–Roger, the F of a
        multi-df term is scaled by lambda on m df (Kenward and Roger 1997).

        F, the numerator df, the Kenward–Roger df and the residual df do not depend on how the
        hypothesis's rows are written; the Satterthwaite df of a multi-df term does (the
        eigen-directions change with the rows). ``basis`` chooses the rows:

        * ``"reference"`` (default): SAS's rows — each level of each factor of the term minus
          the reference level (products of such differences for an interaction), the reference
          being the fit's (the first level: the first visit in time order, the first arm
          sorted, or ``Treatment('...')``'s). This is SAS PROC MIXED's Type 3 L when SAS's last
          CLASS level is that reference (``CLASS AVISIT(REF='VIS1') ...``, or data so
          ordered): on ``fev_data`` (unstructured, REML) AVISIT gets 148.11 df, SAS prints 148.
          SAS with its default order (reference = the last level sorted, VIS4) uses other rows
          and other df (143.72 for the same test by this computation).
        * ``"sum"``: the sum-to-zero coefficients themselves (each level but the last minus the
          mean of the levels), the rows of the R package mmrm's ``car::Anova(fit, type = "III")``
          (``h_contr_sum_type3_contrasts``): AVISIT gets 150.16 df on the same fit.

        >>> res.type3_tests()[0]                                   # doctest: +SKIP
        {'effect': 'ARMCD', 'num_df': 1, 'den_df': 199.58, 'F': 0.031, 'p': 0.8604}
        """
        if basis not in ("reference", "sum"):
            raise MmrmError(f"type 3 basis must be 'reference' or 'sum', got {basis!r}")
        out = []
        for name, lmat in self._type3_contrasts(basis):
            out.append({"effect": name, **self._f_test(lmat)})
        return out

    def _type3_contrasts(self, basis: str = "reference") -> list:
        """(term name, rows on this fit's coefficients) for each non-intercept term: the rows
        select the term's coefficients in a refit-free sum-to-zero recoding of the design. The
        recoding is rebuilt from the parsed terms: every categorical factor, plain column or
        expression, becomes ``C(<factor>, contr.sum)``; numeric factors (a 0/1 ``I(...)``
        included) stay as they are, so crossed terms are tested at their value 0, as in SAS.
        With ``basis="reference"`` the rows of a multi-row term are then rewritten as level
        minus reference level (see ``type3_tests``)."""
        import formulaic

        d = self._design
        spec = d.spec
        categorical = {str(f) for f in spec.factor_contrasts}
        # the fit's reference level of each categorical factor, by the factor's expression
        reference = {}
        for f, state in spec.factor_contrasts.items():
            base = getattr(state.contrasts, "base", None)
            levels = list(state.levels)
            reference[str(f)] = base if any(base is lev or base == lev for lev in levels) else levels[0]

        def recoded(factor) -> str:
            expr = factor.expr
            if getattr(factor.eval_method, "value", "") == "lookup" and not expr.isidentifier():
                expr = f"`{expr}`"
            return f"C({expr}, contr.sum)" if factor.expr in categorical else expr

        terms = [t for t in spec.formula if str(t) != "1"]
        pieces = [":".join(recoded(f) for f in t.factors) for t in terms]
        intercept = any(str(t) == "1" for t in spec.formula)
        formula = ("1 + " if intercept else "0 + ") + " + ".join(pieces)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mm = formulaic.model_matrix(formula, d.used, na_action="raise")
        except Exception as exc:  # noqa: BLE001 - one message for any recoding failure
            raise MmrmError(f"type 3 tests: cannot recode {self.formula!r} with sum-to-zero contrasts ({exc})") \
                from None
        xs = np.asarray(mm, dtype=float)
        # X_treatment beta = X_sum beta_sum, so beta_sum = pinv(X_sum) X_treatment beta.
        to_sum = np.linalg.pinv(xs) @ d.X
        if xs.shape[1] != d.X.shape[1] or np.abs(xs @ to_sum - d.X).max() > 1e-8 * max(1.0, np.abs(d.X).max()):
            raise MmrmError("type 3 tests: the sum-to-zero recoding does not span the model's design")
        by_factors = {frozenset(f.expr for f in t.factors): list(idx) for t, idx in mm.model_spec.term_indices.items()}
        sum_states = {str(f): state for f, state in mm.model_spec.factor_contrasts.items()}
        rows = []
        for term in terms:
            idx = by_factors.get(frozenset(recoded(f) for f in term.factors))
            if idx is None:
                raise MmrmError(f"type 3 tests: term {str(term)!r} is not found after recoding")
            lmat = to_sum[idx]
            if basis == "reference" and len(idx) > 1:
                factors = [(recoded(f), sum_states.get(recoded(f)), reference.get(f.expr))
                           for f in term.factors]
                lmat = _reference_rows([mm.columns[i] for i in idx], factors) @ lmat
            rows.append((str(term), lmat))
        return rows

    def _f_test(self, lmat: np.ndarray) -> dict:
        """Wald F test of L beta = 0 with the fit's df method (see ``type3_tests``)."""
        cov = lmat @ self._infer.vcov_used @ lmat.T
        vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        rank = int((vals > max(np.sqrt(np.finfo(float).eps) * vals[0], 0)).sum())
        if rank == 0:
            raise MmrmError("type 3 tests: a term has no estimable contrast")
        directions = vecs[:, :rank].T @ lmat
        est, _se, dfs = self._infer(directions)
        why = [w for w in self._infer.not_estimable(directions, _se, dfs) if w]
        if why:
            return {"num_df": rank, "den_df": None, "F": None, "p": None, "estimable": False,
                    "note": f"not estimable: {why[0]}"}
        f_stat = float(np.sum(est**2 / vals[:rank]) / rank)
        if self.df_method == "kenward-roger" and rank > 1:
            # Kenward and Roger (1997): the F on the adjusted covariance, scaled by lambda, on m df
            den, scale = self._infer.kr_md(directions)
            f_stat *= scale
        else:
            den = _md_denominator_df(np.asarray(dfs, float))
        # an unbounded df is the chi-square limit, where the F distribution's sf gives NaN
        p = stats.f.sf(f_stat, rank, den) if np.isfinite(den) else stats.chi2.sf(rank * f_stat, rank)
        return {"num_df": rank, "den_df": float(den), "F": f_stat, "p": float(p)}

    def default_arm(self) -> str | None:
        """The treatment factor: the first subject-level factor that interacts with the visit
        (or, failing that, the first subject-level factor)."""
        d = self._design
        candidates = [f for f in d.factors if f not in (d.visit, d.subject)
                      and d.used.groupby(d.subject)[f].nunique().max() == 1]
        interacting = [f for f in candidates
                       if any(f in c and d.visit in c and ":" in c for c in d.columns)]
        pool = interacting or candidates
        return pool[0] if pool else None

    def to_dict(self, arm: str | None = None, control: str | None = None, type3_basis: str = "reference") -> dict:
        """Everything the CLI prints with ``--json`` (Type 3 tests in ``type3_basis``, see ``type3_tests``)."""
        d = self._design
        arm = arm or self.default_arm()
        key = "neg2_reml" if self.method == "reml" else "neg2_ml"
        out = {
            "formula": self.formula,
            "cov": self.cov,
            "method": self.method,
            "df_method": self.df_method,
            key: self.neg2_loglik,
            "neg2_loglik": self.neg2_loglik,
            "converged": self.converged,
            "iterations": self.iterations,
            "n_subjects": self.n_subjects,
            "n_obs": self.n_obs,
            "coefficients": self.coefficients,
            "covariance": {"visits": self.visits,
                           "matrix": self.covariance.to_numpy().tolist()},
            "cov_params": self.cov_params,
            "diagnostics": self.diagnostics,
        }
        try:
            out["type3"] = self.type3_tests(basis=type3_basis)
        except MmrmError as exc:  # an unusual formula: the rest of the fit still stands
            out["type3"], out["type3_note"] = [], str(exc)
        if arm is not None:
            specs = [arm] + ([d.visit] if d.visit in d.factors else [])
            out["lsmeans"] = self.lsmeans(specs)
            out["contrasts"] = self.contrasts(arm=arm, control=control)
        else:
            out["lsmeans"] = self.lsmeans()
            out["contrasts"] = []
        warnings_ = list(self.warnings)
        for part in ("coefficients", "type3", "lsmeans", "contrasts"):
            bad = [r for r in out.get(part) or [] if r.get("estimable") is False]
            if bad:
                warnings_.append(f"{len(bad)} of {len(out[part])} {part} not estimable "
                                 f"({bad[0]['note'].removeprefix('not estimable: ')})")
        out["warnings"] = warnings_
        return out


def _reference_rows(columns: list, factors: list) -> np.ndarray:
    """Matrix turning the sum-to-zero coefficients of one term (its model-matrix ``columns``)
    into SAS's Type 3 rows: for each factor, each level minus the reference level; for an
    interaction, the products of these differences (every combination). ``factors`` lists
    (recoded expression, formulaic contrasts state or None for a numeric factor, reference
    level) for the term's factors.

    A factor coded with sum-to-zero contrasts has coefficients b for its first k − 1 levels, the
    last level's effect being −Σb; level j minus reference r is then e_j − e_r applied to
    (b, −Σb). A factor coded in full (no lower-order term to absorb a level) keeps its k
    coefficients, and a numeric factor its one."""
    codes = []  # per factor: {column-name piece: coefficient index}, and the row matrix
    for expr, state, ref in factors:
        if state is None:
            names = {expr: 0, expr.strip("`"): 0}
            codes.append((names, names, np.eye(1)))
            continue
        levels = list(state.levels)
        k = len(levels)
        reduced = {f"{expr}[S.{lev}]": j for j, lev in enumerate(levels[:-1])}
        full = {f"{expr}[{lev}]": j for j, lev in enumerate(levels)}
        effects = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])  # level effects from b
        r = next(j for j, lev in enumerate(levels) if lev is ref or lev == ref)
        diff = np.delete(np.eye(k) - np.eye(k)[r], r, axis=0)  # e_j − e_r, j ≠ r
        codes.append((reduced, full, diff @ effects))

    def split(name: str, todo: tuple) -> list | None:
        """Per-factor (factor number, coefficient index, full coding?) of a column name."""
        if not todo:
            return [] if name == "" else None
        for pos in todo:
            for full_coding, table in ((False, codes[pos][0]), (True, codes[pos][1])):
                for piece, j in table.items():
                    if name.startswith(piece) and name[len(piece):len(piece) + 1] in ("", ":"):
                        rest = split(name[len(piece) + 1:], tuple(t for t in todo if t != pos))
                        if rest is not None:
                            return [(pos, j, full_coding)] + rest
        return None

    parsed = []
    for name in columns:
        parts = split(str(name), tuple(range(len(codes))))
        if parts is None:
            raise MmrmError(f"type 3 tests: cannot read the coding of column {name!r}")
        parsed.append({pos: (j, full_coding) for pos, j, full_coding in parts})
    mats = []
    for pos in range(len(codes)):
        full_coding = {p[pos][1] for p in parsed}
        if len(full_coding) != 1:
            raise MmrmError(f"type 3 tests: mixed coding of {factors[pos][0]!r} in one term")
        if full_coding.pop() or factors[pos][1] is None:
            n = len(codes[pos][1])
            mats.append(np.eye(n))
        else:
            mats.append(codes[pos][2])
    out = np.zeros((int(np.prod([m.shape[0] for m in mats])), len(columns)))
    for i, combo in enumerate(itertools.product(*[range(m.shape[0]) for m in mats])):
        for c, p in enumerate(parsed):
            out[i, c] = np.prod([mats[pos][combo[pos], p[pos][0]] for pos in range(len(mats))])
    if out.shape[0] != len(columns) or np.linalg.matrix_rank(out) != len(columns):
        raise MmrmError("type 3 tests: the term's columns are not a full product of its factors' codings")
    return out


def _kr_m_lambda(a1: float, a2: float, ell: int) -> tuple[float, float]:
    """Kenward and Roger (1997), sec. 4: the denominator df m and the F scale lambda of an
    ell-row hypothesis from A1 and A2 (for one row A1 = A2)."""
    b = (a1 + 6 * a2) / (2 * ell)
    g = ((ell + 1) * a1 - (ell + 4) * a2) / ((ell + 2) * a2) if a2 > 0 else 0.0
    den = 3 * ell + 2 - 2 * g
    c1, c2, c3 = g / den, (ell - g) / den, (ell + 2 - g) / den
    e_star = 1 / (1 - a2 / ell)
    v_star = (2 / ell) * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
    rho = v_star / (2 * e_star**2)
    m = 4 + (ell + 2) / (ell * rho - 1) if ell * rho > 1 else np.inf
    scale = m / (e_star * (m - 2)) if np.isfinite(m) else 1.0
    return float(m), float(scale)


def _md_denominator_df(dfs: np.ndarray) -> float:
    """Denominator df of a multi-df F test from its one-df dfs: 2E/(E − q), E = Σ ν/(ν − 2);
    equal dfs give their value, any ν ≤ 2 gives 2 (the rules of the R package mmrm; SAS drops
    such directions instead, which matters only for near-degenerate fits)."""
    if dfs.size == 1 or np.all(np.abs(np.diff(dfs)) < np.sqrt(np.finfo(float).eps)):
        return float(dfs.mean())
    if np.any(dfs <= 2):
        return 2.0
    e = float(np.sum(dfs / (dfs - 2)))
    return 2 * e / (e - dfs.size)


def _interval(est, se, df, level, with_test, reason=None):
    if reason:
        row = {"estimate": float(est), "se": None, "df": None}
        if with_test:
            row.update(t=None, p=None)
        row.update(lower=None, upper=None, estimable=False, note=f"not estimable: {reason}")
        return row
    q = stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
    row = {"estimate": float(est), "se": float(se), "df": float(df)}
    if with_test:
        t = est / se
        row["t"] = float(t)
        row["p"] = float(2 * stats.t.sf(abs(t), df))
    row["lower"] = float(est - q * se)
    row["upper"] = float(est + q * se)
    return row


def check_arm(data: pd.DataFrame, subject: str, arm: str) -> None:
    """Raise MmrmError unless ``arm`` is a column with one value per subject and >= 2 values."""
    if arm not in data.columns:
        raise MmrmError(f"arm column {arm!r} not found in the data")
    if subject not in data.columns:
        raise MmrmError(f"subject column {subject!r} not found in the data")
    per = data.dropna(subset=[arm]).groupby(subject)[arm].nunique()
    if (per > 1).any():
        raise MmrmError(f"subject {per[per > 1].index[0]!r} has more than one {arm!r} value")
    levels = data[arm].dropna().unique()
    if len(levels) < 2:
        only = repr(str(levels[0])) if len(levels) else "none"
        raise MmrmError(f"only one arm in {arm!r} ({only}); at least two are needed")


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _start_sigma(design: _Design) -> np.ndarray:
    """Pairwise covariance of OLS residuals by visit, nudged to be positive definite."""
    beta, *_ = np.linalg.lstsq(design.X, design.y, rcond=None)
    res = design.y - design.X @ beta
    t = len(design.visits)
    wide = np.full((design.subj_codes.max() + 1, t), np.nan)
    wide[design.subj_codes, design.visit_idx] = res
    s = pd.DataFrame(wide).cov(min_periods=2).to_numpy().copy()
    var = np.nanmean(res**2)
    s[~np.isfinite(s)] = 0.0
    d = np.diag(s).copy()
    d[d <= 0] = var
    np.fill_diagonal(s, d)
    w, v = np.linalg.eigh(s)
    w = np.maximum(w, 1e-3 * w.max())
    return (v * w) @ v.T


def fit_mmrm(data: pd.DataFrame, formula: str, subject: str, visit: str, cov: str = "us",
             method: str = "reml", df: str = "satterthwaite",
             visit_order: list | None = None, visit_number: str | None = None) -> MmrmResult:
    """Fit an MMRM by REML or ML.

    ``cov`` is one of us, cs, csh, ar1, arh1, toep; ``df`` one of satterthwaite,
    kenward-roger (alias kr), residual, between-within. ``visit_order`` gives the time order
    of the visits (for ar1/arh1/toep); by default the visits are ordered by ``visit_number``
    (a numeric visit column; ``AVISITN`` when the data have it), a categorical visit keeps its
    category order, and labels are put in time order by ``annulus.stats.visits.order_visits``
    (which refuses labels whose time order it cannot tell).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"id": np.repeat(np.arange(40), 3), "vis": np.tile(["V1", "V2", "V3"], 40),
    ...                   "arm": np.repeat(["A", "B"], 60)})
    >>> d["y"] = rng.normal(size=120) + (d.arm == "B") * 1.0
    >>> r = fit_mmrm(d, "y ~ arm * vis", subject="id", visit="vis", cov="cs")
    >>> r.converged, [c["term"] for c in r.coefficients][:2]
    (True, ['Intercept', 'arm[T.B]'])
    """
    cov = str(cov).lower()
    cov = {"un": "us", "ar(1)": "ar1", "arh(1)": "arh1", "ar1h": "arh1", "toeplitz": "toep"}.get(
        cov, cov)  # SAS and R mmrm spellings
    if cov not in STRUCTURES:
        raise MmrmError(f"unknown covariance structure {cov!r}; use one of {', '.join(STRUCTURES)}")
    method = str(method).lower()
    if method not in ("reml", "ml"):
        raise MmrmError(f"unknown method {method!r}; use reml or ml")
    df_method = {"kr": "kenward-roger", "kenward_roger": "kenward-roger",
                 "bw": "between-within"}.get(str(df).lower(), str(df).lower())
    if df_method not in DF_METHODS:
        raise MmrmError(f"unknown df method {df!r}; use one of {', '.join(DF_METHODS)}")

    design = _prepare(data, formula, subject, visit, visit_order, visit_number)
    struct = STRUCTURES[cov]
    reml = method == "reml"
    t = len(design.visits)
    n_obs, k = design.X.shape
    patterns = design.patterns

    def sigma_of(theta):
        return struct.sigma(theta, t)

    def objective(theta):
        try:
            sig = sigma_of(theta)
            value, grad_s, _, _ = _evaluate(patterns, sig, k, n_obs, reml)
        except _NotPositiveDefinite:
            return np.inf, np.zeros_like(theta)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(theta)
        dsig = struct.dsigma_dtheta(theta, t)
        return value, np.einsum("qab,ab->q", dsig, grad_s)

    start = _start_sigma(design)
    if not np.all(np.isfinite(start)) or np.linalg.eigvalsh(start)[0] <= 0:
        # e.g. an ordinal grade that no participant changed: every change from baseline is 0
        raise MmrmError("the response does not vary around the fixed effects (every residual is 0): "
                        "there is no variance for a covariance structure to describe")
    theta0 = struct.start(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precision-loss notes; convergence is checked below
        opt = optimize.minimize(objective, theta0, jac=True, method="BFGS",
                                options={"maxiter": 2000, "gtol": 1e-6})
    theta = opt.x
    iterations = int(opt.nit)
    # Newton polish: BFGS stops a little short; a few exact steps reach machine precision.
    theta, value, gnorm = _newton_polish(objective, theta)
    if not np.isfinite(value):
        raise MmrmError(f"the {struct.label} model did not converge: the likelihood is not "
                        "finite (try a simpler covariance structure)")
    sigma = sigma_of(theta)
    value, grad_s, beta, xtvx = _evaluate(patterns, sigma, k, n_obs, reml, keep=True)
    scale = max(1.0, abs(value))
    converged = bool(gnorm < 1e-3 * max(1.0, scale / 1000))
    if not converged:
        raise MmrmError(
            f"the {struct.label} model did not converge after {iterations} iterations "
            f"(gradient {gnorm:.2g}); try a simpler covariance structure or check the data")

    phi_vcov = None
    phi = struct.phi_of(sigma)
    sigma_phi = lambda p: struct.sigma_phi(p, t)  # noqa: E731
    dsig_phi = jacobian(sigma_phi, phi)
    h2, hess_ok = _hessian_phi(patterns, sigma_phi, phi, k, n_obs, reml)
    if hess_ok:
        phi_vcov = 2.0 * np.linalg.inv(h2)  # covariance of the SAS parameters
    vcov = np.linalg.inv(xtvx)
    vcov = 0.5 * (vcov + vcov.T)

    infer_ctx = _Inference(design, patterns, vcov, dsig_phi, phi_vcov, df_method, sigma, beta)
    if df_method == "kenward-roger":
        if phi_vcov is None:
            raise MmrmError("Kenward-Roger needs a positive-definite information matrix; "
                            "the covariance estimate is on a boundary (try satterthwaite)")
        d2sig = hessian_of_map(sigma_phi, phi)
        infer_ctx.prepare_kr(d2sig)
    elif df_method == "satterthwaite" and phi_vcov is None:
        raise MmrmError("Satterthwaite degrees of freedom need a positive-definite information "
                        "matrix; the covariance estimate is on a boundary")

    cols = design.columns
    est, se, dfs = infer_ctx(np.eye(k))
    coefficients = []
    for name, b, s, f, why in zip(cols, est, se, dfs, infer_ctx.not_estimable(np.eye(k), se, dfs)):
        if why:
            coefficients.append({"term": name, "estimate": float(b), "se": None, "df": None,
                                 "t": None, "p": None, "estimable": False,
                                 "note": f"not estimable: {why}"})
            continue
        tval = b / s
        coefficients.append({"term": name, "estimate": float(b), "se": float(s), "df": float(f),
                             "t": float(tval), "p": float(2 * stats.t.sf(abs(tval), f))})
    covariance = pd.DataFrame(sigma, index=design.visits, columns=design.visits)
    names = struct.phi_names(design.visits)
    cov_params = [{"name": n, "estimate": float(v),
                   "se": float(math.sqrt(phi_vcov[i, i])) if phi_vcov is not None
                   and phi_vcov[i, i] > 0 else None}
                  for i, (n, v) in enumerate(zip(names, phi))]
    # The conditioning check of every structure: a covariance parameter the data hardly inform.
    fit_warnings = []
    biggest = float(np.max(np.diag(sigma)))
    for p_ in cov_params:
        scale = 1.0 if p_["name"] in _CORRELATION_PARAMS else biggest
        if p_["se"] is not None and p_["se"] > COV_PARAM_SE_MAX * scale:
            fit_warnings.append(
                f"covariance parameter {p_['name']} is not identified by the data (SE "
                f"{p_['se']:.3g} for an estimate of {p_['estimate']:.3g}); estimates that "
                "depend on it are reported as not estimable")
    diagnostics = {
        "optimizer": "BFGS + Newton",
        "max_abs_gradient": float(gnorm),
        "hessian_positive_definite": bool(hess_ok),
        "n_patterns": len(patterns),
        "well_conditioned": not fit_warnings,
    }
    return MmrmResult(
        formula=formula, cov=cov, method=method, df_method=df_method,
        neg2_loglik=float(value), converged=converged, coefficients=coefficients,
        covariance=covariance, cov_params=cov_params,
        n_subjects=int(design.subj_codes.max() + 1), n_obs=int(n_obs), iterations=iterations,
        diagnostics=diagnostics, beta=beta, vcov=infer_ctx.vcov_used, _design=design,
        _infer=infer_ctx, warnings=fit_warnings)


def _newton_polish(objective, theta, steps: int = 8, hessian=None):
    """Newton steps with a line search from ``theta``; the Hessian is the finite-difference
    Jacobian of the gradient, or ``hessian(theta)`` when given (the power simulation's batched one)."""
    if hessian is None:
        def hessian(th):
            return _fd_jacobian(lambda t: objective(t)[1], th)
    value, grad = objective(theta)
    for _ in range(steps):
        if not np.isfinite(value) or np.max(np.abs(grad)) < 1e-8:
            break
        hess = hessian(theta)
        try:
            w, v = np.linalg.eigh(hess)
        except np.linalg.LinAlgError:
            break
        if w.min() <= 0:
            break
        step = -(v / w) @ (v.T @ grad)
        improved = False
        for shrink in (1.0, 0.5, 0.25, 0.1):
            cand = theta + shrink * step
            cv, cg = objective(cand)
            if np.isfinite(cv) and cv <= value + 1e-10 * max(1.0, abs(value)):
                theta, value, grad, improved = cand, cv, cg, True
                break
        if not improved:
            break
    return theta, value, float(np.max(np.abs(grad))) if np.isfinite(value) else np.inf


def _fd_jacobian(fun, x):
    """Central-difference Jacobian of a vector function (used on analytic gradients)."""
    x = np.asarray(x, float)
    cols = []
    for j in range(x.size):
        h = 1e-5 * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        cols.append((fun(xp) - fun(xm)) / (2 * h))
    jac = np.array(cols).T
    return 0.5 * (jac + jac.T)


def _hessian_phi(patterns, sigma_phi, phi, k, n_obs, reml):
    """Hessian of -2 log-likelihood in the SAS parameters, from the analytic gradient."""

    def grad(p):
        sig = sigma_phi(p)
        _, g, _, _ = _evaluate(patterns, sig, k, n_obs, reml)
        return np.einsum("qab,ab->q", jacobian(sigma_phi, p), g)

    try:
        h2 = _fd_jacobian(grad, phi)
    except _NotPositiveDefinite:
        return None, False
    try:
        np.linalg.cholesky(h2)
        return h2, True
    except np.linalg.LinAlgError:
        return h2, False


# --------------------------------------------------------------------------------------------
# Inference: standard errors and degrees of freedom for linear combinations L beta
# --------------------------------------------------------------------------------------------


class _Inference:
    def __init__(self, design, patterns, vcov, dsig, phi_vcov, df_method, sigma, beta):
        self.design = design
        self._beta = beta
        self.patterns = patterns
        self.vcov = vcov
        self.vcov_used = vcov
        self.dsig = dsig  # (q, T, T) d Sigma / d phi
        self.phi_vcov = phi_vcov
        self.df_method = df_method
        self.sigma = sigma
        self.p_mats = None
        if df_method in ("residual", "between-within"):
            self._simple_df = self._simple_dfs()

    def __call__(self, lmat: np.ndarray):
        lmat = np.atleast_2d(np.asarray(lmat, float))
        est = lmat @ self.design_beta
        var = np.einsum("ck,kl,cl->c", lmat, self.vcov_used, lmat)
        se = np.sqrt(np.maximum(var, 0))
        if self.df_method == "satterthwaite":
            df = self._satterthwaite(lmat)
        elif self.df_method == "kenward-roger":
            df = self._kr_df(lmat)
        else:
            nz = np.abs(lmat) > 1e-12
            df = np.array([self._simple_df[row].min() if row.any() else np.nan for row in nz])
        return est, se, df

    @property
    def design_beta(self):
        return self._beta

    def not_estimable(self, lmat, se, df) -> list:
        """For each row of ``lmat``: None, or why its SE, df and CI mean nothing (DF_MIN,
        KR_INFLATION_MAX)."""
        lmat = np.atleast_2d(np.asarray(lmat, float))
        inflation = None
        if self.df_method == "kenward-roger":
            v0 = np.einsum("ck,kl,cl->c", lmat, self.vcov, lmat)
            v1 = np.einsum("ck,kl,cl->c", lmat, self.vcov_used, lmat)
            inflation = np.where(v0 > 0, v1 / np.where(v0 > 0, v0, 1), 1.0)
        out = []
        for i in range(lmat.shape[0]):
            if not np.isfinite(se[i]):
                out.append("its standard error is not finite")
            elif np.isnan(df[i]) or df[i] < DF_MIN:
                out.append(f"{df[i]:.2g} degrees of freedom (below {DF_MIN:g})")
            elif inflation is not None and inflation[i] > KR_INFLATION_MAX:
                out.append(f"Kenward-Roger inflates its variance {inflation[i]:.3g}-fold "
                           f"(more than {KR_INFLATION_MAX:g})")
            else:
                out.append(None)
        return out

    def _gradients(self, lmat):
        """d(l' Phi l)/d phi for each row l (Phi = (X'V^-1X)^-1): sum over subjects of
        u' dSigma u with u = Sigma^-1 X Phi l."""
        t = self.sigma.shape[0]
        c = lmat.shape[0]
        proj = self.vcov @ lmat.T  # (k, c)
        dmat = np.zeros((c, t, t))
        for p in self.patterns:
            # sum_i X_i proj proj' X_i' per contrast, then sandwiched by S^-1.
            e = np.einsum("abkl,kc,lc->cab", p.mxx, proj, proj, optimize=True)
            dmat[(slice(None),) + np.ix_(p.idx, p.idx)] += p.sinv @ e @ p.sinv
        return np.einsum("qab,cab->cq", self.dsig, dmat)

    def _satterthwaite(self, lmat):
        var = np.einsum("ck,kl,cl->c", lmat, self.vcov, lmat)
        g = self._gradients(lmat)
        denom = np.einsum("cq,qr,cr->c", g, self.phi_vcov, g)
        return np.where(denom > 0, 2 * var**2 / np.where(denom > 0, denom, 1), np.inf)

    # -- Kenward-Roger --------------------------------------------------------------------------

    def prepare_kr(self, d2sig):
        """Adjusted covariance Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j - R_ij/4)] Phi
        (Kenward & Roger 1997), with derivatives in the SAS parameterisation."""
        q = self.dsig.shape[0]
        k = self.vcov.shape[0]
        pm = np.zeros((q, k, k))
        qm = np.zeros((q, q, k, k))
        rm = np.zeros((q, q, k, k))
        for p in self.patterns:
            # big[a, b] = sum_i W_i[a]' W_i[b] with W_i = S^-1 X_i  (k x k blocks).
            big = np.einsum("ac,bd,cdkl->abkl", p.sinv, p.sinv, p.mxx, optimize=True)
            ix = np.ix_(p.idx, p.idx)
            vi = self.dsig[(slice(None),) + ix]  # (q, m, m)
            sinv = p.sinv
            pm -= np.einsum("qab,abkl->qkl", vi, big)
            vsv = np.einsum("iab,bc,jcd->ijad", vi, sinv, vi, optimize=True)
            qm += np.einsum("ijab,abkl->ijkl", vsv, big)
            vij = d2sig[(slice(None), slice(None)) + ix]
            rm += np.einsum("ijab,abkl->ijkl", vij, big)
        phi = self.vcov
        w = self.phi_vcov
        inner = np.zeros((k, k))
        for i in range(q):
            for j in range(q):
                inner += w[i, j] * (qm[i, j] - pm[i] @ phi @ pm[j] - 0.25 * rm[i, j])
        adj = phi + 2 * phi @ inner @ phi
        self.vcov_used = 0.5 * (adj + adj.T)
        self.p_mats = pm

    def kr_md(self, lmat):
        """Kenward-Roger (m, lambda) of the multi-row hypothesis L beta = 0 (rows independent):
        denominator df and the scale of F, as in Kenward & Roger (1997) and the R package mmrm."""
        phi = self.vcov
        w = self.phi_vcov
        ell = lmat.shape[0]
        theta = lmat.T @ np.linalg.solve(lmat @ phi @ lmat.T, lmat)
        tp = theta @ phi
        mats = [tp @ p @ phi for p in self.p_mats]
        traces = np.array([np.trace(m) for m in mats])
        a1 = float(traces @ w @ traces)
        a2 = float(sum(w[i, j] * np.trace(mats[i] @ mats[j]) for i in range(len(mats)) for j in range(len(mats))))
        return _kr_m_lambda(a1, a2, ell)

    def _kr_df(self, lmat):
        """Kenward-Roger denominator df for each one-row contrast (l = 1)."""
        phi = self.vcov
        w = self.phi_vcov
        out = []
        for lvec in lmat:
            # Theta = L (L' Phi L)^-1 L' with the unadjusted Phi (Kenward & Roger 1997, sec. 4).
            s = lvec @ phi @ lvec
            pl = phi @ lvec
            a = np.einsum("k,qkl,l->q", pl, self.p_mats, pl) / s
            a2 = float(a @ w @ a)  # equals A1 when the contrast has one row
            out.append(_kr_m_lambda(a2, a2, 1)[0])
        return np.array(out)

    # -- residual and between-within -------------------------------------------------------------

    def _simple_dfs(self):
        d = self.design
        n_obs, k = d.X.shape
        rank = np.linalg.matrix_rank(d.X)
        if self.df_method == "residual":
            return np.full(k, float(n_obs - rank))
        # A column is between-subject when it is constant within every subject.
        frame = pd.DataFrame(d.X)
        frame["_s"] = d.subj_codes
        const = (frame.groupby("_s").nunique() <= 1).all().to_numpy()
        n_subj = d.subj_codes.max() + 1
        rank_b = np.linalg.matrix_rank(d.X[:, const]) if const.any() else 0
        df_between = n_subj - rank_b
        df_within = n_obs - n_subj - (rank - rank_b)
        return np.where(const, float(df_between), float(df_within))
