"""Power by simulation with the MMRM: simulated trials per second (the engine of `annulus power`).

Runs ``simulate_power`` on the protocol's design (4 groups of --per-group subjects, 7 visits,
SD 10.27, correlation 0.5, 20 % dropout, --effect for every dose) with --trials simulated trials
on --jobs processes and prints trials, jobs, wall and CPU seconds (this process and its worker
processes), trials per second and the power estimates with their Monte Carlo SE. The load average
before and after shows how busy the machine was. With --standalone N it first analyses trials
0..N-1 the way `annulus power` did before (a pandas table and a full ``fit_mmrm`` with its
contrasts per trial), prints the seconds per trial of both ways and how far apart their p-values
and estimates are on those trials.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings


def add_arguments(parser) -> None:
    parser.add_argument("--trials", type=int, default=2000,
                        help="simulated trials (default 2000)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes (default: the number of cores)")
    parser.add_argument("--per-group", type=int, default=25, help="subjects per group (25)")
    parser.add_argument("--effect", type=float, default=10.6, help="effect of every dose (10.6)")
    parser.add_argument("--seed", type=int, default=1, help="master seed (1)")
    parser.add_argument("--standalone", type=int, default=10,
                        help="also analyse the first N trials with a full fit_mmrm each, as "
                             "before (default 10; 0 to skip)")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load() -> str:
    try:
        return "{:.2f}".format(os.getloadavg()[0])
    except OSError:
        return "?"


def _standalone(n: int, options: dict) -> tuple[float, float, list]:
    """The analysis of trials 0..n-1 as `annulus power` did it before: (wall s, CPU s, per trial
    (t-test p, MMRM p, MMRM estimate) per dose; NaN where there is none)."""
    from annulus.stats.power import arm_labels

    doses = arm_labels(options["groups"])[1:]
    rows = []
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a t test with fewer than 2 subjects in an arm: NaN
        for i in range(n):
            rows.append(_standalone_trial(i, options, doses))
    return time.perf_counter() - wall, time.process_time() - cpu, rows


def _standalone_trial(i: int, options: dict, doses: list) -> tuple:
    import numpy as np
    from scipy import stats

    from annulus.stats.mmrm import MmrmError, fit_mmrm
    from annulus.stats.power import FORMULA, simulate_trial, trial_rng

    last_visit = f"V{options['visits']}"
    trial = simulate_trial(trial_rng(options["seed"], i), options["per_group"],
                           [options["effects"]] * len(doses), visits=options["visits"])
    last = trial[trial["visit"] == last_visit]
    ctl = last.loc[last["arm"] == "control", "change"].to_numpy()
    t_p = [stats.ttest_ind(last.loc[last["arm"] == d, "change"].to_numpy(), ctl).pvalue
           for d in doses]
    try:
        fit = fit_mmrm(trial, FORMULA, subject="subject", visit="visit", cov="us")
        found = {r["arm"]: r for r in fit.contrasts(arm="arm", control="control", by="visit")
                 if r["visit"] == last_visit}
        m_p = [np.nan if found[d]["p"] is None else found[d]["p"] for d in doses]
        m_est = [found[d]["estimate"] for d in doses]
    except MmrmError:
        m_p = m_est = [np.nan] * len(doses)
    return t_p, m_p, m_est


def run(args) -> int:
    from annulus.cli import CliError
    from annulus.cli.power import power_table
    from annulus.stats._io import InputError
    from annulus.stats.power import default_jobs, simulate_power

    if args.trials < 1:
        raise CliError("--trials must be at least 1")
    if args.standalone < 0:
        raise CliError("--standalone must be 0 or more")
    jobs = default_jobs() if args.jobs is None else args.jobs
    options = {"sims": args.trials, "per_group": args.per_group, "effects": args.effect,
               "seed": args.seed, "groups": 4, "visits": 7, "jobs": jobs, "per_trial": True}
    print(f"power by simulation: 4 groups of {args.per_group}, 7 visits, SD 10.27, rho 0.5, "
          f"dropout 20%, effect {args.effect:g} for every dose, seed {args.seed}; "
          f"{default_jobs()} cores, load average {_load()}", flush=True)
    before = None
    if args.standalone:
        n = min(args.standalone, args.trials)
        wall, cpu, before = _standalone(n, options)
        print(f"standalone fit_mmrm per trial (as before): {n} trials in {wall:.2f} s, "
              f"{wall / n:.3f} s per trial (CPU {cpu / n:.3f} s)", flush=True)
    load_before = _load()
    cpu0, wall0 = _cpu(), time.perf_counter()
    try:
        if sys.stderr.isatty():
            from annulus.cli.power import _with_progress

            result = _with_progress(simulate_power, options)
        else:
            result = simulate_power(**options)
    except InputError as exc:
        raise CliError(str(exc)) from None
    wall = time.perf_counter() - wall0
    cpu = _cpu() - cpu0
    trials = args.trials
    print(f"trials {trials}, jobs {min(jobs, trials)}, {wall:.2f} s, CPU {cpu:.2f} s, "
          f"{trials / wall:.1f} trials/s, {wall / trials:.4f} s per trial "
          f"(CPU {cpu / trials:.4f} s per trial); load average {load_before} before, "
          f"{_load()} after")
    print("\n".join(power_table(result)))
    if result.get("mmrm_failed_fits"):
        print(f"{result['mmrm_failed_fits']} MMRM fits failed and were left out")
    if before:
        import numpy as np

        per = result["per_trial"]
        n = len(before)
        old_t = np.array([r[0] for r in before])
        old_p = np.array([r[1] for r in before])
        old_e = np.array([r[2] for r in before])

        def worst(new, old, relative=True):
            both = np.isfinite(new) & np.isfinite(old)
            if not both.any():
                return "n/a"
            diff = np.abs(new[both] - old[both])
            return f"{(diff / np.abs(old[both]) if relative else diff).max():.1e}"

        print(f"trials 0-{n - 1}, this run vs standalone: MMRM p relative difference at most "
              f"{worst(per['mmrm_p'][:n], old_p)}, estimate "
              f"{worst(per['mmrm_estimate'][:n], old_e, relative=False)} mm, t-test p "
              f"{worst(per['t_p'][:n], old_t)}")
    return 0
