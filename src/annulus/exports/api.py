"""Exports API: ask for an export (built in the background), follow its status, download its zip."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.dates import PlausibleDateTime

from . import selectors, services
from .download import zip_response
from .models import ExportJob

PREFIX = "/exports"
router = Router(tags=["exports"])


class ExportRequestIn(Schema):
    format: str = Field(..., max_length=20, description="csv | sav | dta | xpt | odm | sdtm | dataset-json | adam")
    as_of: PlausibleDateTime | None = Field(None, description="the data as they stood at this time (default: when the job runs)")
    identifiable: bool = Field(False, description="with initials, name and phone (investigators and coordinators)")
    excel: bool = Field(False, description="CSV files with a UTF-8 byte-order mark for Excel")
    language: str = Field("en", max_length=10, description="en | zh-hans: the language of labels")


class ExportFileOut(Schema):
    name: str
    size: int
    sha256: str


class ExportJobOut(Schema):
    id: int
    format: str
    status: str = Field(..., description="queued | running | done | failed")
    done: int
    total: int
    error: str
    user: str
    identifiable: bool
    excel: bool
    language: str
    requested_as_of: datetime | None
    created_at: datetime
    finished_at: datetime | None
    as_of: PlausibleDateTime | None = Field(None, description="the as-of time of the export made")
    blinding: str | None = Field(None, description="blinded | labels | arms (of the export made)")
    subjects: int | None = None
    audit_chain_count: int | None = None
    audit_chain_hash: str | None = None
    files: list[ExportFileOut] = []
    download_url: str | None = None


def job_out(job: ExportJob, user) -> dict:
    run = job.run
    out = {"id": job.pk, "format": job.format, "status": services.effective_status(job), "done": job.done,
           "total": job.total, "error": job.error, "user": job.user.username, "identifiable": job.identifiable,
           "excel": job.excel_bom, "language": job.language, "requested_as_of": job.as_of,
           "created_at": job.created_at, "finished_at": job.finished_at, "files": [], "download_url": None}
    if run is not None:
        out.update({"as_of": run.as_of, "blinding": run.blinding, "subjects": run.subjects,
                    "audit_chain_count": run.chain_count, "audit_chain_hash": run.chain_hash,
                    "files": [{"name": f["name"], "size": f["size"], "sha256": f["sha256"]} for f in run.files]})
    if selectors.may_download(user, job):
        out["download_url"] = f"/api/v1/exports/{job.pk}/download"
    return out


def _job(request, pk: int) -> ExportJob:
    require(request.user, "export.run")
    job = selectors.job_for(request.user, pk)
    if job is None:
        raise Http404
    return job


@router.post("", response={202: ExportJobOut})
def request_export(request, payload: ExportRequestIn):
    """Ask for an export as the caller: checked at once (format, as-of time, identifiable), then
    built in the background; follow it at ``GET /exports/{id}``."""
    require(request.user, "export.run")
    job = services.start_job(actor=request.user, fmt=payload.format, as_of=payload.as_of,
                             identifiable=payload.identifiable, excel_bom=payload.excel, language=payload.language,
                             origin="api")
    job = selectors.job_for(request.user, job.pk) or job
    return Status(202, job_out(job, request.user))


@router.get("", response=list[ExportJobOut])
def list_exports(request):
    """The caller's export jobs, newest first (the data manager's list holds everyone's)."""
    require(request.user, "export.run")
    return [job_out(j, request.user) for j in selectors.jobs_for(request.user)]


@router.get("/{pk}", response=ExportJobOut)
def export_status(request, pk: int):
    job = _job(request, pk)
    return job_out(job, request.user)


@router.get("/{pk}/download", response={200: None}, openapi_extra={
    "responses": {200: {"description": "the export's files as a zip",
                          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}}})
def download_export(request, pk: int):
    """The zip of a finished export (404 while it is not finished, or for another user's)."""
    return zip_response(request.user, _job(request, pk))
