"""Export seconds and peak memory per format at 1,000 and 10,000 participants (issue targets).

For each size a SQLite trial is filled with ``annulus.bench.fill`` (every participant through
every visit with every form; about 85 forms each) and kept under the var directory
(``bench/export-<size>-s<seed>-v<fill version>.sqlite3``) so later runs reuse it; ``--db PATH``
names the file to use instead (one size). Then each format is exported by the real export
service (``annulus.exports.services.run_export``, as the statistician: blinded) in a process of
its own, so that its peak resident memory (``VmHWM``) is that export's alone. The table
gives seconds, peak MiB, files, rows (tabular formats) and MB written; then, per format, the
ratio of the largest size's peak memory to the smallest's. Targets (issue 13): under 60 s per
format at 10,000 participants, and peak memory under 2x the 1,000-participant run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from annulus.cli import CliError

FORMATS = ["csv", "sav", "dta", "xpt", "odm", "sdtm", "dataset-json", "adam"]
FILL_VERSION = 1  # bump when fill.py writes different rows: cached trials are then filled again
TARGET_SECONDS = 60.0
TARGET_RATIO = 2.0
TARGET_SIZE = 10_000


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated trial sizes (default 1000,10000)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated formats (default all: {','.join(FORMATS)})")
    parser.add_argument("--db", default="", help="SQLite file of a filled trial to export from (one size; filled "
                                                 "there when it does not exist)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the exported files (their folder is printed)")
    parser.add_argument("--saved", action="store_true",
                        help="print the table from the figures saved by earlier runs (under the var directory) "
                             "instead of measuring again")
    parser.add_argument("--jobs", type=int, default=1,
                        help="exports run at once (default 1; more finishes sooner on a busy machine, but then "
                             "read the CPU seconds, not the clock)")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise CliError(f"--sizes must be whole numbers separated by commas, got {text!r}") from None
    if not sizes or any(n < 1 or n > 200_000 for n in sizes):
        raise CliError("--sizes: each size must be between 1 and 200000")
    return sizes


def _formats(text: str) -> list[str]:
    formats = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise CliError(f"--formats: unknown format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def _var_dir() -> Path:
    from annulus.site.settings import VAR_DIR  # noqa: PLC0415 - plain module constant, no Django set-up

    return Path(VAR_DIR)


def _env(db: Path) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = f"sqlite:///{db}"
    return env


def _annulus() -> list[str]:
    return [sys.executable, "-m", "annulus"]


def _wal(db: Path) -> None:
    """Write-ahead logging on the benchmark's file: exports run at once (``--jobs``) each record
    their run at the end while the others read, and in WAL mode readers never hold a writer off."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def _saved_path(size: int, seed: int, fmt: str) -> Path:
    """Where the figures of one measurement are kept (beside the cached trial)."""
    return _var_dir() / "bench" / f"export-{size}-s{seed}-v{FILL_VERSION}.{fmt}.json"


