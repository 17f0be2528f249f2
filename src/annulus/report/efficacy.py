"""The efficacy end points of the trial report, analysed as the protocol's analysis plan says
(no Django).

``analyse(frame, endpoint, ...)`` takes one ADEFF file of the ADaM export
(``adeff_<paramcd>.csv``: the post-baseline rows of the ITT population, one per participant and
visit) and returns an ``EndpointResult``, a plain dictionary that the document renders and that
``--json`` prints. The numbers are those of the command-line engines on the same file, called the
same way (a test recomputes them):

- **MMRM** (``annulus mmrm --data adeff_<p>.csv --formula "CHG ~ BASE + TRT01P*AVISIT" --subject
  USUBJID --visit AVISIT --cov us --df kenward-roger --arm TRT01P --control <placebo>``): the
  LS-means of the change from baseline per arm and visit with their CI, the Type 3 tests, and each
  dose minus placebo at every visit (difference, CI, p). The covariates are the plan's
  (``covariates``): ``BASE`` for the baseline, and for each stratification factor the plan names
  its stratum as randomised, ``C(STRAT<n>R)`` (``CHG ~ BASE + C(STRAT1R) + C(STRAT2R) +
  TRT01P*AVISIT`` for the knee trial's site and pain strata); rows missing a covariate are left out;
- **Dunnett** (``annulus dose ... --mmrm``'s ``mmrm_dunnett``): the same contrasts with p and CIs
  adjusted for the comparison of several doses with one placebo at each visit;
- **trend** (``annulus mmrm ... --trend placebo=0,...``): the linear contrast of the LS-means over
  the dose scores at every visit;
- **MCP-Mod** (``annulus dose ... --at <visit>``): on the observed changes at the plan's visit,
  with the plan's candidate models, one-sided level and clinically relevant effect;
- **responders** (``annulus compare ... --responder-threshold``): participants whose change at the
  primary visit reaches the plan's threshold, by arm, with the exact test across arms.

What a reader may see decides what is computed (``Blind``):

- ``blinded`` (no treatment column in the data): one pooled model ``CHG ~ BASE + AVISIT`` (the
  plan's covariates, then the visit), its LS-means per visit; nothing is computed by arm, so
  nothing can depend on the allocation;
- ``labels`` (groups A-D, after the first-level unblinding): the MMRM by group, its LS-means and
  Type 3 tests; which group is placebo and which doses the groups received are not known, so no
  comparison with placebo, trend or MCP-Mod;
- ``arms`` (treatments, after the second-level unblinding): everything above.

A model that cannot be fitted (too few participants, a visit with no data yet) does not stop the
report: the result carries the reason in ``notes`` and the tables it could not fill are empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SUBJECT, VISIT, VISITN, ARM, DOSE = "USUBJID", "AVISIT", "AVISITN", "TRT01P", "TRT01PN"
POPULATION_FLAGS = {"itt": "ITTFL", "pp": "PPROTFL", "safety": "SAFFL"}


@dataclass(frozen=True)
class Blind:
    """Who may see what in the data: ``level`` blinded | labels | arms; ``arms`` the TRT01P values in
    display order (None when blinded); ``control`` the placebo's TRT01P and ``doses`` the TRT01P ->
    dose score map (only at the arms level)."""

    level: str
    arms: tuple[str, ...] | None = None
    control: str | None = None
    doses: Mapping[str, float] = field(default_factory=dict)


def read_adeff(path) -> pd.DataFrame:
    """An ``adeff*.csv`` file as the CLI engines read it ('NA' and empty cells missing)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["NA", ""], encoding="utf-8-sig",
                       dtype={SUBJECT: str, VISIT: str, ARM: str})


def blind_of(frame: pd.DataFrame, *, control_dose: float | None = None) -> Blind:
    """The blind of an exported ADEFF frame, from its columns: no ``TRT01P`` -> blinded; ``TRT01P``
    without ``TRT01PN`` -> labels (groups sorted A-D); with ``TRT01PN`` -> arms, ordered by dose
    (placebo first), the control being the arm whose dose is ``control_dose`` (default the lowest)."""
    if ARM not in frame.columns:
        return Blind("blinded")
    arms = sorted(str(a) for a in frame[ARM].dropna().unique())
    if DOSE not in frame.columns:
        return Blind("labels", tuple(arms))
    doses = {}
    for a, d in frame[[ARM, DOSE]].dropna().drop_duplicates().itertuples(index=False):
        doses[str(a)] = float(d)
    arms = sorted(doses, key=lambda a: (doses[a], a))
    if not arms:
        return Blind("arms", ())
    wanted = min(doses.values()) if control_dose is None else float(control_dose)
    control = next((a for a in arms if doses[a] == wanted), None)
    return Blind("arms", tuple(arms), control, doses)


