"""``annulus randomisation simulate``: operating characteristics of the randomisation methods.

Registered by ``annulus.cli.randomisation`` (this module's name starts with ``_`` so the command
loader does not register it a second time). Arguments are parsed here, not by argparse, so a bad
value is one line naming the option, exit 2.
"""

from __future__ import annotations

import json
import re
import sys

from annulus.cli import CliError

DEFAULT_FACTORS = ["site=s1:0.5,s2:0.3,s3:0.2", "severity=moderate:0.6,severe:0.4"]
METHODS = ("simple", "blocks", "stratified", "minimisation")  # as annulus.randomisation.simulate


def register_simulate(actions) -> None:
    sim = actions.add_parser(
        "simulate",
        help="operating characteristics (balance, predictability) of each method by simulation",
        description="Simulates trials whose participants' factor levels are drawn from the given "
        "marginal distributions, allocates them by simple randomisation, permuted blocks, "
        "stratified permuted blocks and minimisation, and reports per method the imbalance "
        "between arms (overall and per factor level: mean / 95th percentile) and the probability "
        "that an investigator who knows every earlier allocation guesses the next one.",
    )
    sim.add_argument("--participants", default="100", metavar="N", help="participants per trial (default 100)")
    sim.add_argument("--ratios", default="1:1", metavar="R", help="allocation ratio, e.g. 1:1, 2:1, 1:1:1:1 (default 1:1)")
    sim.add_argument("--factor", action="append", metavar="ID=P1,P2,...",
                     help="a factor and its levels' probabilities, e.g. site=0.5,0.3,0.2 or "
                          "pain=moderate:0.6,severe:0.4; repeat for each factor "
                          f"(default: {' and '.join(DEFAULT_FACTORS)})")
    sim.add_argument("--weights", metavar="W1,W2,...", help="minimisation weight of each factor (default 1 each)")
    sim.add_argument("--p", default="0.8", help="minimisation: probability of the preferred arm (default 0.8)")
    sim.add_argument("--measure", default="range", help="minimisation: range or variance (default range)")
    sim.add_argument("--block-sizes", metavar="B1,B2", help="block sizes (default: the smallest multiple of the ratio sum that is at least 4, and twice it)")
    sim.add_argument("--trials", default="1000", metavar="N", help="simulated trials (default 1000)")
    sim.add_argument("--seed", default="1", metavar="N", help="random seed (default 1)")
    sim.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    sim.add_argument("--json", action="store_true", help="print JSON")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.set_defaults(func=cmd_simulate)


def _int(text: str, where: str, low: int = 1, high: int | None = None) -> int:
    text = str(text).strip()
    if not re.fullmatch(r"[0-9]+", text):
        raise CliError(f"{where}: must be a whole number (got {text!r})")
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise CliError(f"{where}: must be {bound} (got {value})")
    return value


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"{where}: must be a number (got {text!r})") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CliError(f"{where}: must be a finite number (got {text!r})")
    return value


def _factor(text: str, index: int):
    where = f"--factor {text!r}"
    fid, sep, rest = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,30}", fid.strip()):
        raise CliError(f"{where}: write ID=P1,P2,... (for example site=0.5,0.3,0.2)")
    levels, probs = [], []
    for j, item in enumerate(p for p in rest.split(",")):
        name, colon, prob = item.strip().rpartition(":")
        levels.append(name.strip() if colon else str(j + 1))
        value = _number(prob.strip(), where)
        if value < 0:
            raise CliError(f"{where}: probabilities must not be negative")
        probs.append(value)
    if len(levels) < 2:
        raise CliError(f"{where}: a factor needs at least 2 levels")
    if len(set(levels)) != len(levels) or not all(levels):
        raise CliError(f"{where}: level names must be non-empty and unique")
    if abs(sum(probs) - 1) > 1e-6:
        raise CliError(f"{where}: the probabilities add up to {sum(probs):g}, not 1")
    return fid.strip(), levels, probs


def cmd_simulate(args) -> int:
    participants = _int(args.participants, "--participants", 1, 100_000)
    trials = _int(args.trials, "--trials", 1, 1_000_000)
    seed = _int(args.seed, "--seed", 0, 2**63 - 1)
    if not re.fullmatch(r"\s*[0-9]+(\s*:\s*[0-9]+)+\s*", args.ratios):
        raise CliError(f"--ratios: write whole numbers separated by colons, e.g. 2:1 (got {args.ratios!r})")
    ratios = [_int(r, "--ratios", 1, 10) for r in args.ratios.split(":")]
    factors = [_factor(text, i) for i, text in enumerate(args.factor or DEFAULT_FACTORS)]
    ids = [f[0] for f in factors]
    if len(set(ids)) != len(ids):
        raise CliError("--factor: each factor id once")
    weights = None
    if args.weights is not None:
        weights = [_number(w, "--weights") for w in args.weights.split(",")]
        if len(weights) != len(factors) or any(w <= 0 for w in weights):
            raise CliError(f"--weights: one positive number per factor ({len(factors)}) is needed")
    p = _number(args.p, "--p")
    if not 1 / len(ratios) < p <= 1:
        raise CliError(f"--p: must be greater than 1/{len(ratios)} (one over the number of arms) and at most 1")
    if args.measure not in ("range", "variance"):
        raise CliError(f"--measure: range or variance (got {args.measure!r})")
    unit = sum(ratios)
    block_sizes = None
    if args.block_sizes is not None:
        block_sizes = [_int(b, "--block-sizes", 1, 1000) for b in args.block_sizes.split(",")]
        bad = [b for b in block_sizes if b % unit]
        if bad:
            raise CliError(f"--block-sizes: {bad[0]} is not a multiple of the ratio sum {unit}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise CliError(f"--methods: choose from {','.join(METHODS)} (got {args.methods!r})")

    from annulus.randomisation import RandomisationError
    from annulus.randomisation.simulate import simulate, table_lines

    options = dict(participants=participants, ratios=ratios, factors=factors, trials=trials, seed=seed,
                   block_sizes=block_sizes, weights=weights, p=p, measure=args.measure, methods=methods)
    try:
        if args.no_progress or not sys.stderr.isatty():
            result = simulate(**options)
        else:
            result = _with_progress(simulate, options)
    except RandomisationError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    factors_text = "; ".join(
        f"{f['id']} " + ", ".join(f"{lv} {pr:g}" for lv, pr in zip(f["levels"], f["probabilities"]))
        + f" (weight {f['weight']:g})"
        for f in result["factors"]
    )
    print(f"{result['trials']} simulated trials, seed {result['seed']}: {result['participants']} participants, "
          f"ratio {':'.join(map(str, result['ratios']))}, block sizes {', '.join(map(str, result['block_sizes']))}, "
          f"minimisation p {result['p']:g} ({result['measure']})")
    print(f"factors: {factors_text}")
    print("imbalance = max - min over arms of n/ratio, as mean / 95th percentile over trials; "
          "P(correct guess) ± Monte Carlo SE")
    print("\n".join(table_lines(result)))
    return 0


def _with_progress(simulate, options: dict) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (f"simulating (seed {options['seed']})", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, auto_refresh=False) as bar:
        task = bar.add_task("trials", total=options["trials"])
        bar.refresh()
        step = max(1, options["trials"] // 200)
        return simulate(**options, progress=lambda done: (done % step == 0 or done == options["trials"])
                        and bar.update(task, completed=done, refresh=True))