def _filled(size: int, seed: int, db: Path | None) -> tuple[Path, float | None]:
    """The SQLite file of a trial of ``size`` participants, filled now when missing (returns the
    fill's seconds then, else None)."""
    if db is None:
        cache = _var_dir() / "bench"
        cache.mkdir(parents=True, exist_ok=True)
        db = cache / f"export-{size}-s{seed}-v{FILL_VERSION}.sqlite3"
    if db.exists():
        # new migrations since it was filled (the export tables, say)
        done = subprocess.run([sys.executable, "-c", "from annulus.cli import setup_django; setup_django(); "
                               "from django.core.management import call_command; "
                               "call_command('migrate', interactive=False, verbosity=0)"],
                              env=_env(db), capture_output=True, text=True)
        if done.returncode:
            raise CliError(f"cannot migrate {db}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        _wal(db)
        return db, None
    tmp = db.with_name(db.name + ".filling")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    print(f"filling {size} participants into {db} (kept for later runs)", flush=True)
    started = time.perf_counter()
    done = subprocess.run([*_annulus(), "bench", "fill", "-n", str(size), "--seed", str(seed)], env=_env(tmp))
    if done.returncode:
        raise CliError(f"filling {size} participants failed (exit {done.returncode})")
    os.replace(tmp, db)
    return db, time.perf_counter() - started


def run(args) -> int:
    sizes = _sizes(args.sizes)
    formats = _formats(args.formats)
    if not 1 <= args.jobs <= 16:
        raise CliError("--jobs must be between 1 and 16")
    db = Path(args.db).resolve() if args.db else None
    if db is not None and len(sizes) > 1:
        raise CliError("--db names one trial: give one size with --sizes")
    if db is not None and not db.parent.is_dir():
        raise CliError(f"--db: folder {db.parent} does not exist")
    results: dict[tuple[int, str], dict] = {}
    if args.saved:
        for size in sizes:
            for fmt in formats:
                saved = _saved_path(size, args.seed, fmt)
                if not saved.exists():
                    raise CliError(f"no saved figures for {size} participants, format {fmt}: run without --saved")
                results[(size, fmt)] = json.loads(saved.read_text(encoding="utf-8"))
        _report(sizes, formats, results)
        return 0
    out_root = Path(tempfile.mkdtemp(prefix="annulus-bench-export-"))
    print(f"annulus bench export: SQLite, one process per export, as the statistician (blinded); "
          f"formats {', '.join(formats)}", flush=True)
    try:
        for size in sizes:
            path, fill_seconds = _filled(size, args.seed, db)
            if fill_seconds is not None:
                print(f"  filled {size} participants in {fill_seconds:.0f} s", flush=True)
            def one(fmt, size=size, path=path):
                out = out_root / f"{size}-{fmt}"
                try:
                    r = _measure(path, fmt, out)
                except CliError as exc:
                    print(f"  {size:>6} {fmt:<13}{exc}", flush=True)
                    return {"error": str(exc)}
                print(f"  {size:>6} {fmt:<13}{r['seconds']:>8.1f} s (CPU {r['cpu']:.1f} s, reading "
                      f"{r['read_cpu']:.1f} s){r['peak_mib']:>8.0f} MiB{r['subjects']:>8} subjects", flush=True)
                if not args.keep:
                    shutil.rmtree(out, ignore_errors=True)
                if db is None:
                    _saved_path(size, args.seed, fmt).write_text(json.dumps(r), encoding="utf-8")
                return r

            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                for fmt, r in zip(formats, pool.map(one, formats)):
                    results[(size, fmt)] = r
    finally:
        if not args.keep:
            shutil.rmtree(out_root, ignore_errors=True)
        else:
            print(f"exported files kept in {out_root}")
    _report(sizes, formats, results)
    return 1 if any("error" in r for r in results.values()) else 0


def _measure(db: Path, fmt: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", "import sys; from annulus.bench.export import child; "
                                                 "sys.exit(child(sys.argv[1], sys.argv[2]))", fmt, str(out)],
                          env=_env(db), capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise CliError(f"export {fmt} from {db.name} failed (exit {done.returncode}): {' | '.join(tail)}")
    r = json.loads(lines[-1])
    r.update(_written(out))
    return r


def _peak_kib() -> int:
    """This process's peak resident memory in KiB: Linux's ``VmHWM``, which starts afresh with the
    program (``ru_maxrss`` keeps the parent's figure across fork and exec, so a parent that once
    held a large file would show in every export measured after it); ``ru_maxrss`` elsewhere."""
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(fmt: str, out: str) -> int:
    """One export in this process: prints its seconds (wall and CPU, and the CPU spent reading the
    trial), peak memory and subject count as JSON."""
    from annulus.cli import setup_django

    setup_django()
    from django.contrib.auth import get_user_model

    from annulus.exports import source
    from annulus.interchange import writer

    writer(fmt)  # import the writer's module (and its libraries) before the clock starts
    user = get_user_model().objects.get(username="statistician")
    reading = {"wall": 0.0, "cpu": 0.0}
    subjects_of = source.subjects

    def timed(*args, **kwargs):
        """The reader's stream, timing each step of it (what is left is the writer's)."""
        stream = subjects_of(*args, **kwargs)
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            s = next(stream, None)
            reading["wall"] += time.perf_counter() - wall
            reading["cpu"] += time.process_time() - cpu
            if s is None:
                return
            yield s

    source.subjects = timed
    before = _peak_kib()
    started, cpu = time.perf_counter(), time.process_time()
    subjects = _export(user, fmt, Path(out))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = _peak_kib()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "read_wall": reading["wall"], "read_cpu": reading["cpu"],
                      "peak_mib": peak / 1024, "base_mib": before / 1024, "subjects": subjects}))
    return 0


def _export(user, fmt: str, out: Path) -> int:
    """The export service when it is there; else the reader and the writer, as it would run them."""
    try:
        from annulus.exports.services import run_export
    except ImportError:
        run_export = None
    if run_export is not None:
        return run_export(actor=user, fmt=fmt, out_dir=out).subjects
    from datetime import datetime, timezone

    from annulus.exports import source
    from annulus.interchange import writer
    from annulus.interchange.sample import context
    from annulus.trial.selectors import active_protocol, data_dictionary

    now = datetime.now(timezone.utc)
    count, head = source.chain_at(now)
    ctx = context(active_protocol(), data_dictionary(), fmt, as_of=now.isoformat(), created_at=now.isoformat(),
                  blinding=source.blinding_for(user), chain_count=count, chain_hash=head)
    out.mkdir(parents=True, exist_ok=True)
    n = {"subjects": 0}

    def counted():
        for s in source.subjects(user, as_of=now):
            n["subjects"] += 1
            yield s

    writer(fmt)(counted(), ctx, out)
    return n["subjects"]


