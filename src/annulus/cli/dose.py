"""``annulus dose``: dose–response analyses (Dunnett per visit, trend test, MCP-Mod)."""

from __future__ import annotations

import json

from annulus.cli import CliError
from annulus.cli.compare import add_table_arguments, visit_options

MODEL_NAMES = ("linear", "emax", "exponential", "quadratic")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dose",
        help="Dunnett, linear trend and MCP-Mod across doses",
        description="At every visit: Dunnett's many-to-one comparisons and a linear trend test "
        "over the dose scores; at one visit (default: the last) MCP-Mod with Emax, linear, "
        "exponential and quadratic candidates. With --mmrm, Dunnett-adjusted MMRM contrasts too.",
    )
    add_table_arguments(p)
    p.add_argument("--dose", action="append", required=True, metavar="LEVEL=DOSE",
                   help="dose of an arm, repeat or comma-separate: --dose control=0,low=5,...")
    p.add_argument("--endpoint", default=None, help="change (default with --baseline) or value")
    p.add_argument("--at", default=None,
                   help="visit for MCP-Mod (default: the last visit in time order)")
    p.add_argument("--model", action="append", default=None, metavar="NAME=GUESS",
                   help="candidate model and guesstimate (emax=ED50, exponential=delta, "
                   "quadratic=delta, linear=0); default: all four with guesses from the top dose")
    p.add_argument("--alpha", default="0.025", help="one-sided MCP-Mod level (default 0.025)")
    p.add_argument("--delta", default=None,
                   help="clinically relevant effect over placebo: report the target dose")
    p.add_argument("--lower-is-better", default="true",
                   help="true (default): a benefit lowers the endpoint; sets MCP-Mod's direction")
    p.add_argument("--mmrm", action="store_true",
                   help="also fit an MMRM (endpoint ~ baseline + arm * visit) and adjust its "
                   "contrasts with Dunnett")
    p.add_argument("--df", default="satterthwaite", choices=["satterthwaite", "kenward-roger"],
                   help="denominator degrees of freedom of the --mmrm contrasts (default satterthwaite)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def default_models(max_dose: float) -> dict[str, float | None]:
    """Guesstimates scaled to the top dose: Emax ED50 at a fifth of it, an exponential that is
    convex over the range, and a quadratic whose peak lies at 5/6 of the top dose."""
    return {"linear": None, "emax": 0.2 * max_dose, "exponential": 0.5 * max_dose,
            "quadratic": -0.6 / max_dose}


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable

    try:
        result = analyse(args)
    except InputError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(jsonable(result), indent=2, ensure_ascii=False))
    else:
        print_report(result)
    return 0


def analyse(args) -> dict:
    from annulus.stats import _io
    from annulus.stats._io import InputError, parse_bool, parse_levels_map, parse_number
    from annulus.stats.compare import load_long_table
    from annulus.stats.dose_response import dunnett, mcpmod, trend_test

    frame = load_long_table(args.data, args.subject, args.arm, args.visit, args.value,
                            args.baseline, args.control, **visit_options(args))
    doses = parse_levels_map(args.dose, "--dose")
    arms = _io.arm_order(frame["arm"], args.control)
    missing = [a for a in arms if a not in doses]
    if missing:
        raise InputError(f"no --dose given for arm '{missing[0]}'")
    unknown = [a for a in doses if a not in arms]
    if unknown:
        raise InputError(f"--dose names arm '{unknown[0]}', which is not in column '{args.arm}'")
    endpoint = args.endpoint or ("change" if args.baseline else "value")
    if endpoint not in ("change", "value"):
        raise InputError(f"--endpoint must be change or value, got '{endpoint}'")
    if endpoint == "change" and not args.baseline:
        raise InputError("--endpoint change needs --baseline")
    lower_is_better = parse_bool(args.lower_is_better, "--lower-is-better")
    alpha = _io.check_probability(parse_number(args.alpha, "--alpha"), "--alpha")
    data = frame.dropna(subset=["value"]).copy()
    if endpoint == "change":
        data["change"] = data["value"] - data["baseline"]
        data = data.dropna(subset=["change"])
    arms = sorted(arms, key=lambda a: doses[a])
    visits = _io.ordered_levels(frame["visit"])
    at = args.at if args.at is not None else visits[-1]
    if at not in visits:
        raise InputError(f"--at visit '{at}' not found (visits: {', '.join(visits)})")

    per_visit = []
    for v in visits:
        sub = data[data["visit"] == v]
        samples = {a: sub.loc[sub["arm"] == a, endpoint].to_numpy() for a in arms}
        short = [a for a, s in samples.items() if len(s) < 2]
        if short:
            per_visit.append({"visit": v, "note": f"fewer than 2 observations in arm {short[0]}"})
            continue
        entry = {"visit": v, "dunnett": dunnett(samples, args.control)}
        if len(arms) >= 3:
            entry["trend"] = trend_test(samples, doses)
        per_visit.append(entry)

    models = (default_models(max(doses.values())) if not args.model
              else _parse_models(args.model))
    sub = data[data["visit"] == at]
    delta = None if args.delta is None else parse_number(args.delta, "--delta")
    mcp = mcpmod(sub["arm"].map(doses), sub[endpoint], models, alpha=alpha,
                 direction="decreasing" if lower_is_better else "increasing", delta=delta)
    result = {"endpoint": endpoint, "control": args.control, "doses": {a: doses[a] for a in arms},
              "visits": per_visit, "mcpmod": {"visit": at, **mcp.as_dict()}}
    if args.mmrm:
        result["mmrm_dunnett"] = _mmrm(data, endpoint, args.control, visits, getattr(args, "df", "satterthwaite"))
    return result