def _plain(x):
    """Numbers as plain floats (None for NaN/inf), for JSON and templates."""
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def model_frame(frame: pd.DataFrame, endpoint, visits: Sequence[str] | None = None,
                strata: Sequence[str] = ()) -> pd.DataFrame:
    """The rows the endpoint's analysis uses: its population, its visits, a change and every
    covariate of its model (a baseline, a stratum); ``strata`` the randomisation's factor ids in
    protocol order (``covariates``). A covariate column the frame lacks is left for the model to
    name."""
    flag = POPULATION_FLAGS.get(endpoint.population, endpoint.population)
    data = frame
    if flag in data.columns and flag != "ITTFL":
        data = data[data[flag].astype(str).str.upper() == "Y"]
    visits = list(visits if visits is not None else endpoint.visits)
    data = data[data[VISIT].astype(str).isin(visits)]
    data = data.dropna(subset=["CHG"])
    needed = [c["column"] for c in covariates(endpoint, strata) if c["column"] in data.columns]
    if needed:
        data = data.dropna(subset=needed)
    return data.copy()


def covariates(endpoint, strata: Sequence[str] = ()) -> list[dict]:
    """The covariates of the end point's model in the plan's order, each ``{"covariate": the
    plan's name, "column": the ADEFF column, "term": its formula term, "stratum": whether it is a
    stratification factor}``: the baseline value ``BASE`` (a number); a stratification factor
    (an id of ``strata``, the randomisation's factors in protocol order) its stratum as
    randomised ``STRAT<n>R``, a factor (``C(...)``, whatever its levels look like: site ``01``
    is a level, not the number 1)."""
    from annulus.interchange.adam import stratum_columns
    from annulus.protocol.schema import BASELINE_COVARIATE

    columns = stratum_columns(strata)
    out = []
    for name in getattr(endpoint.model, "covariates", None) or []:
        if name == BASELINE_COVARIATE:
            out.append({"covariate": name, "column": "BASE", "term": "BASE", "stratum": False})
        elif name in columns:
            out.append({"covariate": name, "column": columns[name], "term": f"C({columns[name]})", "stratum": True})
        else:
            raise ValueError(f"covariate {name!r} is neither the baseline nor a stratum of the randomisation "
                             f"({', '.join(strata) or 'no strata'})")
    return out


def formula(endpoint, blind: Blind, strata: Sequence[str] = ()) -> str:
    """``CHG ~ covariates + TRT01P*AVISIT`` (``CHG ~ covariates + AVISIT`` blinded), the
    covariates as ``covariates`` gives them."""
    terms = "".join(f"{c['term']} + " for c in covariates(endpoint, strata))
    if blind.level == "blinded":
        return f"CHG ~ {terms}AVISIT"
    return f"CHG ~ {terms}TRT01P*AVISIT"


def describe(data: pd.DataFrame, blind: Blind, visits: Sequence[str], level: float) -> list[dict]:
    """Observed change per arm (or pooled) and visit: n, mean, SD, the t-based CI of the mean."""
    from scipy import stats

    groups = [None] if blind.level == "blinded" else list(blind.arms or ())
    out = []
    for v in visits:
        at = data[data[VISIT] == v]
        for a in groups:
            x = (at if a is None else at[at[ARM] == a])["CHG"].to_numpy(dtype=float)
            n = len(x)
            mean = float(x.mean()) if n else None
            sd = float(x.std(ddof=1)) if n > 1 else None
            lo = hi = None
            if n > 1:
                q = float(stats.t.ppf(1 - (1 - level) / 2, n - 1))
                lo, hi = mean - q * sd / math.sqrt(n), mean + q * sd / math.sqrt(n)
            out.append({"arm": a, "visit": v, "n": n, "mean": mean, "sd": sd, "lower": lo, "upper": hi})
    return out


MIN_PER_GROUP = 5  # participants with a change at a visit, in every group, for the visit to enter the model


