"""Background jobs: an export asked for from the page or the API (``ExportJob``) and a trial report
(``TrialReport``) are built the same way, by these few functions.

A job is a row with ``status`` (queued | running | done | failed), ``done``/``total``,
``error``, ``started_at``/``finished_at`` and ``heartbeat_at``. ``queue`` creates it and starts a
daemon thread once the transaction commits (or runs it at once, in this thread, when
``settings.ANNULUS_EXPORT_JOBS_INLINE`` is true, as in tests); ``execute`` claims a queued job
(so it runs once), keeps its heartbeat moving while the work runs, hands the work a throttled
``progress`` and keeps any failure on the row in one line. ``effective_status`` shows a job
whose heartbeat stopped (its process died) as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annulus.errors import NotPermitted, RuleViolation

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
PROGRESS_EVERY = 0.5  # seconds between two progress writes (the first and the last are always written)


def inline() -> bool:
    return bool(getattr(settings, "ANNULUS_EXPORT_JOBS_INLINE", False))


def queue(model, runner: Callable[[int], None], *, name: str, **fields):
    """Create a queued ``model`` row with ``fields`` and run ``runner(pk)`` in a daemon thread once
    the transaction commits (at once, in this thread, when jobs run inline). Returns the row."""
    with transaction.atomic():
        job = model.objects.create(**fields)
        if not inline():
            transaction.on_commit(lambda: threading.Thread(target=_in_thread, args=(runner, job.pk),
                                                           name=f"{name}-{job.pk}", daemon=True).start())
    if inline():
        runner(job.pk)
        job.refresh_from_db()
    return job


def _in_thread(runner: Callable[[int], None], pk: int) -> None:
    try:
        runner(pk)
    finally:
        connection.close()


def failure(exc: BaseException) -> str:
    """What went wrong, as a job keeps it: one line for a refused request, the exception otherwise."""
    if isinstance(exc, RuleViolation):
        return f"{exc.field}: {exc.message}"
    if isinstance(exc, NotPermitted):
        return "not permitted for the role of the user who asked for it"
    return f"{type(exc).__name__}: {exc}"[:2000]


def execute(model, pk: int, work: Callable, *, heartbeat_seconds: float, log: logging.Logger,
            related: tuple[str, ...] = ("user",)) -> None:
    """Claim the queued job ``pk`` of ``model`` and run ``work(job, progress)``; ``progress(done,
    total, **fields)`` writes the job's progress (and any other field, such as its step) at most
    every ``PROGRESS_EVERY`` seconds. A failure is kept on the job; a job already claimed is left
    alone."""
    claimed = model.objects.filter(pk=pk, status=QUEUED).update(status=RUNNING, started_at=timezone.now(),
                                                               heartbeat_at=timezone.now())
    if not claimed:
        return
    job = model.objects.select_related(*related).get(pk=pk)
    stop = threading.Event()
    if not inline():
        threading.Thread(target=_beat, args=(model, pk, stop, heartbeat_seconds, log), daemon=True).start()
    last = [0.0]

    def progress(done: int, total: int, **fields) -> None:
        now = time.monotonic()
        if done in (0, total) or now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            model.objects.filter(pk=pk).update(done=done, total=total, heartbeat_at=timezone.now(), **fields)

    try:
        work(job, progress)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong is shown on the job
        if not isinstance(exc, (RuleViolation, NotPermitted)):
            log.exception("%s %s failed", model._meta.verbose_name, pk)
        model.objects.filter(pk=pk).update(status=FAILED, error=failure(exc), finished_at=timezone.now())
    finally:
        stop.set()


def _beat(model, pk: int, stop: threading.Event, seconds: float, log: logging.Logger) -> None:
    try:
        while not stop.wait(seconds):
            model.objects.filter(pk=pk, status=RUNNING).update(heartbeat_at=timezone.now())
    except Exception:  # noqa: BLE001 - a missed heartbeat only makes the job look older
        log.exception("%s %s: heartbeat", model._meta.verbose_name, pk)
    finally:
        connection.close()


def effective_status(job, stale_after: timedelta, now: datetime | None = None) -> str:
    """The status as shown: a job queued or running whose heartbeat stopped for ``stale_after`` was
    left by a process that died, and is shown as failed."""
    if job.status in (QUEUED, RUNNING):
        now = now or timezone.now()
        last = job.heartbeat_at or job.created_at
        if last is not None and now - last > stale_after:
            return FAILED
    return job.status


STATUS_CLASS = {QUEUED: "open", RUNNING: "warn", DONE: "ok", FAILED: "bad"}


def row(job, stale_after: timedelta, labels: dict) -> dict:
    """What a list of jobs shows of one: its status as shown, its label and colour, its percentage,
    whether it is still going and whether it was left by a process that died."""
    status = effective_status(job, stale_after)
    percent = int(100 * job.done / job.total) if job.total else (100 if status == DONE else 0)
    return {"status": status, "status_label": labels[status], "css": STATUS_CLASS[status], "percent": percent,
            "active": status in (QUEUED, RUNNING), "stale": status == FAILED and job.status != FAILED}
