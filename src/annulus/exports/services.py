"""Making an export (X-7.6): check the request, read the trial as of a time through
``annulus.exports.source`` (blinded and pseudonymised for the user), hand the stream to the
format's writer (``annulus.interchange.writer``), write ``manifest.json`` beside the files (the
export's stamp and every file's size and SHA-256), then record the ``ExportRun`` and ONE audit
event in one transaction.

Exports stay allowed after the database lock (``annulus.trial.lock.ALLOWED_AFTER_LOCK["exports"]``):
they read the locked data and change none; the run row and the audit event record that an export
was made. Bad input raises ``RuleViolation`` naming the field (``format``, ``as_of``, ``out_dir``,
``identifiable``, ``language``); a role that may not export raises ``NotPermitted``.

Background jobs (page and API): ``start_job`` records an ``ExportJob`` and starts a daemon thread
once the transaction commits (inline when ``settings.ANNULUS_EXPORT_JOBS_INLINE`` is true, as in
tests); the thread builds the export into a folder under the var directory, zips it and closes
its database connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from datetime import datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annulus import jobs
from annulus.accounts.permissions import has, require
from annulus.audit import services as audit
from annulus.errors import Problems, RuleViolation

from . import parts
from .context import DRUG_CODE_ITEM, build_context, source  # noqa: F401 - the service's names
from .models import FORMAT_CHOICES, ExportJob, ExportRun

log = logging.getLogger("annulus.exports")

FORMATS = tuple(code for code, _ in FORMAT_CHOICES)
LANGUAGES = ("en", "zh-hans")
MANIFEST = "manifest.json"
DICTIONARY_CSV = "data_dictionary.csv"
# formats whose files are tables read with a data dictionary beside them
WITH_DICTIONARY = ("csv", "sav", "dta", "xpt")
# a job "running" without a heartbeat for this long was left by a process that died
STALE_AFTER = timedelta(minutes=5)
HEARTBEAT_SECONDS = 30


class IdentifiableNotPermitted(RuleViolation):
    """An identifiable export asked for by a role that may not see identities."""

    status = 403


# ---- checking a request ---------------------------------------------------------------------------

def trial_start() -> datetime | None:
    """The earliest time an export may be as of: the first protocol version's effective date (local
    midnight), or the first audit event if earlier. None when no protocol is loaded."""
    from annulus.audit.models import AuditEvent
    from annulus.trial.models import ProtocolVersion

    first = ProtocolVersion.objects.order_by("effective_date").values_list("effective_date", flat=True).first()
    if first is None:
        return None
    start = timezone.make_aware(datetime.combine(first, time.min), timezone.get_default_timezone())
    event = AuditEvent.objects.order_by("id").values_list("timestamp", flat=True).first()
    return min(start, event) if event is not None else start


def parse_as_of(text: str | None) -> datetime | None:
    """An as-of time typed by a person: ``YYYY-MM-DD`` (the end of that day, or now if that is
    today) or an ISO date-time (the site's time zone when none is given). ``RuleViolation`` on
    ``as_of`` when it cannot be read."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            end = timezone.make_aware(datetime.combine(day, time.max), timezone.get_default_timezone())
            return min(end, timezone.now()) if day == timezone.localdate() else end
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RuleViolation("as_of", f"'{text}' is not a date (YYYY-MM-DD) or a date and time "
                                     "(YYYY-MM-DDTHH:MM)") from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


def check(*, actor, fmt: str, as_of: datetime | None = None, identifiable: bool = False,
          language: str = "en", now: datetime | None = None) -> datetime:
    """Every problem of an export request at once (``RuleViolation(s)`` naming the fields;
    ``NotPermitted`` first for a role that may not export). Returns the as-of time to use."""
    require(actor, "export.run")
    now = now or timezone.now()
    problems = Problems()
    if fmt not in FORMATS:
        problems.add("format", f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if language not in LANGUAGES:
        problems.add("language", f"must be one of {', '.join(LANGUAGES)}")
    if identifiable and not has(actor, "export.identifiable"):
        problems.violations.append(IdentifiableNotPermitted(
            "identifiable", "your role may not make an identifiable export (names, initials and phone numbers are "
                            "for the investigators and coordinators only)"))
    if as_of is not None:
        if not isinstance(as_of, datetime):
            problems.add("as_of", "must be a date and time")
        else:
            from annulus import dates

            if timezone.is_naive(as_of):
                as_of = timezone.make_aware(as_of, timezone.get_default_timezone())
            start = trial_start()
            if dates.problem(as_of):
                problems.add("as_of", dates.OUT_OF_RANGE)
            elif as_of > now:
                problems.add("as_of", f"{timezone.localtime(as_of):%Y-%m-%d %H:%M} is in the future: the data can only "
                                      "be exported as they stand now or stood before")
            elif start is not None and as_of < start:
                problems.add("as_of", f"{timezone.localtime(as_of):%Y-%m-%d %H:%M} is before the trial (its first "
                                      f"protocol took effect on {timezone.localtime(start):%Y-%m-%d})")
    if any(v.status == 403 for v in problems.violations) and len(problems.violations) > 1:
        problems.violations.sort(key=lambda v: v.status != 403)
    problems.raise_any()
    return as_of if as_of is not None else now


def _check_out_dir(out_dir, force: bool) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RuleViolation("out_dir", f"{out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise RuleViolation("out_dir", f"{out} is not empty: choose an empty or new folder, or overwrite its "
                                       "export files with --force")
    if not out.exists():
        if not out.parent.exists():
            raise RuleViolation("out_dir", f"folder {out.parent} does not exist")
        out.mkdir()
    return out


# ---- the export ---------------------------------------------------------------------------------

def _ticking(subjects, total: int, progress):
    done = 0
    if progress:
        progress(0, total)
    for s in subjects:
        yield s
        done += 1
        if progress:
            progress(done, max(total, done))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_entry(root: Path, path: Path) -> dict:
    return {"name": path.relative_to(root).as_posix(), "size": path.stat().st_size, "sha256": sha256_of(path)}


def run_export(*, actor, fmt: str, out_dir, as_of: datetime | None = None, force: bool = False,
               identifiable: bool = False, excel_bom: bool = False, language: str = "en", progress=None,
               origin: str = "cli", at_most: str = "arms", transport: bool = True) -> ExportRun:
    """Export the trial as ``actor`` sees it, as of ``as_of`` (now when None), in format ``fmt``
    into ``out_dir`` (new or empty; with ``force`` a folder's files of the same names are
    overwritten and nothing else is touched). ``progress(done, total)`` is called as participants
    are written. ``at_most`` ("blinded" | "labels" | "arms") narrows what the export may show
    (the trial report's blinded version); it never widens it. ``transport=False`` leaves out the SAS
    transport files of the adam format (the trial report reads its CSVs only). Returns the recorded
    run."""
    from annulus.interchange import writer

    now = timezone.now()
    as_of = check(actor=actor, fmt=fmt, as_of=as_of, identifiable=identifiable, language=language, now=now)
    out = _check_out_dir(out_dir, force)
    src = source()
    ctx = build_context(actor=actor, fmt=fmt, as_of=as_of, created_at=now, identifiable=identifiable,
                        excel_bom=excel_bom, language=language, at_most=at_most, transport=transport)
    write = writer(fmt)
    total = src.count(as_of, actor)
    counter = {"n": 0}

    def counted():
        for s in _ticking(src.subjects(actor, as_of=as_of, identifiable=identifiable, at_most=at_most), total, progress):
            counter["n"] += 1
            yield s

    # the writer gets an empty folder of its own; its files then replace those of the same name
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        workers = parts.workers_for(fmt, transport, total)
        if workers > 1:  # a large export: one process per range of participants (annulus.exports.parts)
            spec = {"actor": actor.pk, "fmt": fmt, "as_of": as_of.isoformat(), "created_at": now.isoformat(),
                    "identifiable": identifiable, "excel_bom": excel_bom, "language": language, "at_most": at_most,
                    "transport": transport, "blinding": ctx.blinding}
            counter["n"] = parts.write(spec, parts.ranges(src.numbers(as_of, actor), workers), staging, progress, total)
        else:
            write(counted(), ctx, staging)
        if fmt in WITH_DICTIONARY:
            from annulus.dictionary.export import to_csv

            text = to_csv(ctx.dictionary)
            (staging / DICTIONARY_CSV).write_bytes((("\ufeff" if excel_bom else "") + text).encode("utf-8"))
        written = sorted(p for p in staging.rglob("*") if p.is_file())
        files = [_file_entry(staging, p) for p in written]
        manifest = {"stamp": ctx.stamp, "format": fmt, "study": ctx.study_id, "registry_number": ctx.registry_number,
                    "scope": {"participants": "every participant who gave informed consent", "count": counter["n"],
                              "blinding": ctx.blinding, "identifiable": identifiable, "role": ctx.role},
                    "language": language, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files.append(_file_entry(staging, staging / MANIFEST))
        for p in written + [staging / MANIFEST]:
            target = out / p.relative_to(staging)
            if target.is_dir():
                raise RuleViolation("out_dir", f"{target} is a folder where the export writes a file")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    drug_codes = src.may_see_drug_codes(actor, at_most)
    with transaction.atomic():
        run = ExportRun.objects.create(
            user=actor, role=ctx.role, format=fmt, origin=origin, as_of=as_of, created_at=now, blinding=ctx.blinding,
            identifiable=identifiable, excel_bom=excel_bom, language=language, subjects=counter["n"],
            chain_count=ctx.chain_count, chain_hash=ctx.chain_hash, out_dir=str(out.resolve()), files=files,
            protocol_version=ctx.protocol_version, drug_codes=drug_codes)
        audit.record(actor=actor, action="export", obj_type="export_run", obj_id=run.pk,
                     changes={"format": [None, fmt], "scope": [None, f"every participant who gave informed consent "
                                                                     f"({counter['n']})"],
                              "subjects": [None, counter["n"]], "blinding": [None, ctx.blinding],
                              "blinded": [None, ctx.blinding == "blinded"], "identifiable": [None, identifiable],
                              "drug_codes": [None, drug_codes], "as_of": [None, ctx.as_of],
                              "audit_chain_count": [None, ctx.chain_count], "audit_chain_hash": [None, ctx.chain_hash],
                              "origin": [None, origin],
                              "files": [None, [f"{f['name']} {f['size']} sha256:{f['sha256']}" for f in files]]},
                     reason="identifiable data export" if identifiable else "data export",
                     protocol_version=ctx.protocol_version)
    return run


# ---- background jobs ----------------------------------------------------------------------------

def exports_dir() -> Path:
    path = Path(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var")) / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_job(*, actor, fmt: str, as_of: datetime | None = None, identifiable: bool = False,
              excel_bom: bool = False, language: str = "en", origin: str = "page") -> ExportJob:
    """Check the request and queue it; the export is built in a background thread once the
    transaction commits (at once, in this thread, when ``ANNULUS_EXPORT_JOBS_INLINE`` is set)."""
    check(actor=actor, fmt=fmt, as_of=as_of, identifiable=identifiable, language=language)
    if as_of is not None and timezone.is_naive(as_of):
        as_of = timezone.make_aware(as_of, timezone.get_default_timezone())
    return jobs.queue(ExportJob, run_job, name="export-job", user=actor, format=fmt, origin=origin, as_of=as_of,
                      identifiable=identifiable, excel_bom=excel_bom, language=language)


def zip_name(job: ExportJob) -> str:
    study = "annulus"
    try:
        from annulus.trial.selectors import active_protocol

        study = active_protocol().trial.id
    except Exception:  # noqa: BLE001
        pass
    when = timezone.localtime(job.run.as_of if job.run_id else job.created_at)
    return f"{study}-{job.format}-{when:%Y%m%dT%H%M}-{job.pk}.zip"


def run_job(job_id: int) -> None:
    """Build a queued job's export and zip it (in the job's thread). A failure is kept on the job."""
    jobs.execute(ExportJob, job_id, _build_zip, heartbeat_seconds=HEARTBEAT_SECONDS, log=log)


def _build_zip(job: ExportJob, progress) -> None:
    folder = exports_dir() / f"job-{job.pk}"
    try:
        shutil.rmtree(folder, ignore_errors=True)
        run = run_export(actor=job.user, fmt=job.format, out_dir=folder, as_of=job.as_of,
                         identifiable=job.identifiable, excel_bom=job.excel_bom, language=job.language,
                         progress=progress, origin=job.origin)
        job.run = run
        target = exports_dir() / zip_name(job)
        partial = target.with_suffix(".zip.part")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(folder).as_posix())
        os.replace(partial, target)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.DONE, run=run, zip_path=str(target), zip_size=target.stat().st_size,
            finished_at=timezone.now(), heartbeat_at=timezone.now(), done=run.subjects, total=run.subjects)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def effective_status(job: ExportJob, now: datetime | None = None) -> str:
    """The job's status as shown: a job queued or running whose heartbeat stopped for
    ``STALE_AFTER`` was left by a process that died, and is shown as failed."""
    return jobs.effective_status(job, STALE_AFTER, now)
