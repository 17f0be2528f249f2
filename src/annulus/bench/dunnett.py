"""Seconds for the Dunnett-adjusted MMRM contrasts of one end point (mmrm_dunnett).

Simulates the trial of ``annulus bench mmrm`` (4 arms, 7 visits), fits the MMRM once, then times
``annulus.stats.dose_response.mmrm_dunnett``: three contrasts with control at each visit, every
adjusted p-value and critical value a multivariate t integral. "first" includes building the
quasi-random point sets, which later end points of a report reuse; "again" is the median of the
repeats.
"""

from __future__ import annotations

import statistics
import time


def add_arguments(parser) -> None:
    parser.add_argument("--subjects", type=int, default=200, help="trial size (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls after the first")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")


def run(args) -> int:
    from annulus.bench.mmrm import VISITS, simulate
    from annulus.cli import CliError
    from annulus.stats.dose_response import mmrm_dunnett
    from annulus.stats.mmrm import fit_mmrm

    if args.subjects < 8 or args.repeat < 1:
        raise CliError("--subjects must be at least 8 and --repeat at least 1")
    fit = fit_mmrm(simulate(args.subjects, args.seed), "value ~ base + arm*visit",
                   subject="subject", visit="visit", cov="us", df="satterthwaite",
                   visit_order=VISITS)
    seconds = []
    for _ in range(args.repeat + 1):
        t0 = time.perf_counter()
        rows = mmrm_dunnett(fit, "arm", "control", "visit")
        seconds.append(time.perf_counter() - t0)
    print(f"mmrm_dunnett, {args.subjects} subjects: {len(rows)} contrasts at {len(VISITS)} visits")
    print(f"first {seconds[0]:.3f} s, again {statistics.median(seconds[1:]):.3f} s")
    return 0