def _written(out: Path) -> dict:
    """Files, bytes and data rows written: CSV lines less the header; SPSS, Stata and SAS rows
    read back with pyreadstat (one column); Dataset-JSON's declared ``records``."""
    import re

    files = [p for p in out.rglob("*") if p.is_file()]
    rows = 0
    tabular = False
    for p in files:
        suffix = p.suffix.lower()
        if suffix == ".csv" and p.name != "data_dictionary.csv":
            tabular = True
            with p.open("rb") as fh:
                rows += max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1)
        elif suffix in (".sav", ".dta", ".xpt"):
            import pyreadstat

            read = {".sav": pyreadstat.read_sav, ".dta": pyreadstat.read_dta, ".xpt": pyreadstat.read_xport}[suffix]
            try:
                _df, meta = read(str(p), metadataonly=True)
                if meta.number_rows is None:  # SAS transport keeps no row count: read one column
                    df, meta = read(str(p), usecols=[meta.column_names[0]])
                    rows += len(df)
                else:
                    rows += meta.number_rows
                tabular = True
            except Exception:  # noqa: BLE001 - a file pyreadstat cannot read has no row count here
                pass
        elif suffix == ".json" and p.name != "manifest.json":
            with p.open("rb") as fh:
                head = fh.read(1 << 16)
                fh.seek(max(0, p.stat().st_size - (1 << 16)))
                tail = fh.read()
            m = re.search(rb'"records"\s*:\s*(\d+)', head) or re.search(rb'"records"\s*:\s*(\d+)', tail)
            if m:
                rows += int(m.group(1))
                tabular = True
    return {"files": len(files), "mb": sum(p.stat().st_size for p in files) / 1e6, "rows": rows if tabular else None}


def _verdict(r: dict) -> str:
    if r["seconds"] < TARGET_SECONDS:
        return "met"
    if r["cpu"] < TARGET_SECONDS:
        return "missed on the clock, met in CPU (machine busy)"
    return "MISSED"


def _report(sizes: list[int], formats: list[str], results: dict) -> None:
    """The figures table: wall seconds, CPU seconds (all, and the reader's part), peak memory,
    what was written; the targets marked at 10,000 participants and for the memory ratio."""
    import os

    print(f"\n(CPU: this process's user+system seconds; 'read': the part spent in the reader, "
          f"annulus.exports.source; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'size':>7} {'format':<13}{'seconds':>9}{'CPU s':>8}{'read':>7}{'peak MiB':>10}{'files':>7}"
          f"{'rows':>12}{'MB':>9}  target < {TARGET_SECONDS:.0f} s")
    for size in sizes:
        for fmt in formats:
            r = results[(size, fmt)]
            if "error" in r:
                print(f"{size:>7} {fmt:<13}failed: {r['error'][:100]}")
                continue
            rows = "-" if r["rows"] is None else f"{r['rows']:,}"
            mark = _verdict(r) if size >= TARGET_SIZE else ""
            print(f"{size:>7} {fmt:<13}{r['seconds']:>9.1f}{r['cpu']:>8.1f}{r['read_cpu']:>7.1f}{r['peak_mib']:>10.0f}"
                  f"{r['files']:>7}{rows:>12}{r['mb']:>9.1f}  {mark}")
    if len(sizes) < 2:
        return
    small, large = sizes[0], sizes[-1]
    print(f"\npeak memory {large:,} / {small:,} participants (target < {TARGET_RATIO:g}x):")
    for fmt in formats:
        a, b = results[(small, fmt)], results[(large, fmt)]
        if "error" in a or "error" in b:
            print(f"  {fmt:<13} no ratio: an export failed")
            continue
        ratio = b["peak_mib"] / a["peak_mib"]
        memory = "met" if ratio < TARGET_RATIO else "MISSED"
        print(f"  {fmt:<13} {a['peak_mib']:.0f} -> {b['peak_mib']:.0f} MiB = {ratio:.2f}x {memory:<7}"
              f" time x{b['seconds'] / a['seconds']:.1f} (CPU x{b['cpu'] / max(a['cpu'], 1e-9):.1f})")
