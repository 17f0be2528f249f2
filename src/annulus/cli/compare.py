"""``annulus compare``: per-visit comparisons of arms from a long CSV table (P-8.2)."""

from __future__ import annotations

import json
import math

from annulus.cli import CliError


METHODS = ("auto", "ancova", "welch", "rank")  # as annulus.stats.compare.METHODS (kept cheap)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="per-visit summaries and tests between arms",
        description="For every visit: n, mean, SD, median, IQR and 95 per cent CI per arm (value "
        "and change from baseline), each arm vs the control by the primary method, then any "
        "sensitivity analyses, and responder rates (chi-square or Fisher's exact test). Methods: "
        "ancova (change ~ arm + baseline: adjusted difference with CI, and Dunnett-adjusted), "
        "welch (Welch t tests with CI), rank (Mann-Whitney with the Hodges-Lehmann shift and CI, "
        "Kruskal-Wallis), auto (ANOVA, Welch or Kruskal-Wallis chosen by Shapiro-Wilk and Levene, "
        "with Dunnett). With --protocol the protocol's analysis plan (analysis.per_visit) gives "
        "the primary method and the sensitivity analyses; without it the method is --method "
        "(default auto).",
    )
    add_table_arguments(p)
    p.add_argument("--method", default=None, choices=METHODS,
                   help="primary per-visit method (default: the protocol's plan with --protocol, "
                   "else auto)")
    p.add_argument("--sensitivity", default=None, metavar="METHOD,...",
                   help="methods reported after the primary one as sensitivity analyses, e.g. "
                   "rank,welch (default: the protocol's plan with --protocol, else none)")
    p.add_argument("--protocol", metavar="FILE", default=None,
                   help="protocol file whose analysis plan (analysis.per_visit) pre-specifies the "
                   "primary method, the end point and the sensitivity analyses, e.g. "
                   "protocols/dlbp-admsc.yaml")
    p.add_argument("--endpoint", default=None,
                   help="change (default when --baseline is given) or value")
    p.add_argument("--responder-threshold", default=None,
                   help="improvement that makes a responder, e.g. 15 (VAS mm) or 10 (ODI points)")
    p.add_argument("--lower-is-better", default="true",
                   help="true (default: improvement = baseline - value) or false")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def add_table_arguments(p) -> None:
    """The long-table options shared with ``annulus dose``."""
    p.add_argument("--data", required=True, help="CSV file, one row per subject and visit")
    p.add_argument("--subject", required=True, help="subject identifier column")
    p.add_argument("--arm", required=True, help="arm (treatment group) column")
    p.add_argument("--visit", required=True, help="visit column")
    p.add_argument("--value", required=True, help="measured value column")
    p.add_argument("--baseline", default=None, help="baseline value column")
    p.add_argument("--control", required=True, help="the control arm's level")
    p.add_argument("--visit-number", metavar="COLUMN", default=None,
                   help="numeric column giving the visits' time order (default: AVISITN when "
                   "present, else the labels' time units: days < weeks < months < years)")
    p.add_argument("--visit-order", default=None,
                   help="comma-separated visits in time order, when the labels do not tell it")


def visit_options(args) -> dict:
    """--visit-number and --visit-order as keyword arguments of ``load_long_table``."""
    order = getattr(args, "visit_order", None)
    return {"visit_number": getattr(args, "visit_number", None),
            "visit_order": [v.strip() for v in order.split(",")] if order else None}


