"""Building the trial report (X-8.5): check the request, export the analysis datasets as the reader
may see them (``annulus.exports.services.run_export``, format "adam", into a scratch folder), build
the document from that folder alone (``annulus.report.document``), write the file, then record it
on the ``TrialReport`` with ONE audit event in one transaction.

The blind is the export's (``annulus.allocation.selectors.export_blinding``): a blinded report is
made from an export narrowed to "blinded" (``at_most``) whoever asks; an unblinded report from the
widest export the reader may have, which is pooled for everyone before the first-level unblinding:
asking for it then is refused (``unblinded``), never quietly answered with group columns.

Reports stay allowed after the database lock, like exports: they read the data and change none.
Bad input raises ``RuleViolation`` naming the field (``as_of``, ``language``, ``format``,
``unblinded``, ``out``); a role that may not build reports raises ``NotPermitted``.

Background builds (page and API): ``start_job`` records a queued ``TrialReport`` and starts a
daemon thread once the transaction commits (inline when ``settings.ANNULUS_EXPORT_JOBS_INLINE`` is
true, as in tests); ``progress`` moves ``done``/``total``/``step`` while it runs, ``heartbeat_at``
shows it alive.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from annulus import jobs
from annulus.accounts.permissions import require
from annulus.audit import services as audit
from annulus.errors import Problems, RuleViolation
from annulus.exports import services as exports

from .models import TrialReport

log = logging.getLogger(__name__)

FORMATS = ("html", "pdf")
LANGUAGES = ("en", "zh-hans")
HEARTBEAT_SECONDS = 5
STALE_AFTER = timedelta(minutes=2)
EXPORT_SHARE = 0.15  # of the progress bar: the export's part; the analyses take the rest
DOCUMENT_SHARE = {"html": 0.1, "pdf": 0.4}  # and writing the document its last part (the PDF takes a while)


def code_version() -> str:
    from annulus import __version__

    return __version__


def widest_blinding(actor) -> str:
    """What an unblinded report for ``actor`` would show: blinded | labels | arms."""
    from annulus.exports import source

    return source.blinding_for(actor)


def check(*, actor, as_of: datetime | None = None, language: str = "en", unblinded: bool = False,
          fmt: str = "pdf", now: datetime | None = None) -> datetime | None:
    """Every problem of a report request at once (``NotPermitted`` first for a role that may not
    build reports). Returns the as-of time to use (now when none is given)."""
    require(actor, "report.build")
    require(actor, "export.run")
    problems = Problems()
    if fmt not in FORMATS:
        problems.add("format", f"must be one of {', '.join(FORMATS)}")
    if language not in LANGUAGES:
        problems.add("language", f"must be one of {', '.join(LANGUAGES)}")
    if unblinded and widest_blinding(actor) == "blinded":
        from annulus.allocation.selectors import trial_state

        if trial_state() in ("unblinded_1", "unblinded_2"):
            problems.add("unblinded", gettext("your role may not see groups or treatments: only the blinded report"))
        else:
            problems.add("unblinded", gettext("there is no unblinded report before the first-level unblinding: "
                                              "only the blinded (pooled) report"))
    with problems.check():
        as_of = exports.check(actor=actor, fmt="adam", as_of=as_of, language="en", now=now)
    problems.raise_any()
    return as_of


def reports_dir() -> Path:
    path = Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var")) / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_name(report: TrialReport, study: str) -> str:
    when = timezone.localtime(report.as_of or report.created_at)
    kind = "blinded" if report.blinding == "blinded" else report.blinding or "report"
    lang = "zh" if report.language.startswith("zh") else "en"
    return f"{study}-report-{kind}-{lang}-{when:%Y%m%dT%H%M}-{report.pk}.{report.format}"


def build(*, actor, as_of: datetime | None = None, language: str = "en", unblinded: bool = False, fmt: str = "pdf",
          out: Path | None = None, progress=None, origin: str = "cli", report: TrialReport | None = None,
          results_sink=None) -> TrialReport:
    """Build the report now (in this thread) and return its ``TrialReport``; the file is written to
    ``out`` (default: under the var directory). ``progress(done, total, step)`` is called as it goes."""
    from annulus.report import document
    from annulus.trial.selectors import active_protocol

    as_of = check(actor=actor, as_of=as_of, language=language, unblinded=unblinded, fmt=fmt)
    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise RuleViolation("out", f"{out} is a folder: name the report file (…/report.{fmt})")
        if not out.parent.is_dir():
            raise RuleViolation("out", f"{out.parent} does not exist")
    if report is None:
        report = TrialReport.objects.create(user=actor, origin=origin, format=fmt, language=language, as_of=as_of,
                                            unblinded=unblinded, status=TrialReport.RUNNING,
                                            started_at=timezone.now(), heartbeat_at=timezone.now())
    progress = progress or (lambda done, total, step: None)
    scratch = Path(tempfile.mkdtemp(prefix=f"report-{report.pk}-", dir=reports_dir()))
    try:
        def exported(done: int, total: int) -> None:
            progress(round(EXPORT_SHARE * 100 * done / max(total, 1)), 100, "export")

        run = exports.run_export(actor=actor, fmt="adam", out_dir=scratch / "adam", as_of=as_of, language=language,
                                 progress=exported, origin=origin if origin in ("cli", "page", "api") else "cli",
                                 at_most="arms" if unblinded else "blinded", transport=False)

        def analysed(done: int, total: int, step: str) -> None:
            # the analyses end with "done"; the document is then written (the PDF takes a while)
            share, writing = EXPORT_SHARE * 100, 100 - DOCUMENT_SHARE[fmt] * 100
            progress(round(share + (writing - share) * done / max(total, 1)), 100,
                     "document" if step == "done" else step)

        data = document.build(scratch / "adam", active_protocol(), language=language, fmt=fmt, progress=analysed,
                              code_version=code_version(), results_sink=results_sink)
        target = out or reports_dir() / file_name(_with(report, run), active_protocol().trial.id)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, target)
        digest = hashlib.sha256(data).hexdigest()
        with transaction.atomic():
            TrialReport.objects.filter(pk=report.pk).update(
                status=TrialReport.DONE, export=run, blinding=run.blinding, as_of=run.as_of, path=str(target),
                size=len(data), sha256=digest, done=100, total=100, step="done", finished_at=timezone.now(),
                heartbeat_at=timezone.now())
            audit.record(actor=actor, action="report", obj_type="trial_report", obj_id=report.pk, changes={
                "format": [None, fmt], "language": [None, language], "as_of": [None, run.as_of.isoformat()],
                "unblinded": [None, unblinded], "blinding": [None, run.blinding], "export": [None, run.pk],
                "origin": [None, origin], "sha256": [None, digest]})
        progress(100, 100, "done")
    except Exception as exc:
        if report.pk:  # kept on the report, as a background build keeps it (the command line raises it too)
            TrialReport.objects.filter(pk=report.pk, status__in=[TrialReport.RUNNING, TrialReport.QUEUED]).update(
                status=TrialReport.FAILED, finished_at=timezone.now(), error=jobs.failure(exc))
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.refresh_from_db()
    return report


def _with(report: TrialReport, run) -> TrialReport:
    report.blinding = run.blinding
    report.as_of = run.as_of
    return report


# --- background builds ------------------------------------------------------------------------------

def start_job(*, actor, as_of: datetime | None = None, language: str = "en", unblinded: bool = False,
              fmt: str = "pdf", origin: str = "page") -> TrialReport:
    """Check the request and queue it; the report is built in a background thread once the
    transaction commits (at once, in this thread, when ``ANNULUS_EXPORT_JOBS_INLINE`` is set)."""
    as_of = check(actor=actor, as_of=as_of, language=language, unblinded=unblinded, fmt=fmt)
    return jobs.queue(TrialReport, run_job, name="report", user=actor, origin=origin, format=fmt, language=language,
                      as_of=as_of, unblinded=unblinded)


def run_job(report_id: int) -> None:
    """Build a queued report (in its thread). A failure is kept on the report, in one line."""
    def work(report: TrialReport, progress) -> None:
        build(actor=report.user, as_of=report.as_of, language=report.language, unblinded=report.unblinded,
              fmt=report.format, progress=lambda done, total, step: progress(done, total, step=step[:40]),
              origin=report.origin, report=report)

    jobs.execute(TrialReport, report_id, work, heartbeat_seconds=HEARTBEAT_SECONDS, log=log)


def effective_status(report: TrialReport, now: datetime | None = None) -> str:
    """The status as shown: queued or running with a heartbeat stopped for ``STALE_AFTER`` is a
    build left by a process that died, shown as failed."""
    return jobs.effective_status(report, STALE_AFTER, now)