def _parse_models(items) -> dict[str, float | None]:
    from annulus.stats._io import InputError, parse_number

    models = {}
    for item in items:
        for part in str(item).split(","):
            name, _, guess = part.strip().partition("=")
            name = name.strip().lower()
            if name not in MODEL_NAMES:
                known = ", ".join(MODEL_NAMES)
                raise InputError(f"--model: unknown model '{name}' (known: {known})")
            if name == "linear":
                models[name] = None
            else:
                if not guess.strip():
                    raise InputError(f"--model {name} needs a guesstimate: {name}=NUMBER")
                models[name] = parse_number(guess, f"--model {name}")
    return models


def _mmrm(data, endpoint: str, control: str, visits: list[str], df: str = "satterthwaite") -> dict:
    from annulus.stats._io import InputError

    try:
        from annulus.stats.mmrm import MmrmError, fit_mmrm
    except ImportError as exc:
        return {"note": f"MMRM not available ({exc})"}
    from annulus.stats.dose_response import mmrm_dunnett

    import pandas as pd

    # A categorical visit keeps the file's visit order (time order) in the model output.
    data = data.assign(visit=pd.Categorical(data["visit"], categories=visits, ordered=True))
    covariate = "baseline + " if "baseline" in data else ""
    formula = f"{endpoint} ~ {covariate}arm * visit"
    try:
        fit = fit_mmrm(data, formula, subject="subject", visit="visit", cov="us", df=df)
    except MmrmError as exc:
        raise InputError(f"MMRM: {exc}") from None
    return {"formula": formula, "converged": fit.converged,
            "contrasts": mmrm_dunnett(fit, "arm", control, "visit")}


def _p(p) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def print_report(result: dict) -> None:
    doses = ", ".join(f"{a} = {d:g}" for a, d in result["doses"].items())
    print(f"endpoint: {result['endpoint']}; doses: {doses}")
    for v in result["visits"]:
        print(f"== {v['visit']} ==")
        if "note" in v:
            print(f"  no tests: {v['note']}")
            continue
        for r in v["dunnett"]:
            print(f"  Dunnett {r['arm']} vs {result['control']}: {r['estimate']:.2f} "
                  f"({r['lower']:.2f} to {r['upper']:.2f}), adjusted p {_p(r['p'])}")
        if "trend" in v:
            t = v["trend"]
            print(f"  linear trend: estimate {t['estimate']:.3f}, t {t['t']:.3f} (df {t['df']}), "
                  f"p {_p(t['p'])}")
    m = result["mcpmod"]
    print(f"== MCP-Mod at {m['visit']} (one-sided alpha {m['alpha']:g}, critical value "
          f"{m['critical_value']:.3f}) ==")
    for t in m["tests"]:
        star = "  significant" if t["significant"] else ""
        print(f"  {t['model']:<12} t {t['t']:7.3f}  adjusted p {_p(t['p'])}{star}")
    for name, fit in m["fits"].items():
        coef = ", ".join(f"{k} {v:.4g}" for k, v in fit["coef"].items())
        td = fit.get("target_dose")
        target = "" if m["delta"] is None else (
            f"; target dose for {m['delta']:g}: " + ("not reached" if td is None else f"{td:.3g}"))
        print(f"  fit {name}: {coef}; AIC {fit['aic']:.2f}{target}")
    print(f"  selected model (AIC): {m['selected'] or 'none (no significant contrast)'}")
    if "mmrm_dunnett" in result:
        mm = result["mmrm_dunnett"]
        if "note" in mm:
            print(f"MMRM: {mm['note']}")
        else:
            print(f"== MMRM contrasts, Dunnett-adjusted ({mm['formula']}) ==")
            for r in mm["contrasts"]:
                if r.get("estimable") is False:
                    print(f"  {r['visit']}: {r['arm']} vs {result['control']} {r['estimate']:.2f} "
                          f"({r['note']})")
                    continue
                print(f"  {r['visit']}: {r['arm']} vs {result['control']} {r['estimate']:.2f} "
                      f"(SE {r['se']:.2f}, df {r['df']:.1f}), adjusted p {_p(r['p'])}")
