"""Seconds to build the whole trial report at 100 and 10,000 participants (issue target: < 60 s at 10,000).

The trial is the export benchmark's filled SQLite trial (``annulus.bench.fill``: every participant
through every visit; cached under the var directory, ``--db PATH`` to name one). In a process of
its own, as the statistician, the benchmark times each step of ``annulus report``: the ADaM export
(``run_export``), the analyses of every end point of the plan and the tables
(``annulus.report.document.compute``), the HTML and the PDF. It does so twice: the blinded report
(pooled) and the unblinded one (by treatment). The filled trial is blinded; the unblinded report is
built from a copy of it whose trial state is "second-level unblinded" (``unblinded_copy``, kept
beside it), so both reports take the application's own path, the export's processes included
(``annulus.exports.parts``). The row "total" is what a user waits for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from annulus.cli import CliError

TARGET_SECONDS = 60.0
STEPS = ("export", "compute", "html", "pdf")


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="100,10000", help="comma-separated trial sizes (default 100,10000)")
    parser.add_argument("--db", default="", help="SQLite file of a filled trial (one size)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--language", default="en", choices=["en", "zh-hans"])
    parser.add_argument("--child", default="", help=argparse_suppress())
    parser.add_argument("--blind", default="blinded", help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def run(args) -> int:
    if args.child:
        return child(Path(args.child), args.blind, args.language)
    from annulus.bench.export import _env, _filled, _sizes

    sizes = _sizes(args.sizes)
    db = Path(args.db).resolve() if args.db else None
    if db is not None and len(sizes) > 1:
        raise CliError("--db names one trial: give one size with --sizes")
    print("annulus bench report: SQLite, one process per report, as the statistician", flush=True)
    rows = []
    for size in sizes:
        path, filled = _filled(size, args.seed, db)
        if filled is not None:
            print(f"  filled {size} participants in {filled:.0f} s", flush=True)
        for blind in ("blinded", "arms"):
            out = Path(tempfile.mkdtemp(prefix="annulus-bench-report-"))
            try:
                trial = path if blind == "blinded" else unblinded_copy(path)
                done = subprocess.run([sys.executable, "-m", "annulus", "bench", "report", "--child", str(out),
                                       "--blind", blind, "--language", args.language],
                                      env=_env(trial), capture_output=True, text=True)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            if done.returncode:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise CliError(f"report of {size} participants ({blind}) failed: {' | '.join(tail)}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((size, blind, r))
            print(f"  {size:>6} {blind:<8}" + "".join(f"{r[s]:>9.1f}" for s in STEPS)
                  + f"{r['total']:>9.1f} s  {r['pages']:>3} pages", flush=True)
    print()
    print(f"{'participants':>12} {'report':<9}" + "".join(f"{s:>9}" for s in STEPS) + f"{'total':>9}  target")
    for size, blind, r in rows:
        verdict = "" if size < 10_000 else ("  met" if r["total"] < TARGET_SECONDS else "  NOT MET")
        print(f"{size:>12} {blind:<9}" + "".join(f"{r[s]:>9.1f}" for s in STEPS) + f"{r['total']:>9.1f}"
              + f"  < {TARGET_SECONDS:.0f} s{verdict}")
    return 0


def unblinded_copy(path: Path) -> Path:
    """A copy of the filled trial ``path`` whose trial state is second-level unblinded (as after
    ``release_level2``), made once and kept beside it while it is newer than the trial."""
    import sqlite3

    copy = path.with_name(path.stem + "-unblinded.sqlite3")
    if copy.exists() and copy.stat().st_mtime >= path.stat().st_mtime:
        return copy
    print(f"copying {path.name} to {copy.name}, second-level unblinded (kept for later runs)", flush=True)
    tmp = copy.with_name(copy.name + ".copying")
    src, dst = sqlite3.connect(path), sqlite3.connect(tmp)
    try:
        src.backup(dst)
        # the change is in the file itself (not in a write-ahead log left behind by the rename)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.execute("INSERT INTO trial_trialstate (id, state, changed_at) VALUES (1, 'unblinded_2', "
                    "datetime('now')) ON CONFLICT(id) DO UPDATE SET state = 'unblinded_2'")
        dst.commit()
    finally:
        src.close()
        dst.close()
    tmp.replace(copy)
    return copy


def child(out: Path, blind: str, language: str) -> int:
    from annulus.cli import setup_django

    setup_django()
    from django.contrib.auth import get_user_model

    from annulus import __version__
    from annulus.exports.services import run_export
    from annulus.report import document
    from annulus.trial.selectors import active_protocol

    user = get_user_model().objects.get(username="statistician")
    protocol = active_protocol()
    seconds = {}
    started = time.perf_counter()
    run_export(actor=user, fmt="adam", out_dir=out / "adam", language=language, at_most=blind, transport=False)
    seconds["export"] = time.perf_counter() - started
    t = time.perf_counter()
    results = document.compute(out / "adam", protocol, language=language, code_version=__version__)
    seconds["compute"] = time.perf_counter() - t
    t = time.perf_counter()
    html = document.render(results)
    seconds["html"] = time.perf_counter() - t
    t = time.perf_counter()
    from weasyprint import HTML  # what document.pdf does, keeping the page count

    rendered = HTML(string=html).render()
    rendered.write_pdf()
    seconds["pdf"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started
    seconds["pages"] = len(rendered.pages)
    if results["blinding"] != blind:
        raise SystemExit(f"the report is {results['blinding']}, not {blind}")
    print(json.dumps(seconds))
    return 0

