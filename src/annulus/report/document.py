"""The trial report as one HTML document (and PDF), built from an ADaM export folder (no Django).

``compute(folder, protocol, language=...)`` reads the analysis datasets of one export
(``annulus export --format adam``: ``manifest.json``, ``adsl.csv``, ``adeff_<paramcd>.csv``,
``adae.csv``, ``adlb.csv``, ``adsv.csv``, ``addv.csv``) and returns every number of the report as a
JSON-able dictionary; ``render(results)`` writes the HTML (inline CSS and SVG, nothing fetched);
``pdf(html)`` prints it with WeasyPrint. ``build`` does all three.

Nothing but those files and the protocol (for the analysis plan, the randomisation's strata that
its models may adjust for, and the names of visits, arms and criteria) is read, so the report can be rebuilt from the export alone, and the same export gives
the same bytes: no clock, no random number and no file path enters the document. Each end point's
model paragraph says which covariates the model adjusted for (``covariates_text``: the baseline
value, each stratification factor by its id in the protocol with its column).

The blind is the export's: the report shows what the datasets hold (``manifest.json``'s
``scope.blinding``). A blinded export has no treatment column, so the report is pooled throughout
(one column, one line per plot); an export with group labels A-D gives a column per group and no
comparison with placebo (which group is placebo is not known); an export with treatments gives
everything. The service that builds reports decides which export a reader may have
(``annulus.exports``), the same rule as for any export.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import re
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from annulus.interchange.adam import strata_of
from annulus.report import baseline, conduct, consort, efficacy, plots, safety
from annulus.report.adsl import read as read_rows
from annulus.report.words import label_range, words_for

log = logging.getLogger("annulus.report")

MANIFEST = "manifest.json"
LEVELS = ("blinded", "labels", "arms")


class ReportError(ValueError):
    """The folder or the protocol cannot give a report (one line, naming what is missing)."""


# --- computing ----------------------------------------------------------------------------------

def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ReportError(f"{folder} has no {MANIFEST}: not an export folder (annulus export --format adam)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON ({exc})") from None
    if doc.get("format") != "adam":
        raise ReportError(f"{folder} holds a {doc.get('format')!r} export, not the analysis datasets (adam)")
    return doc


def _rows(folder: Path, name: str, required: bool = True) -> list[dict]:
    path = folder / name
    if not path.is_file():
        if required:
            raise ReportError(f"{folder} has no {name}")
        return []
    return read_rows(path)


def _plan(protocol):
    plan = getattr(protocol, "analysis", None)
    if plan is None or getattr(plan, "primary", None) is None:
        raise ReportError("the protocol has no analysis plan with a primary end point (analysis.primary)")
    return plan


def _arms(adsl: list[dict], level: str, protocol, plan) -> tuple[list[str] | None, str | None, dict]:
    """(arms in column order, the control's TRT01P, TRT01P -> dose score) as the blind allows."""
    if level == "blinded":
        return None, None, {}
    values = sorted({r.get("TRT01P", "").strip() for r in adsl if (r.get("RANDFL") or "").upper() == "Y"} - {""})
    if level == "labels":
        return values, None, {}
    doses: dict[str, float] = {}
    for r in adsl:
        a, d = (r.get("TRT01P") or "").strip(), (r.get("TRT01PN") or "").strip()
        if a and d:
            doses[a] = float(d)
    control_id = getattr(getattr(plan, "dose_response", None), "control", None)
    if control_id is None:  # no dose-response plan: the protocol's control arm
        control_id = next((a.id for a in protocol.arms if getattr(a, "control", False)), None)
    control_dose = next((a.dose_score for a in protocol.arms if a.id == control_id), None)
    arms = sorted(values, key=lambda a: (doses.get(a, math.inf), a))
    control = next((a for a in arms if control_dose is not None and doses.get(a) == control_dose), None)
    return arms, control, doses


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MIN_PARTICIPANTS_FOR_PROCESSES = 2000  # below this, starting processes costs more than the analyses


def workers_for(participants: int) -> int:
    """How many processes analyse the end points of a trial of ``participants`` (1: this one)."""
    if participants < MIN_PARTICIPANTS_FOR_PROCESSES:
        return 1
    return max(1, os.cpu_count() or 1)


def _endpoint(path: Path, ep, blind, alpha: float, dose_plan, strata=()) -> dict:
    """One end point's analyses (in this process or in a worker's), on one BLAS thread: the
    workers already share the cores, and a sum split over another number of threads is added in
    another order, so the last digits would depend on where the analysis ran."""
    from annulus.stats.power import _one_blas_thread

    with _one_blas_thread():
        return efficacy.analyse(efficacy.read_adeff(path), ep, blind=blind, alpha=alpha, dose_plan=dose_plan,
                                strata=strata)


class _Inline:
    """The executor's interface, run here and now (one process)."""

    class _Done:
        def __init__(self, fn, args):
            self._value = fn(*args)

        def result(self):
            return self._value

    def submit(self, fn, *args):
        return self._Done(fn, args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def compute(folder, protocol, *, language: str = "en", progress: Callable[[int, int, str], None] | None = None,
            code_version: str = "", workers: int | None = None) -> dict:
    """Every number of the report (see the module's documentation). The end points' analyses run
    in ``workers`` processes (None: ``workers_for`` the trial's size) while this one builds the
    flow, baseline, safety and conduct tables; the numbers are the same either way."""
    folder = Path(folder)
    progress = progress or (lambda done, total, what: None)
    manifest = _manifest(folder)
    stamp = manifest.get("stamp") or {}
    level = (manifest.get("scope") or {}).get("blinding") or stamp.get("blinding")
    if level not in LEVELS:
        raise ReportError(f"{MANIFEST} gives blinding {level!r}, not one of {', '.join(LEVELS)}")
    plan = _plan(protocol)
    alpha = float(getattr(plan, "alpha", 0.05))
    adsl = _rows(folder, "adsl.csv")
    arms, control, doses = _arms(adsl, level, protocol, plan)
    if level == "arms" and control is None:
        raise ReportError("the analysis plan's control arm (analysis.dose_response.control) is not in the data")
    endpoints = [plan.primary, *list(getattr(plan, "secondary", None) or [])]
    for ep in endpoints:
        name = f"adeff_{ep.parameter.lower()}.csv"
        if not (folder / name).is_file():
            raise ReportError(f"{folder} has no {name} (the analysis plan's end point {ep.parameter})")
    workers = workers_for(len(adsl)) if workers is None else max(1, int(workers))
    try:
        return _compute(folder, protocol, language, progress, code_version, workers, stamp, level, plan, alpha, adsl,
                        arms, control, doses, endpoints)
    except BrokenProcessPool:
        # a worker could not start (a caller's main module that runs itself when imported) or died:
        # the same numbers, in this process
        log.warning("the report's worker processes failed; analysing in one process")
        return _compute(folder, protocol, language, progress, code_version, 1, stamp, level, plan, alpha, adsl,
                        arms, control, doses, endpoints)


def _compute(folder, protocol, language, progress, code_version, workers, stamp, level, plan, alpha, adsl, arms,
             control, doses, endpoints) -> dict:
    total = 4 + len(endpoints)
    done = 0
    progress(done, total, "consort")
    blind = efficacy.Blind(level, None if arms is None else tuple(arms), control, doses)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=min(workers, len(endpoints) + 1),
                                   mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = _Inline()
    with pool:
        dose_plan = getattr(plan, "dose_response", None)
        strata = strata_of(protocol)
        # the end points first: in worker processes they run while this one builds the tables below
        pending = [pool.submit(_endpoint, folder / f"adeff_{ep.parameter.lower()}.csv", ep, blind, alpha, dose_plan,
                               strata) for ep in endpoints]
        sensitivity_job = pool.submit(_sensitivity, folder, plan, blind, alpha, strata)
        follow = [v.id for v in protocol.schedule.visits]
        flow = consort.counts(adsl, arms=arms, visits=follow)
        names = _names(protocol, language, arms)
        flow_svg = consort.svg(flow, language=language, visit_names=names["visits"],
                               criterion_names=names["criteria"], arm_names=names["arms"],
                               treatment=names["treatment"])
        table1 = baseline.table(adsl, arms=arms, language=language, population="ITTFL",
                                variables=baseline.variables_for(protocol))
        done += 1
        progress(done, total, "safety")
        lab = folder / "adlb.csv"
        saf = safety.tables(adsl, _rows(folder, "adae.csv", False), safety.read_lab(lab) if lab.is_file() else [],
                            arms=arms, level=1 - alpha)
        done += 1
        progress(done, total, "conduct")
        cond = conduct.tables(adsl, _rows(folder, "adsv.csv", False), _rows(folder, "addv.csv", False), arms=arms)
        done += 1
        results = []
        for ep, job in zip(endpoints, pending):
            progress(done, total, ep.parameter)
            res = job.result()
            res["role"] = "primary" if ep is plan.primary else "secondary"
            results.append(res)
            done += 1
        sensitivity = sensitivity_job.result()
        done += 1
    files = [{"name": p.name, "sha256": _sha256(p)} for p in sorted(folder.glob("*.csv"))]
    progress(done, total, "done")
    return _finite({
        "language": language, "blinding": level, "alpha": alpha, "arms": arms, "control": control, "doses": doses,
        "study": stamp.get("study") or protocol.trial.id, "registry_number": protocol.trial.registry_number,
        "title": protocol.trial.title.get(language), "protocol_version": stamp.get("protocol_version"),
        "as_of": stamp.get("as_of"), "audit_chain_count": stamp.get("audit_chain_count"),
        "audit_chain_hash": stamp.get("audit_chain_hash"), "code_version": code_version,
        "populations": _populations(plan, language), "plan": _plan_text(plan, strata),
        "consort": flow.as_dict(), "consort_svg": flow_svg,
        "baseline": table1.as_dict(), "endpoints": results, "sensitivity": sensitivity, "safety": saf,
        "conduct": cond, "datasets": files,
        "_names": names,
    })


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _populations(plan, language: str) -> list[dict]:
    out = []
    for p in getattr(plan, "populations", None) or []:
        out.append({"id": p.id, "role": p.role, "name": p.name.get(language), "rule": list(p.rule)})
    return out


def _plan_text(plan, strata=()) -> dict:
    """The parts of the analysis plan the report quotes (model and its covariates, level,
    dose-response settings)."""
    m = plan.primary.model
    dr = getattr(plan, "dose_response", None)
    md = getattr(plan, "missing_data", None)
    return {"covariance": m.covariance, "estimation": m.estimation, "df": m.df,
            "covariates": list(m.covariates or []),
            "covariate_columns": [{k: c[k] for k in ("covariate", "column", "stratum")}
                                  for c in efficacy.covariates(plan.primary, strata)],
            "mcpmod": None if dr is None or dr.mcpmod is None else {
                "visit": dr.mcpmod.visit, "alpha": dr.mcpmod.alpha, "delta": dr.mcpmod.delta,
                "models": {k: v for k, v in dict(dr.mcpmod.models).items()}},
            "missing_data": None if md is None else {"approach": md.approach, "sensitivity": list(md.sensitivity)}}


def _sensitivity(folder: Path, plan, blind: efficacy.Blind, alpha: float, strata=()) -> list[dict]:
    """The plan's sensitivity analyses of the primary end point (by arm only when the blind
    allows), on one BLAS thread as ``_endpoint``."""
    from annulus.stats.power import _one_blas_thread

    with _one_blas_thread():
        return _sensitivity_analyses(folder, plan, blind, alpha, strata)


def _sensitivity_analyses(folder: Path, plan, blind: efficacy.Blind, alpha: float, strata=()) -> list[dict]:
    md = getattr(plan, "missing_data", None)
    if md is None or blind.level == "blinded":
        return []
    ep = plan.primary
    frame = efficacy.read_adeff(folder / f"adeff_{ep.parameter.lower()}.csv")
    out = []
    for kind in md.sensitivity:
        if kind == "per_protocol":
            pp = ep.model_copy(update={"population": "pp"}) if hasattr(ep, "model_copy") else ep
            res = efficacy.analyse(frame, pp, blind=blind, alpha=alpha, dose_plan=None, strata=strata)
            out.append({"kind": kind, "result": res})
        elif kind == "observed_ancova":
            out.append({"kind": kind, "result": _ancova(frame, ep, blind, alpha, strata)})
    return out


def _ancova(frame, ep, blind: efficacy.Blind, alpha: float, strata=()) -> dict:
    """ANCOVA of the change at the primary visit on the observed data (nothing modelled for the
    missing), each arm against the control, as ``annulus compare --protocol`` runs it."""
    from annulus.stats.ancova import ancova

    data = efficacy.model_frame(frame, ep, [ep.primary_visit], strata)
    arms = list(blind.arms or ())
    if blind.control is None or len(arms) < 2:
        return {"visit": ep.primary_visit, "rows": [], "note": "no_control"}
    order = [blind.control, *[a for a in arms if a != blind.control]]
    data = data[data[efficacy.ARM].isin(order)]
    res = ancova(data["CHG"].to_numpy(dtype=float), data[efficacy.ARM].to_numpy(), data["BASE"].to_numpy(dtype=float),
                 order, level=1 - alpha)
    rows = []
    for r in res.get("vs_control") or []:
        t = r.get("test") or {}
        rows.append({"arm": r["arm"], "estimate": t.get("estimate"), "lower": t.get("lower"), "upper": t.get("upper"),
                     "p": t.get("p"), "p_dunnett": (r.get("dunnett") or {}).get("p")})
    return {"visit": ep.primary_visit, "control": blind.control, "n": res.get("n"), "rows": rows,
            "note": res.get("note")}


def _names(protocol, language: str, arms: Sequence[str] | None) -> dict:
    visits = {v.id: v.name.get(language) for v in protocol.schedule.visits}
    criteria = {}
    for c in getattr(protocol.eligibility, "criteria", None) or []:
        text_ = getattr(c, "text", None)
        if text_ is not None:
            criteria[c.id] = text_.get(language)
    arm_names = {a: consort.arm_name(a, language) for a in arms or []}
    event = protocol.treatment_event_name
    return {"visits": visits, "criteria": criteria, "arms": arm_names,
            "treatment": event.get(language) if event is not None else None}


# --- rendering ----------------------------------------------------------------------------------

def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def num(x, decimals: int = 2) -> str:
    """A number with fixed decimals, halves away from zero; "—" when missing; "−" as the minus sign."""
    if x is None:
        return "—"
    s = baseline.fmt(float(x), decimals)
    return s.replace("-", "\u2212")


def pval(p) -> str:
    if p is None:
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def ci(lo, hi, decimals: int = 2) -> str:
    if lo is None or hi is None:
        return "—"
    return f'<span class="nw">{num(lo, decimals)}, {num(hi, decimals)}</span>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "", cls: str = "",
           chunk: int = 26, continued: str = "") -> str:
    """A table that is never split across pages: longer tables are cut into tables of ``chunk``
    rows, each with the header repeated (and "continued" in the caption)."""
    if not rows:
        rows = [[""] * len(head)]
    parts = []
    for i in range(0, len(rows), chunk):
        cap = caption if i == 0 else f"{caption} ({continued})"
        th = "".join(f"<th>{h}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[i:i + chunk])
        parts.append(f'<div class="tbl">' + (f'<p class="caption">{cap}</p>' if cap else "")
                     + f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>')
    return "\n".join(parts)


CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-left { content: string(reporttitle); font-size: 7.5pt; color: #555; }
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 7.5pt; color: #555; } }
html { font-family: 'DejaVu Sans', Arial, 'WenQuanYi Micro Hei', 'Noto Sans CJK SC', sans-serif; font-size: 9.5pt;
  color: #1d2733; }
body { max-width: 60rem; margin: 1rem auto; padding: 0 1rem; }
@media print { body { margin: 0; padding: 0; max-width: none; } }
h1 { font-size: 17pt; margin: 0 0 .2em; string-set: reporttitle content(); }
h2 { font-size: 13pt; margin: 1.4em 0 .4em; border-bottom: 1px solid #c9d1d9; break-after: avoid; }
h3 { font-size: 10.5pt; margin: 1.1em 0 .3em; break-after: avoid; }
p, li { line-height: 1.35; }
.meta { color: #444; }
.banner { padding: .4em .7em; border-left: 4px solid #b26b00; background: #fff6e5; margin: .6em 0; }
.banner.arms { border-color: #b00020; background: #fdecee; }
table { border-collapse: collapse; margin: .4em 0 .9em; break-inside: avoid; page-break-inside: avoid;
  font-variant-numeric: tabular-nums; }
.tbl { break-inside: avoid; page-break-inside: avoid; margin: .4em 0 .9em; }
.tbl table { margin: 0; }
p.caption { font-weight: bold; margin: 0 0 .25em; break-after: avoid; }
th, td { border-bottom: 1px solid #dde3e8; padding: .18em .5em; text-align: right; vertical-align: top; }
th { background: #eef2f5; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td.l1 { padding-left: 1.6em; }
.figure { break-inside: avoid; page-break-inside: avoid; margin: .5em 0 1em; }
.figure svg { max-width: 100%; height: auto; }
.note { color: #555; font-size: 8.5pt; }
.sig { font-weight: bold; }
.ci { white-space: nowrap; font-size: 8.5pt; }
.nw { white-space: nowrap; }
.keep { break-inside: avoid; page-break-inside: avoid; }
table.arm2 td:nth-child(2), table.arm2 th:nth-child(2) { text-align: left; }
.hash { font-family: 'DejaVu Sans Mono', monospace; font-size: 7.5pt; word-break: break-all; }
section { break-before: auto; }
section.major { break-before: page; }
"""


def render(results: Mapping) -> str:
    """The report as one HTML document (its bytes depend on ``results`` only)."""
    lang = results["language"]
    names = results["_names"]
    w = dict(words_for(lang))  # a copy: the treatment's name goes into it
    w["visit_after_treatment"] = w["visit_after_treatment"].format(treatment=names.get("treatment") or w["treatment"])
    labels = label_range(a[-1] for a in results["arms"] or [] if re.fullmatch(r"Group [A-Z]", a))
    for key in ("blind_labels", "blind_short_labels"):  # the groups as this trial labels them: A–B, A–D
        w[key] = w[key].format(labels=labels)
    level = results["blinding"]
    arms = results["arms"]
    arm_names = names["arms"]
    parts = [f'<!DOCTYPE html><html lang="{"zh-Hans" if lang.startswith("zh") else "en"}"><head><meta charset="utf-8">'
             f"<title>{_e(w['report_title'])} – {_e(results['study'])}</title><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>{_e(w['report_title'])}: {_e(results['title'])}</h1>")
    parts.append(f'<p class="meta">{_e(results["registry_number"])} · {_e(w["protocol_version"])} '
                 f'{_e(results["protocol_version"])} · {_e(w["as_of"])} {_e(results["as_of"])}</p>')
    parts.append(f'<p class="banner {level}">{_e(w["blind_" + level])}</p>')
    parts.append(_contents(w, results))
    parts.append(_consort_section(w, results))
    parts.append(_baseline_section(w, results))
    for i, ep in enumerate(results["endpoints"]):
        parts.append(_endpoint_section(w, results, ep, i))
    parts.append(_sensitivity_section(w, results))
    parts.append(_safety_section(w, results))
    parts.append(_conduct_section(w, results))
    parts.append(_reproducibility_section(w, results))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _contents(w, results) -> str:
    items = [w["sec_consort"], w["sec_baseline"]]
    items += [f'{w["sec_primary"] if ep["role"] == "primary" else w["sec_secondary"]}: {ep["label"]}'
              for ep in results["endpoints"]]
    items += [w["sec_sensitivity"], w["sec_safety"], w["sec_conduct"], w["sec_reproducibility"]]
    return "<ol>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ol>"


def _col_heads(w, results, columns: Sequence[Mapping]) -> list[str]:
    out = []
    for c in columns:
        label = w["overall"] if c["arm"] is None else results["_names"]["arms"].get(c["arm"], c["arm"])
        out.append(f"{_e(label)}<br>(N={c['n']})")
    return out


def _consort_section(w, results) -> str:
    diagram = results["consort_svg"]
    diagram = diagram[diagram.index("<svg"):]
    return (f'<section class="major"><h2>1. {_e(w["sec_consort"])}</h2>'
            f'<div class="figure">{diagram}</div><p class="note">{_e(w["consort_note"])}</p></section>')


def _baseline_section(w, results) -> str:
    t = results["baseline"]
    head = [""] + [f"{_e(c['label'])}<br>(N={c['n']})" for c in t["columns"]]
    rows = []
    for r in t["rows"]:
        label = _e(r["label"])
        rows.append([label if r["level"] == 0 else f'<span style="padding-left:1.2em">{label}</span>',
                     *[_e(c) for c in r["cells"]]])
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in t["notes"])
    return (f'<section class="major"><h2>2. {_e(w["sec_baseline"])}</h2>'
            + _table(head, rows, caption=_e(f'{t["title"]} – {t["population"]}'), continued=w["continued"])
            + notes + "</section>")


def _visit(results, v) -> str:
    return _e(results["_names"]["visits"].get(v, v))


def _endpoint_section(w, results, ep, index: int) -> str:
    n = 3 + index
    arm_names = results["_names"]["arms"]
    title = w["sec_primary"] if ep["role"] == "primary" else w["sec_secondary"]
    out = [f'<section class="major"><h2>{n}. {_e(title)}: {_e(ep["label"])}</h2>']
    pops = {p["id"]: p["name"] for p in results["populations"]}
    m = ep["model"]
    if m:
        out.append(f'<p>{_e(w["model_text"].format(formula=m["formula"], cov=m["cov"], method=m["method"].upper(), df=m["df_method"], n=m["n_subjects"], obs=m["n_obs"], population=pops.get(ep["population"], ep["population"])))}'
                   + f' {_e(covariates_text(w, ep.get("covariates") or []))}'
                   + ("" if m["converged"] else f' <b>{_e(w["not_converged"])}</b>') + "</p>")
    for key, detail in ep["notes"]:
        out.append(f'<p class="note">{_e(_note(w, results, key, detail))}</p>')
    # observed and model-based means by visit
    groups = [None] if ep["arms"] is None else ep["arms"]
    head = [_e(w["visit"])] + [_e(w["overall"] if a is None else arm_names.get(a, a)) for a in groups]
    lsm = {(r["arm"], r["visit"]): r for r in ep["lsmeans"]}
    obs = {(r["arm"], r["visit"]): r for r in ep["observed"]}
    rows = []
    for v in ep["visits"]:
        row = [_visit(results, v)]
        for a in groups:
            o, r = obs.get((a, v)), lsm.get((a, v))
            cell = f'<span class="note">n={o["n"]}</span>' if o else ""
            if r and r["estimate"] is not None:
                cell += f'<br>{num(r["estimate"])}<br><span class="ci">({ci(r["lower"], r["upper"])})</span>'
            elif o and o["mean"] is not None:
                mark = f' <span class="note">{_e(w["observed_mark"])}</span>' if ep["lsmeans"] else ""
                cell += f'<br>{num(o["mean"])}{mark}<br><span class="ci">({ci(o["lower"], o["upper"])})</span>'
            row.append(cell)
        rows.append(row)
    cap = w["lsmeans_caption"] if ep["lsmeans"] else w["observed_caption"]
    out.append(_table(head, rows, caption=_e(cap), continued=w["continued"]))
    if any(o["n"] for o in ep["observed"]):  # no empty axes for an end point without data yet
        out.append('<div class="figure">' + plots.mean_change(
            ep, words=w, visit_names=results["_names"]["visits"], arm_names=arm_names) + "</div>")
    if ep["type3"]:
        rows = [[_e(t["effect"]), _e(t["num_df"]), num(t.get("den_df"), 1), num(t.get("F"), 2), pval(t.get("p"))]
                for t in ep["type3"]]
        out.append(_table([_e(w["effect"]), _e(w["num_df"]), _e(w["den_df"]), "F", "p"], rows,
                          caption=_e(w["type3_caption"]), continued=w["continued"]))
    if ep["contrasts"]:
        rows = []
        for r in ep["contrasts"]:
            star = ' class="sig"' if (r.get("p_dunnett") is not None and r["p_dunnett"] < results["alpha"]) else ""
            rows.append([_visit(results, r["visit"]), _e(arm_names.get(r["arm"], r["arm"])), num(r["estimate"]),
                         ci(r["lower"], r["upper"]), pval(r["p"]), ci(r.get("lower_dunnett"), r.get("upper_dunnett")),
                         f'<span{star}>{pval(r.get("p_dunnett"))}</span>'])
        ctrl = arm_names.get(ep["control"], ep["control"])
        out.append(_table([_e(w["visit"]), _e(w["arm"]), _e(w["difference"]), _e(w["ci95"]), "p",
                           _e(w["ci_dunnett"]), _e(w["p_dunnett"])], rows,
                          caption=_e(w["contrasts_caption"].format(control=ctrl)), continued=w["continued"], cls="arm2",
                          chunk=3 * len(ep["arms"] or ()) or 12))
        forest = plots.forest(ep, words=w, arm_names=arm_names)
        if forest:
            out.append(f'<div class="figure">{forest}<p class="note">'
                       f'{_e(w["forest_note"].format(visit=results["_names"]["visits"].get(ep["primary_visit"], ep["primary_visit"])))}</p></div>')
    if ep["trend"]:
        rows = [[_visit(results, t["visit"]), num(t["estimate"], 3), ci(t["lower"], t["upper"], 3), num(t["df"], 1),
                 pval(t["p"])] for t in ep["trend"]]
        out.append(_table([_e(w["visit"]), _e(w["slope_contrast"]), _e(w["ci95"]), "df", "p"], rows,
                          caption=_e(w["trend_caption"]), continued=w["continued"]))
    if ep["mcpmod"]:
        mc = ep["mcpmod"]
        rows = [[_e(t["model"]), num(t["t"], 3), pval(t["p"]), _e(w["yes"] if t["significant"] else w["no"])]
                for t in mc["tests"]]
        out.append('<div class="keep">')
        out.append(_table([_e(w["model"]), "t", _e(w["p_adjusted"]), _e(w["significant"])], rows,
                          caption=_e(w["mcpmod_caption"].format(visit=results["_names"]["visits"].get(mc["visit"], mc["visit"]), alpha=mc["alpha"], crit=num(mc["critical_value"], 3))),
                          continued=w["continued"]))
        sel = mc.get("selected")
        td = (mc["fits"].get(sel) or {}).get("target_dose") if sel else None
        out.append(f'<p>{_e(w["mcpmod_selected"].format(model=sel or w["none"]))}'
                   + (f' {_e(w["target_dose"].format(delta=num(mc["delta"], 1), dose=num(td, 2)))}' if sel and mc.get("delta") is not None and td is not None else "")
                   + "</p></div>")
    if ep["responders"]:
        rs = ep["responders"]
        rows = [[_e(arm_names.get(r["arm"], r["arm"])), f'{r["responders"]}/{r["n"]}', num(r["percent"], 1),
                 ci(r["lower"], r["upper"], 1)] for r in rs["rows"]]
        thr = rs["change_at_most"] if rs["change_at_most"] is not None else rs["change_at_least"]
        test = rs.get("test") or {}
        out.append(_table([_e(w["arm"]), _e(w["responders"]), "%", _e(w["ci95_cp"])], rows,
                          caption=_e(w["responder_caption"].format(visit=results["_names"]["visits"].get(rs["visit"], rs["visit"]), threshold=num(thr, 1))),
                          continued=w["continued"]))
        if test.get("p") is not None:
            out.append(f'<p class="note">{_e(test.get("name") or "")}: p = {pval(test["p"])}</p>')
    out.append("</section>")
    return "\n".join(out)


def covariates_text(w, covariates) -> str:
    """Which covariates the model adjusts for, in words: the baseline value and each
    stratification factor (its id in the protocol) with its column."""
    if not covariates:
        return w["covariates_none"]
    parts = [w["covariate_stratum"].format(name=c["covariate"], column=c["column"]) if c["stratum"]
             else w["covariate_baseline"].format(column=c["column"]) for c in covariates]
    return w["covariates_text"].format(covariates=w["list_separator"].join(parts))


def _note(w, results, key: str, detail) -> str:
    if key == "visits_without_data":
        return w["note_visits_without_data"].format(visits=", ".join(results["_names"]["visits"].get(v, v) for v in detail))
    if key == "too_few":
        return w["note_too_few"].format(n=detail)
    return w.get(f"note_{key}", key).format(detail=detail)


def _sensitivity_section(w, results) -> str:
    out = [f'<section class="major"><h2>{3 + len(results["endpoints"])}. {_e(w["sec_sensitivity"])}</h2>']
    md = results["plan"].get("missing_data")
    if md:
        out.append(f'<p>{_e(w["missing_" + md["approach"]] if ("missing_" + md["approach"]) in w else md["approach"])}</p>')
    if not results["sensitivity"]:
        out.append(f'<p class="note">{_e(w["sensitivity_blinded"] if results["blinding"] == "blinded" else w["none"])}</p>')
    arm_names = results["_names"]["arms"]
    for s in results["sensitivity"]:
        r = s["result"]
        out.append(f'<h3>{_e(w["sens_" + s["kind"]])}</h3>')
        if s["kind"] == "per_protocol":
            out.append(f'<p class="note">N = {r["n_subjects"]}</p>')
            rows = [[_visit(results, c["visit"]), _e(arm_names.get(c["arm"], c["arm"])), num(c["estimate"]),
                     ci(c["lower"], c["upper"]), pval(c["p"]), pval(c.get("p_dunnett"))]
                    for c in r["contrasts"] if c["visit"] == r["primary_visit"]]
            if not rows and r["lsmeans"]:
                rows = [[_visit(results, c["visit"]), _e(arm_names.get(c["arm"], c["arm"])), num(c["estimate"]),
                         ci(c["lower"], c["upper"]), "—", "—"] for c in r["lsmeans"] if c["visit"] == r["primary_visit"]]
            out.append(_table([_e(w["visit"]), _e(w["arm"]), _e(w["difference"]), _e(w["ci95"]), "p", _e(w["p_dunnett"])],
                              rows, continued=w["continued"], cls="arm2"))
            for key, detail in r["notes"]:
                out.append(f'<p class="note">{_e(_note(w, results, key, detail))}</p>')
        else:
            rows = [[_e(arm_names.get(c.get("arm"), c.get("arm"))), num(c.get("estimate")), ci(c.get("lower"), c.get("upper")),
                     pval(c.get("p"))] for c in r.get("comparisons") or r.get("rows") or []]
            out.append(_table([_e(w["arm"]), _e(w["difference"]), _e(w["ci95"]), "p"], rows, continued=w["continued"]))
            if r.get("note"):
                out.append(f'<p class="note">{_e(r["note"])}</p>')
    out.append("</section>")
    return "\n".join(out)


def _cell(c) -> str:
    if c["of"] == 0:
        return "—"
    s = f'{c["n"]} ({num(c["percent"], 1)})'
    if c.get("lower") is not None:
        s += f'<br><span class="note">{num(c["lower"], 1)}–{num(c["upper"], 1)}</span>'
    return s


def _safety_section(w, results) -> str:
    s = results["safety"]
    n = 4 + len(results["endpoints"])
    head = [""] + _col_heads(w, results, s["columns"])
    out = [f'<section class="major"><h2>{n}. {_e(w["sec_safety"])}</h2><p class="note">{_e(w["safety_note"])}</p>']
    rows = [[_e(w["ae_" + r["key"]])] + [_cell(c) + (f' [{c["events"]}]' if c.get("events") is not None else "")
                                           for c in r["cells"]] for r in s["summary"]]
    out.append(_table(head, rows, caption=_e(w["safety_summary_caption"]), continued=w["continued"]))
    rows = [[_e(w["grade"].format(g=r["grade"]))] + [_cell(c) for c in r["cells"]] for r in s["by_grade"]]
    out.append(_table(head, rows, caption=_e(w["by_grade_caption"]), continued=w["continued"]))
    rows = []
    for r in s["by_term"]:
        label = _e(r["label"] or w["not_coded"])
        rows.append([f"<b>{label}</b>" if r["kind"] == "soc" else f'<span style="padding-left:1.2em">{label}</span>']
                    + [_cell(c) for c in r["cells"]])
    out.append(_table(head, rows, caption=_e(w["by_term_caption"]), continued=w["continued"], chunk=18))
    rows = []
    for r in s["lab_shifts"]:
        rows.append([_e(r["label"])] + [f'↑ {_shift(h)}<br>↓ {_shift(lo)}' for h, lo in zip(r["high"], r["low"])])
    out.append(_table(head, rows, caption=_e(w["lab_caption"]), continued=w["continued"], chunk=14))
    out.append("</section>")
    return "\n".join(out)


def _shift(c) -> str:
    if c["of"] == 0:
        return "—"
    return f'<span class="nw">{c["n"]}/{c["of"]} ({num(c["percent"], 1)})</span>'


def _conduct_section(w, results) -> str:
    c = results["conduct"]
    n = 5 + len(results["endpoints"])
    head = [_e(w["visit"])] + _col_heads(w, results, c["columns"])
    out = [f'<section class="major"><h2>{n}. {_e(w["sec_conduct"])}</h2>']
    rows = []
    for r in c["visits"]:
        cells = []
        for x in r["cells"]:
            cells.append(f'{x["in_window"]} / {x["out_of_window"]} / {x["missed"]}'
                         + (f'<br><span class="note">{_e(w["not_due"])} {x["not_due"]} · {_e(w["after_eos"])} {x["after_eos"]}</span>'
                            if x["not_due"] or x["after_eos"] else ""))
        rows.append([_visit(results, r["visit"])] + cells)
    out.append(_table(head, rows, caption=_e(w["visits_caption"]), continued=w["continued"]))
    rows = [[_visit(results, r["visit"]), str(r["forms"]), f'{r["sdv"]} ({num(100 * r["sdv"] / r["forms"], 1) if r["forms"] else "—"})',
             str(r["open"]), str(r["raised"])] for r in c["data_cleaning"]]
    t = c["data_cleaning_total"]
    rows.append([f"<b>{_e(w['total'])}</b>", str(t["forms"]), f'{t["sdv"]} ({num(100 * t["sdv"] / t["forms"], 1) if t["forms"] else "—"})',
                 str(t["open"]), str(t["raised"])])
    out.append(_table([_e(w["visit"]), _e(w["forms_complete"]), _e(w["forms_sdv"]), _e(w["queries_open"]),
                       _e(w["queries_raised"])], rows, caption=_e(w["cleaning_caption"]), continued=w["continued"]))
    rows = [[_e(w.get("dv_" + k, k)), str(v)] for k, v in c["deviations"]]
    if rows:
        out.append(_table([_e(w["category"]), "n"], rows, caption=_e(w["deviations_caption"]), continued=w["continued"]))
    else:
        out.append(f'<p class="caption">{_e(w["deviations_caption"])}</p><p>{_e(w["none_recorded"])}</p>')
    rows = [[_e(w["emergency_unblindings"])] + [f'{u["n"]}' for u in c["unblindings"]]]
    out.append(_table([""] + _col_heads(w, results, c["columns"]), rows, caption=_e(w["unblindings_caption"]),
                      continued=w["continued"]))
    out.append("</section>")
    return "\n".join(out)


def public(results: Mapping) -> dict:
    """The results without the rendering aids (names, the CONSORT drawing): what ``--json`` writes."""
    return {k: v for k, v in results.items() if not k.startswith("_") and k != "consort_svg"}


def results_digest(results: Mapping) -> str:
    """SHA-256 of the report's numbers (its results as canonical JSON)."""
    text = json.dumps({k: v for k, v in results.items() if k != "results_sha256"}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reproducibility_section(w, results) -> str:
    n = 6 + len(results["endpoints"])
    rows = [[_e(w["study"]), _e(results["study"])], [_e(w["protocol_version"]), _e(results["protocol_version"])],
            [_e(w["code_version"]), _e(results["code_version"] or "—")], [_e(w["as_of"]), _e(results["as_of"])],
            [_e(w["blinding"]), _e(w["blind_short_" + results["blinding"]])],
            [_e(w["audit_head"]), f'{_e(results["audit_chain_count"])} · <span class="hash">{_e(results["audit_chain_hash"])}</span>'],
            [_e(w["results_digest"]), f'<span class="hash">{results_digest(results)}</span>']]
    out = [f'<section class="major"><h2>{n}. {_e(w["sec_reproducibility"])}</h2>',
           _table(["", ""], rows, caption=_e(w["repro_caption"]), continued=w["continued"])]
    rows = [[_e(f["name"]), f'<span class="hash">{f["sha256"]}</span>'] for f in results["datasets"]]
    out.append(_table([_e(w["dataset"]), "SHA-256"], rows, caption=_e(w["datasets_caption"]), continued=w["continued"]))
    out.append(f'<p class="note">{_e(w["repro_note"])}</p></section>')
    return "\n".join(out)


# --- the whole document -------------------------------------------------------------------------

def pdf(document: str) -> bytes:
    """The HTML report printed to PDF by WeasyPrint (vector figures; tables kept on one page)."""
    from weasyprint import HTML

    return HTML(string=document).write_pdf()


def build(folder, protocol, *, language: str = "en", fmt: str = "html", progress=None, code_version: str = "",
          results_sink: Callable[[dict], None] | None = None) -> bytes:
    """The report of the export in ``folder``: HTML (UTF-8) or PDF bytes (``results_sink`` is given
    every number of it, as ``compute`` returns them)."""
    if fmt not in ("html", "pdf"):
        raise ReportError(f"format {fmt!r} is not html or pdf")
    results = compute(folder, protocol, language=language, progress=progress, code_version=code_version)
    if results_sink is not None:
        results_sink(results)
    document = render(results)
    return document.encode("utf-8") if fmt == "html" else pdf(document)
