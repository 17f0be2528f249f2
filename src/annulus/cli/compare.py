"""``annulus compare``: per-visit comparisons of arms from a long CSV table (P-8.2)."""

from __future__ import annotations

import json
import math

from annulus.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="per-visit summaries and tests between arms",
        description="For every visit: n, mean, SD, median, IQR and 95 per cent CI per arm (value "
        "and change from baseline), the omnibus test chosen by Shapiro-Wilk and Levene (ANOVA, Welch "
        "or Kruskal-Wallis) with the reason, each arm vs the control (t, Welch or Mann-Whitney, "
        "and Dunnett-adjusted), and responder rates (chi-square or Fisher's exact test).",
    )
    add_table_arguments(p)
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


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable, parse_bool, parse_number
    from annulus.stats.compare import compare_visits, load_long_table

    try:
        frame = load_long_table(args.data, args.subject, args.arm, args.visit, args.value,
                                args.baseline, args.control, **visit_options(args))
        endpoint = args.endpoint or ("change" if args.baseline else "value")
        threshold = (None if args.responder_threshold is None
                     else parse_number(args.responder_threshold, "--responder-threshold"))
        result = compare_visits(
            frame, args.control, endpoint=endpoint, responder_threshold=threshold,
            lower_is_better=parse_bool(args.lower_is_better, "--lower-is-better"),
        )
    except InputError as exc:
        raise CliError(str(exc)) from None
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


def print_report(result: dict) -> None:
    pct = round(100 * result["level"])
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
        if "note" in v:
            print(v["note"])
            print()
            continue
        om = v["omnibus"]
        df = f"{_f(om['df1'], 0)}" + (f", {_f(om['df2'], 1)}" if om["df2"] is not None else "")
        print(f"test: {om['name']} — {v['choice']['reason']}")
        print(f"      statistic {_f(om['statistic'], 3)} (df {df}), p {_p(om['p'])}")
        for c in v["vs_control"]:
            t, d = c["test"], c["dunnett"]
            ci = (f", {pct}% CI {_f(t['lower'])} to {_f(t['upper'])}"
                  if t["lower"] is not None else "")
            print(f"  {c['arm']} vs {result['control']}: {t['name']} difference {_f(t['estimate'])}"
                  f"{ci}, p {_p(t['p'])}; Dunnett p {_p(d['p'])} "
                  f"(simultaneous CI {_f(d['lower'])} to {_f(d['upper'])})")
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