def _visits_with_data(data: pd.DataFrame, visits: Sequence[str], blind: Blind) -> list[str]:
    """The plan's visits at which every group of the model has at least ``MIN_PER_GROUP`` changes.
    A visit that only a few participants have reached (early in follow-up) would leave its variance
    and covariances under the unstructured model all but unestimated; it is left out, and the
    report says so, until enough data exist. A completed trial has every visit."""
    keep = []
    for v in visits:
        at = data[data[VISIT] == v]
        if blind.level == "blinded":
            ok = len(at) >= MIN_PER_GROUP
        else:
            ok = all(int((at[ARM] == a).sum()) >= MIN_PER_GROUP for a in blind.arms or ())
        if ok:
            keep.append(v)
    return keep


def analyse(frame: pd.DataFrame, endpoint, *, blind: Blind, alpha: float = 0.05, dose_plan=None,
            strata: Sequence[str] = ()) -> dict:
    """The analysis of one end point (a plan ``Endpoint``: parameter, population, visits,
    primary_visit, model, lower_is_better, responder) on its ADEFF frame, as the blind allows;
    ``strata`` the randomisation's stratification factor ids in protocol order (the model's
    stratum covariates are their ``STRAT<n>R`` columns)."""
    from annulus.stats.mmrm import MmrmError, fit_mmrm

    level = 1 - alpha
    data = model_frame(frame, endpoint, strata=strata)
    visits = [v for v in endpoint.visits]
    result = {
        "parameter": endpoint.parameter,
        "label": str(frame["PARAM"].dropna().iloc[0]) if "PARAM" in frame.columns and frame["PARAM"].notna().any()
        else endpoint.parameter,
        "population": endpoint.population,
        "primary_visit": endpoint.primary_visit,
        "lower_is_better": bool(endpoint.lower_is_better),
        "blind": blind.level,
        "arms": list(blind.arms) if blind.arms is not None else None,
        "control": blind.control,
        "level": level,
        "visits": visits,
        "visit_days": _visit_days(frame, visits),
        "n_subjects": int(data[SUBJECT].nunique()),
        "n_obs": int(len(data)),
        "observed": describe(data, blind, visits, level),
        "model": None, "lsmeans": [], "type3": [], "contrasts": [], "trend": [], "mcpmod": None,
        "responders": None, "notes": [],
        "covariates": [{k: c[k] for k in ("covariate", "column", "stratum")} for c in covariates(endpoint, strata)],
    }
    fitted_visits = _visits_with_data(data, visits, blind)
    if len(fitted_visits) < len(visits):
        result["notes"].append(("visits_without_data", [v for v in visits if v not in fitted_visits]))
    data = data[data[VISIT].isin(fitted_visits)]
    if blind.level != "blinded":
        data = data[data[ARM].isin(blind.arms or ())]
    model = endpoint.model
    f = formula(endpoint, blind, strata)
    fit = None
    if len(fitted_visits) and data[SUBJECT].nunique() >= 2 * len(fitted_visits):
        try:
            fit = fit_mmrm(data, f, subject=SUBJECT, visit=VISIT, cov=model.covariance,
                           method=model.estimation, df=model.df, visit_number=VISITN if VISITN in data else None)
        except MmrmError as exc:
            result["notes"].append(("model_failed", str(exc)))
    else:
        result["notes"].append(("too_few", int(data[SUBJECT].nunique())))
    if fit is not None:
        result["model"] = {"formula": f, "cov": fit.cov, "method": fit.method, "df_method": fit.df_method,
                           "converged": bool(fit.converged), "n_subjects": int(fit.n_subjects),
                           "n_obs": int(fit.n_obs), "neg2_loglik": float(fit.neg2_loglik),
                           "warnings": list(fit.warnings)}
        arm = None if blind.level == "blinded" else ARM
        result["lsmeans"] = [_lsmean_row(r) for r in fit.lsmeans([VISIT] if arm is None else [ARM, VISIT],
                                                                   level=level)]
        try:  # as to_dict (annulus mmrm --json) gives them, without its LS-means and contrasts again
            result["type3"] = fit.type3_tests(basis="reference")
        except MmrmError:  # an unusual formula: the rest of the fit still stands
            result["type3"] = []
        if blind.level == "arms" and blind.control is not None and len(blind.arms or ()) >= 2:
            _comparisons(result, fit, blind, level, alpha)
    if blind.level == "arms" and blind.control is not None and dose_plan is not None:
        _dose_response(result, frame, endpoint, blind, dose_plan, strata)
    if blind.level == "arms" and blind.control is not None and getattr(endpoint, "responder", None):
        _responders(result, frame, endpoint, blind, strata)
    return _plain(result)


def _visit_days(frame: pd.DataFrame, visits: Sequence[str]) -> dict:
    days = {}
    if VISITN in frame.columns:
        for v, d in frame[[VISIT, VISITN]].dropna().drop_duplicates(VISIT).itertuples(index=False):
            days[str(v)] = float(d)
    return {v: days.get(v) for v in visits}


