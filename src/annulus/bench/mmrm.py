"""MMRM fit time (unstructured covariance) beside R nlme::gls(corSymm + varIdent).

Simulates 4-arm trials with 7 post-baseline visits and about 20 % monotone dropout, fits
``value ~ base + arm*visit`` by REML with an unstructured covariance, and prints seconds.
When ``Rscript`` (with nlme) is installed the same data are fitted by
``nlme::gls(correlation = corSymm, weights = varIdent)`` and the ratio R / Python is shown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


VISITS = ["W1", "M1", "M3", "M6", "M12", "M18", "M24"]
ARMS = ["control", "low", "mid", "high"]

_R_SCRIPT = r"""
suppressPackageStartupMessages(library(nlme))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$arm <- factor(d$arm)
d$visit <- factor(d$visit)
t0 <- proc.time()[["elapsed"]]
fit <- gls(value ~ base + arm * visit, data = d,
           correlation = corSymm(form = ~ vnum | subject),
           weights = varIdent(form = ~ 1 | visit), method = "REML", na.action = na.omit)
secs <- proc.time()[["elapsed"]] - t0
cat(sprintf('{"seconds": %.6f, "neg2_reml": %.8f}\n', secs, -2 * as.numeric(logLik(fit))))
"""


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="comma-separated numbers of subjects (default 100,1000,10000)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--no-r", action="store_true", help="skip the R comparison")
    parser.add_argument("--r-timeout", type=float, default=3600.0,
                        help="seconds to wait for each R fit before giving up")


def simulate(n_subjects: int, seed: int = 1) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    """A trial of the protocol's shape: long format, NaN after dropout."""
    rng = np.random.default_rng(seed)
    t = len(VISITS)
    sds = np.linspace(9, 14, t)
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    corr = 0.8 * 0.6**lag + 0.2 * np.eye(t)
    chol = np.linalg.cholesky(sds[:, None] * corr * sds[None, :])
    arm = np.array(ARMS)[np.arange(n_subjects) % len(ARMS)]
    effect = pd.Series({"control": 0, "low": -4, "mid": -8, "high": -11})[arm].to_numpy()
    base = rng.normal(65, 10, n_subjects)
    mu = (70 + 0.5 * (base - 65))[:, None] - np.linspace(2, 20, t)[None, :] \
        + effect[:, None] * np.linspace(0.3, 1, t)[None, :]
    y = mu + rng.standard_normal((n_subjects, t)) @ chol.T
    drop = rng.random(n_subjects) < 0.2
    last = np.where(drop, rng.integers(1, t, n_subjects), t)
    y[np.arange(t)[None, :] >= last[:, None]] = np.nan
    return pd.DataFrame({
        "subject": np.repeat([f"S{i:05d}" for i in range(n_subjects)], t),
        "arm": np.repeat(arm, t),
        "visit": np.tile(VISITS, n_subjects),
        "vnum": np.tile(np.arange(1, t + 1), n_subjects),
        "base": np.repeat(np.round(base, 1), t),
        "value": np.round(y.ravel(), 3),
    })


def _run_r(csv: Path, timeout: float) -> dict | None:
    try:
        proc = subprocess.run(["Rscript", "-e", _R_SCRIPT, str(csv)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> int:
    from annulus.cli import CliError
    from annulus.stats.mmrm import fit_mmrm

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    if not sizes or min(sizes) < 8:
        raise CliError("--sizes must list subject counts of at least 8")
    use_r = not args.no_r and shutil.which("Rscript") is not None
    if not args.no_r and not use_r:
        print("Rscript not found: R column skipped", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            data = simulate(n, args.seed)
            print(f"[{n} subjects x {len(VISITS)} visits] fitting in Python ...", flush=True)
            t0 = time.perf_counter()
            res = fit_mmrm(data, "value ~ base + arm*visit", subject="subject", visit="visit",
                           cov="us", method="reml", df="satterthwaite", visit_order=VISITS)
            py = time.perf_counter() - t0
            print(f"[{n} subjects] Python {py:.2f} s, -2 REML log-likelihood "
                  f"{res.neg2_loglik:.4f}", flush=True)
            r = None
            if use_r:
                csv = Path(tmp) / f"bench_{n}.csv"
                data.to_csv(csv, index=False, na_rep="NA")
                print(f"[{n} subjects] fitting in R nlme::gls ...", flush=True)
                r = _run_r(csv, args.r_timeout)
                if "error" in r:
                    print(f"[{n} subjects] R: {r['error']}", flush=True)
                else:
                    print(f"[{n} subjects] R {r['seconds']:.2f} s, -2 REML log-likelihood "
                          f"{r['neg2_reml']:.4f}", flush=True)
            rows.append((n, py, res.neg2_loglik, r))
    print()
    header = f"{'subjects':>9} {'rows':>7} {'Python s':>10}"
    if use_r:
        header += f" {'R gls s':>10} {'R/Python':>9} {'|d -2LL|':>10}"
    print(header)
    for n, py, ll, r in rows:
        line = f"{n:>9} {n * len(VISITS):>7} {py:>10.2f}"
        if use_r:
            if r and "error" not in r:
                line += f" {r['seconds']:>10.2f} {r['seconds'] / py:>9.1f} " \
                        f"{abs(r['neg2_reml'] - ll):>10.1e}"
            else:
                line += f" {'-':>10} {'-':>9} {'-':>10}"
        print(line)
    return 0