def plan_options(args) -> dict:
    """The per-visit plan: ``method``, ``sensitivity``, ``endpoint`` and ``source`` (where the
    plan comes from), from --protocol's analysis.per_visit or from the command line.

    With --protocol, --method, --sensitivity or --endpoint may only repeat the plan: the protocol
    pre-specifies the analysis, and running another one is done without --protocol."""
    sensitivity = None
    if args.sensitivity is not None:
        sensitivity = [m.strip() for m in args.sensitivity.split(",") if m.strip()]
        for m in sensitivity:
            if m not in METHODS:
                raise CliError(f"--sensitivity: unknown method '{m}' (choose from "
                               f"{', '.join(METHODS)})")
        if len(set(sensitivity)) != len(sensitivity):
            raise CliError("--sensitivity: a method is listed twice")
    if args.protocol is None:
        if sensitivity and (args.method or "auto") in sensitivity:
            raise CliError(f"--sensitivity: '{args.method or 'auto'}' is already the primary "
                           "method (--method)")
        return {"method": args.method or "auto", "sensitivity": sensitivity or [],
                "endpoint": args.endpoint or ("change" if args.baseline else "value"),
                "source": "command line" if args.method else "default"}
    from annulus.protocol import ProtocolError, load_protocol

    try:
        protocol = load_protocol(args.protocol)
    except ProtocolError as exc:
        raise CliError(f"--protocol {args.protocol}: " + "; ".join(exc.errors)) from None
    plan = protocol.analysis.per_visit if protocol.analysis is not None else None
    if plan is None:
        raise CliError(f"--protocol {args.protocol}: the protocol has no analysis plan "
                       "(analysis.per_visit); give --method instead of --protocol")
    for option, given, planned in (("--method", args.method, plan.primary),
                                   ("--sensitivity", sensitivity, list(plan.sensitivity)),
                                   ("--endpoint", args.endpoint, plan.endpoint)):
        if given is not None and given != planned:
            shown = ",".join(planned) if isinstance(planned, list) else planned
            raise CliError(f"{option}: the protocol's analysis plan pre-specifies "
                           f"'{shown}' (analysis.per_visit); leave out --protocol to run "
                           "another analysis")
    if plan.covariate == "baseline" and not args.baseline:
        raise CliError("--baseline: the protocol's analysis plan adjusts for the baseline "
                       "(analysis.per_visit.covariate); name the baseline column")
    return {"method": plan.primary, "sensitivity": list(plan.sensitivity),
            "endpoint": plan.endpoint,
            "source": f"protocol {protocol.trial.registry_number} version {protocol.version}, "
                      "analysis.per_visit"}


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable, parse_bool, parse_number
    from annulus.stats.compare import compare_visits, load_long_table

    plan = plan_options(args)
    try:
        frame = load_long_table(args.data, args.subject, args.arm, args.visit, args.value,
                                args.baseline, args.control, **visit_options(args))
        threshold = (None if args.responder_threshold is None
                     else parse_number(args.responder_threshold, "--responder-threshold"))
        result = compare_visits(
            frame, args.control, endpoint=plan["endpoint"], responder_threshold=threshold,
            lower_is_better=parse_bool(args.lower_is_better, "--lower-is-better"),
            method=plan["method"], sensitivity=plan["sensitivity"],
        )
    except InputError as exc:
        raise CliError(str(exc)) from None
    result["plan_source"] = plan["source"]
    if args.json:
        print(json.dumps(jsonable(result), indent=2, ensure_ascii=False))
    else:
        print_report(result)
    return 0


