"""A large export written by several processes at once, one range of participants each.

Reading and writing a participant costs the same whatever the others hold, and the machine has
more than one core: the participants (in participant-number order) are cut into as many
contiguous ranges as there are workers, each range is read and written by a process of its own
(``python -m annulus.exports.parts``) into a folder of its own, and the parts of each file are
then joined in range order, the header once. The files are byte for byte those that one process
writes (``tests/test_export_parts.py`` compares them).

Only formats whose every file is a table of rows written participant by participant can be
joined so: the ADaM datasets as CSV (``adam`` without the SAS transport files, as the trial report
reads them). Every other format, and a trial too small to gain from it, is written by one process.

Each part builds the export's context from the same request (user, as-of time, creation time,
narrowing) and checks that it carries the same blind as the export's own: a blind that changed
in between (an unblinding while the export runs) fails the export instead of mixing two blinds.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

MIN_PER_WORKER = 1000  # below this many participants per process, starting processes costs more than it gains
PROGRESS_EVERY = 100


def workers_for(fmt: str, transport: bool, total: int) -> int:
    """How many processes write an export of ``total`` participants (1: this process alone): as
    many as the machine has cores, each with at least ``MIN_PER_WORKER`` participants; or exactly
    ``ANNULUS_EXPORT_WORKERS`` when it is set (1: never in parts)."""
    if fmt != "adam" or transport or total < 2:
        return 1
    try:
        fixed = int(os.environ.get("ANNULUS_EXPORT_WORKERS", "") or 0)
    except ValueError:
        fixed = 0
    if fixed > 0:
        return min(fixed, total)
    return max(1, min(os.cpu_count() or 1, total // MIN_PER_WORKER))


def ranges(numbers: list[str], k: int) -> list[tuple[str | None, str | None]]:
    """``k`` contiguous ranges (after, up to] of the ordered participant numbers ``numbers``, as
    even as can be; None is open."""
    k = max(1, min(k, len(numbers)))
    bounds = [numbers[round(len(numbers) * i / k) - 1] for i in range(1, k)]
    return list(zip([None, *bounds], [*bounds, None]))


def write(spec: dict, parts: list[tuple[str | None, str | None]], staging: Path, progress=None, total: int = 0) -> int:
    """Writes the export ``spec`` describes into ``staging`` with one process per range of
    ``parts``; returns how many participants were written. ``progress(done, total)`` as they are."""
    folders = [staging / f".part-{i}" for i in range(len(parts))]
    procs = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for folder, (after, upto) in zip(folders, parts):
            folder.mkdir()
            child = {**spec, "after": after, "upto": upto, "out": str(folder)}
            procs.append(subprocess.Popen([sys.executable, "-m", "annulus.exports.parts", json.dumps(child)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
        counts = _follow(procs, progress, total)
        _join(folders, staging)
        return sum(counts)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def _follow(procs, progress, total: int) -> list[int]:
    """Waits for every part, passing their progress on; a part that fails fails the export with
    its last line of error."""
    done = [0] * len(procs)
    final: list[int | None] = [None] * len(procs)
    streams = {p.stdout.fileno(): i for i, p in enumerate(procs)}
    buffers = {fd: b"" for fd in streams}
    open_fds = set(streams)
    if progress:
        progress(0, total)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 1.0)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                continue
            buffers[fd] += chunk
            *lines, buffers[fd] = buffers[fd].split(b"\n")
            i = streams[fd]
            for line in lines:
                kind, _, value = line.decode().partition(" ")
                if kind == "done":
                    done[i] = int(value)
                elif kind == "count":
                    final[i] = int(value)
        if progress and ready:
            progress(sum(done), max(total, sum(done)))
        for i, p in enumerate(procs):
            if p.poll() not in (None, 0):
                raise RuntimeError(_failure(p))
    for p in procs:
        if p.wait() != 0 or final[procs.index(p)] is None:
            raise RuntimeError(_failure(p))
    return [int(n) for n in final]


def _failure(p) -> str:
    p.wait()
    lines = [line for line in p.stderr.read().decode(errors="replace").splitlines() if line.strip()]
    return f"a part of the export failed: {lines[-1] if lines else f'exit {p.returncode}'}"


def _join(folders: list[Path], staging: Path) -> None:
    """Each file of the parts, joined in range order under ``staging``: the first part whole, the
    others without their header line (which must be the same)."""
    names = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*") if p.is_file())
    for name in names:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            header = None
            for folder in folders:
                with open(folder / name, "rb") as part:
                    first = part.readline()
                    if header is None:
                        header = first
                        out.write(first)
                    elif first != header:
                        raise RuntimeError(f"the parts of {name} do not have the same columns")
                    shutil.copyfileobj(part, out, 1 << 20)


def _child(spec: dict) -> int:
    from annulus.cli import setup_django

    setup_django()
    from datetime import datetime

    from django.contrib.auth import get_user_model

    from annulus.interchange import writer

    from . import context, source

    actor = get_user_model().objects.get(pk=spec["actor"])
    as_of = datetime.fromisoformat(spec["as_of"])
    ctx = context.build_context(actor=actor, fmt=spec["fmt"], as_of=as_of,
                                 created_at=datetime.fromisoformat(spec["created_at"]),
                                 identifiable=spec["identifiable"], excel_bom=spec["excel_bom"],
                                 language=spec["language"], at_most=spec["at_most"], transport=spec["transport"])
    if ctx.blinding != spec["blinding"]:
        raise SystemExit(f"the blind changed while the export was written ({spec['blinding']} -> {ctx.blinding})")
    count = 0

    def counted():
        nonlocal count
        for s in source.subjects(actor, as_of=as_of, identifiable=spec["identifiable"], at_most=spec["at_most"],
                                 after=spec["after"], upto=spec["upto"]):
            count += 1
            if count % PROGRESS_EVERY == 0:
                print(f"done {count}", flush=True)
            yield s

    writer(spec["fmt"])(counted(), ctx, Path(spec["out"]))
    print(f"done {count}", flush=True)
    print(f"count {count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
