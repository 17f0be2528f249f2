"""``annulus power``: power of the per-visit t test and the MMRM contrast by simulation."""

from __future__ import annotations

import json
import sys

from annulus.cli import CliError

# The protocol's assumptions (annulus.stats.power.PROTOCOL), repeated here so that building the
# parser imports no numerical library; a test checks that the two agree.
PROTOCOL = {"sd": 10.27, "rho": 0.5, "dropout": 0.2, "groups": 4, "visits": 7}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "power",
        help="power by simulating the trial (t test and MMRM)",
        description="Simulates trials under the protocol's assumptions (SD 10.27 per measurement, "
        "20 per cent dropout, 4 groups, 7 post-baseline visits, correlation 0.5) and reports the "
        "power of the last-visit t test and of the MMRM contrast for each dose against the control.",
    )
    p.add_argument("--sims", default="2000", help="number of simulated trials (default 2000)")
    p.add_argument("--per-group", required=True, help="subjects enrolled per group")
    p.add_argument("--effect", required=True,
                   help="mean reduction of every dose vs control, or one per dose: 5,8,10.6")
    p.add_argument("--seed", default="1", help="random seed (default 1)")
    p.add_argument("--sd", default=str(PROTOCOL["sd"]), help="SD of one measurement")
    p.add_argument("--rho", default=str(PROTOCOL["rho"]), help="correlation between visits")
    p.add_argument("--dropout", default=str(PROTOCOL["dropout"]), help="dropout fraction")
    p.add_argument("--groups", default=str(PROTOCOL["groups"]), help="groups incl. control")
    p.add_argument("--visits", default=str(PROTOCOL["visits"]), help="post-baseline visits")
    p.add_argument("--alpha", default="0.05", help="two-sided significance level")
    p.add_argument("--no-mmrm", action="store_true", help="simulate the t test only (fast)")
    p.add_argument("--jobs", default=None,
                   help="processes that share the MMRM fits (default: the number of cores); "
                        "the result is the same for any number")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable, parse_int, parse_number
    from annulus.stats.power import default_jobs, simulate_power

    try:
        effects = [parse_number(e, "--effect") for e in str(args.effect).split(",") if e.strip()]
        if not effects:
            raise InputError("--effect needs a number")
        options = {
            "sims": parse_int(args.sims, "--sims"),
            "per_group": parse_int(args.per_group, "--per-group"),
            "effects": effects[0] if len(effects) == 1 else effects,
            "sd": parse_number(args.sd, "--sd"),
            "rho": parse_number(args.rho, "--rho"),
            "dropout": parse_number(args.dropout, "--dropout"),
            "groups": parse_int(args.groups, "--groups"),
            "visits": parse_int(args.visits, "--visits"),
            "alpha": parse_number(args.alpha, "--alpha"),
            "seed": parse_int(args.seed, "--seed"),
            "mmrm": not args.no_mmrm,
            "jobs": default_jobs() if args.jobs is None else parse_int(args.jobs, "--jobs"),
        }
        if args.no_progress or not sys.stderr.isatty():
            result = simulate_power(**options)
        else:
            result = _with_progress(simulate_power, options)
    except InputError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(jsonable(result), indent=2))
        return 0
    print(f"{result['sims']} simulated trials, seed {result['seed']}: {result['per_group']} per "
          f"group, {result['groups']} groups, {result['visits']} visits, SD {result['sd']:g}, "
          f"rho {result['rho']:g}, dropout {result['dropout']:.0%}, two-sided alpha "
          f"{result['alpha']:g}")
    print("\n".join(power_table(result)))
    if result.get("mmrm_failed_fits"):
        print(f"{result['mmrm_failed_fits']} MMRM fits failed and were left out")
    if result["note"]:
        print(f"note: {result['note']}")
    return 0


def power_table(result: dict) -> list[str]:
    """The lines of the power table: each dose's effect, t-test power (simulated ± its Monte Carlo
    SE, and analytic) and MMRM power ("-" without the MMRM)."""
    lines = [f"{'dose':<8}{'effect':>8}  {'t test':>14}  {'analytic':>8}  {'MMRM':>14}"]
    for dose, effect in result["effects"].items():
        t = result["t_test"][dose]
        m = result["mmrm"][dose] if result["mmrm"] else None
        mm = f"{m['power']:.3f} ± {m['se']:.3f}" if m else "-"
        lines.append(f"{dose:<8}{effect:>8g}  {t['power']:.3f} ± {t['se']:.3f}  {t['analytic']:>8.3f}  {mm:>14}")
    return lines


def _with_progress(simulate, options: dict) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (f"simulating (seed {options['seed']})", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    # Redrawn at each report, not by a refresh thread: a process without other threads can
    # start its worker processes by fork (see annulus.stats.power._process_context).
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  auto_refresh=False) as bar:
        task = bar.add_task("sims", total=options["sims"])
        bar.refresh()
        return simulate(**options,
                        progress=lambda done: bar.update(task, completed=done, refresh=True))