def _f(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _p(p) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _df(om: dict) -> str:
    return f"{_f(om['df1'], 0)}" + (f", {_f(om['df2'], 1)}" if om.get("df2") is not None else "")


def print_analysis(a: dict, result: dict, label: str | None) -> None:
    """One method's lines at one visit: a heading (unless ``label`` is None: the data-chosen test
    as printed before methods existed), the omnibus test and each arm against the control."""
    pct = round(100 * result["level"])
    control = result["control"]
    if label is None:  # auto, no plan: the reason leads
        om = a["omnibus"]
        print(f"test: {om['name']} — {a['choice']['reason']}")
    else:
        print(f"{label}: {a['name']}" + (f" — {a['choice']['reason']}" if "choice" in a else ""))
        if "note" in a:
            print(f"  {a['note']}")
            return
        om = a["omnibus"]
        if "model" in a:
            m = a["model"]
            print(f"      {m['n']} subjects, residual df {_f(m['df'], 0)}, baseline slope "
                  f"{_f(m['slope'], 3)}; adjusted means at the mean baseline {_f(m['covariate_mean'])}: "
                  + ", ".join(f"{x['arm']} {_f(x['mean'])}" for x in a["adjusted_means"]))
    if om.get("statistic") is None:
        print(f"      {om['name']}: {om.get('note', 'not computed')}")
    else:
        name = "" if label is None else f"{om['name']}: "
        print(f"      {name}statistic {_f(om['statistic'], 3)} (df {_df(om)}), p {_p(om['p'])}")
    for c in a["vs_control"]:
        t = c["test"]
        ci = (f", {pct}% CI {_f(t['lower'])} to {_f(t['upper'])}"
              if t["lower"] is not None else "")
        if t.get("level") is not None and abs(t["level"] - result["level"]) > 1e-9:
            ci = (f", {100 * t['level']:.1f}% CI {_f(t['lower'])} to {_f(t['upper'])} "
                  f"({pct}% not reachable with so few values)")
        if t["name"] == "Mann–Whitney":
            how = "exact" if t["exact"] else "normal approximation"
            line = (f"  {c['arm']} vs {control}: Mann–Whitney W {_f(t['statistic'], 1)}, p "
                    f"{_p(t['p'])} ({how}); Hodges–Lehmann shift {_f(t['estimate'])}{ci}")
        elif t["name"] == "ANCOVA":
            line = (f"  {c['arm']} vs {control}: adjusted difference {_f(t['estimate'])} "
                    f"(SE {_f(t['se'])}, df {_f(t['df'], 0)}){ci}, p {_p(t['p'])}")
        else:
            line = (f"  {c['arm']} vs {control}: {t['name']} difference {_f(t['estimate'])}"
                    f"{ci}, p {_p(t['p'])}")
        if t.get("note"):
            line += f" ({t['note']})"
        if "dunnett" in c:
            d = c["dunnett"]
            line += (f"; Dunnett p {_p(d['p'])} "
                     f"(simultaneous CI {_f(d['lower'])} to {_f(d['upper'])})")
        print(line)


def print_report(result: dict) -> None:
    pct = round(100 * result["level"])
    source = result.get("plan_source", "default")
    by_protocol = source.startswith("protocol")
    plain_auto = result.get("method", "auto") == "auto" and not result.get("sensitivity")
    if by_protocol:
        print(f"analysis plan: {source} — primary {result['method']}"
              + (f", sensitivity {', '.join(result['sensitivity'])}" if result["sensitivity"]
                 else ""))
        print()
    for v in result["visits"]:
        print(f"== {v['visit']} ({v['endpoint']}) ==")
        has_change = any("change" in s for s in v["summary"])
        header = (f"{'arm':<12}{'n':>4}  {'mean':>8} {'SD':>7} {'median':>8} {'IQR':>15}  "
                  f"{f'{pct}% CI':>17}")
        if has_change:
            header += f"   change: {'mean':>7} {f'{pct}% CI':>17}"
        print(header)
        for s in v["summary"]:
            val = s["value"]
            line = (f"{s['arm']:<12}{val['n']:>4}  {_f(val['mean']):>8} {_f(val['sd']):>7} "
                    f"{_f(val['median']):>8} {_f(val['q1']):>7}-{_f(val['q3']):<7}  "
                    f"{_f(val['lower']):>8},{_f(val['upper']):>8}")
            if "change" in s:
                ch = s["change"]
                line += f"           {_f(ch['mean']):>7} {_f(ch['lower']):>8},{_f(ch['upper']):>8}"
            print(line)
        if "method" not in v:  # too few observations for any test
            print(v["note"])
            print()
            continue
        if plain_auto and source == "default":
            print_analysis(v, result, None)
        else:
            where = " (pre-specified)" if by_protocol else ""
            print_analysis(v, result, f"primary analysis{where}")
        for s in v.get("sensitivity", []):
            print_analysis(s, result, f"sensitivity analysis{where}")
        if "responders" in v:
            r = v["responders"]
            rates = ", ".join(f"{x['arm']} {x['responders']}/{x['n']}" for x in r["rates"])
            o = r["overall"]
            print(f"responders (improvement ≥ {r['threshold']:g}): {rates}")
            print(f"  {o['name'] or 'no test'}: p {_p(o['p'])} — {o['reason']}")
            for c in r["vs_control"]:
                name = c["name"] or "no test"
                print(f"  {c['arm']} vs {result['control']}: {name} p {_p(c['p'])}")
        print()