def _lsmean_row(r: dict) -> dict:
    return {"arm": r.get(ARM), "visit": r.get(VISIT), "estimate": r["estimate"], "se": r["se"], "df": r["df"],
            "lower": r["lower"], "upper": r["upper"], "estimable": r.get("estimable", True)}


def _comparisons(result: dict, fit, blind: Blind, level: float, alpha: float) -> None:
    from annulus.stats.dose_response import mmrm_dunnett

    raw = fit.contrasts(arm=ARM, control=blind.control, by=VISIT, level=level)
    adjusted = {(str(r["visit"]), str(r["arm"])): r
                for r in mmrm_dunnett(fit, ARM, blind.control, VISIT, alpha=alpha)}
    rows = []
    for r in raw:
        adj = adjusted.get((str(r["visit"]), str(r["arm"]))) or {}
        rows.append({"arm": r["arm"], "control": r["control"], "visit": r["visit"], "estimate": r["estimate"],
                     "se": r["se"], "df": r["df"], "t": r.get("t"), "p": r.get("p"), "lower": r["lower"],
                     "upper": r["upper"], "p_dunnett": adj.get("p"), "lower_dunnett": adj.get("lower"),
                     "upper_dunnett": adj.get("upper"), "estimable": r.get("estimable", True)})
    order = list(blind.arms or ())
    visits = list(result["visits"])
    rows.sort(key=lambda r: (order.index(r["arm"]) if r["arm"] in order else len(order),
                             visits.index(r["visit"]) if r["visit"] in visits else len(visits)))
    result["contrasts"] = rows  # by dose, then visit
    if len(blind.arms or ()) >= 3:
        try:
            result["trend"] = [{k: t.get(k) for k in ("visit", "estimate", "se", "df", "t", "p", "lower", "upper")}
                               for t in fit.trend(ARM, dict(blind.doses), level=level)]
        except Exception as exc:  # noqa: BLE001 - the engine's own message is the note
            result["notes"].append(("trend_failed", str(exc)))


def _dose_response(result: dict, frame: pd.DataFrame, endpoint, blind: Blind, plan, strata: Sequence[str]) -> None:
    from annulus.stats._io import InputError
    from annulus.stats.dose_response import mcpmod

    spec = getattr(plan, "mcpmod", None)
    if spec is None:
        return
    visit = getattr(spec, "visit", None) or endpoint.primary_visit
    data = model_frame(frame, endpoint, [visit], strata)
    data = data[data[ARM].isin(blind.arms or ())]
    models = {k: (None if v is None else float(v)) for k, v in dict(spec.models).items()}
    try:
        res = mcpmod(data[ARM].map(blind.doses), data["CHG"], models, alpha=float(spec.alpha),
                     direction="decreasing" if endpoint.lower_is_better else "increasing",
                     delta=None if getattr(spec, "delta", None) is None else float(spec.delta))
    except (InputError, ValueError, np.linalg.LinAlgError) as exc:
        result["notes"].append(("mcpmod_failed", str(exc)))
        return
    result["mcpmod"] = {"visit": visit, "n": int(len(data)), **res.as_dict()}


def _responders(result: dict, frame: pd.DataFrame, endpoint, blind: Blind, strata: Sequence[str]) -> None:
    from annulus.stats.compare import responder_test

    rule = endpoint.responder
    at_most = getattr(rule, "change_at_most", None)
    at_least = getattr(rule, "change_at_least", None)
    data = model_frame(frame, endpoint, [endpoint.primary_visit], strata)
    rows, counts, totals = [], [], []
    for a in blind.arms or ():
        x = data.loc[data[ARM] == a, "CHG"].to_numpy(dtype=float)
        hit = (x <= at_most) if at_most is not None else (x >= at_least)
        k, n = int(hit.sum()), int(len(x))
        from annulus.stats.safety_tables import clopper_pearson

        lo, hi = clopper_pearson(k, n, result["level"])
        rows.append({"arm": a, "responders": k, "n": n, "percent": 100.0 * k / n if n else None,
                     "lower": 100 * lo if n else None, "upper": 100 * hi if n else None})
        counts.append(k)
        totals.append(n)
    test = None
    if sum(totals) and all(totals):
        test = responder_test(counts, totals)
    result["responders"] = {"visit": endpoint.primary_visit, "change_at_most": at_most,
                            "change_at_least": at_least, "rows": rows, "test": test}
