"""Trial report API (X-8.5): ask for the report (built in the background), follow it, download its
file."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.dates import PlausibleDateTime

from . import selectors, services
from .download import file_response
from .models import TrialReport

PREFIX = "/reports"
router = Router(tags=["reports"])


class ReportRequestIn(Schema):
    format: str = Field(..., max_length=10, description="pdf | html")
    as_of: PlausibleDateTime | None = Field(None, description="the data as they stood at this time (default: now)")
    language: str = Field("en", max_length=10, description="en | zh-hans: the language of the report")
    unblinded: bool = Field(False, description="false: the blinded report (all participants pooled); true: by group "
                                               "label or treatment, as far as the caller may see (refused before "
                                               "the first-level unblinding)")


class ReportOut(Schema):
    id: int
    user: str
    origin: str = Field(..., description="cli | page | api")
    format: str
    language: str
    unblinded: bool = Field(..., description="whether the unblinded report was asked for")
    status: str = Field(..., description="queued | running | done | failed")
    done: int
    total: int
    step: str = Field(..., description="what the build is doing: export, consort, an end point, safety, conduct, "
                                       "document, done")
    error: str
    as_of: datetime | None = Field(None, description="the data as they stood at this time")
    blinding: str | None = Field(None, description="blinded | labels | arms: what the report shows (once built)")
    sha256: str | None = Field(None, description="of the file, once built")
    size: int | None = Field(None, description="bytes of the file, once built")
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None = None


def report_out(report: TrialReport, user) -> dict:
    done = report.status == TrialReport.DONE
    return {"id": report.pk, "user": report.user.username, "origin": report.origin, "format": report.format,
            "language": report.language, "unblinded": report.unblinded, "status": services.effective_status(report),
            "done": report.done, "total": report.total, "step": report.step, "error": report.error,
            "as_of": report.as_of, "blinding": report.blinding or None, "sha256": report.sha256 if done else None,
            "size": report.size if done else None, "created_at": report.created_at,
            "finished_at": report.finished_at,
            "download_url": f"/api/v1/reports/{report.pk}/download" if selectors.may_download(user, report) else None}


def _report(request, pk: int) -> TrialReport:
    require(request.user, "report.build")
    report = selectors.report_for(request.user, pk)
    if report is None:
        raise Http404
    return report


@router.post("", response={202: ReportOut})
def request_report(request, payload: ReportRequestIn):
    """Ask for the trial report as the caller: checked at once (format, language, as-of time, the
    blind), then built in the background; follow it at ``GET /reports/{id}``."""
    require(request.user, "report.build")
    report = services.start_job(actor=request.user, as_of=payload.as_of, language=payload.language,
                                unblinded=payload.unblinded, fmt=payload.format, origin="api")
    report = selectors.report_for(request.user, report.pk) or report
    return Status(202, report_out(report, request.user))


@router.get("", response=list[ReportOut])
def list_reports(request):
    """The caller's reports, newest first (the statistician's list holds everyone's)."""
    require(request.user, "report.build")
    return [report_out(r, request.user) for r in selectors.reports_for(request.user)]


@router.get("/{pk}", response=ReportOut)
def report_status(request, pk: int):
    report = _report(request, pk)
    return report_out(report, request.user)


@router.get("/{pk}/download", response={200: None}, openapi_extra={
    "responses": {200: {"description": "the report's file (PDF or HTML, as asked for)",
                        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                                    "text/html": {"schema": {"type": "string"}}}}}})
def download_report(request, pk: int):
    """The file of a finished report (404 while it is not finished, or for another user's)."""
    return file_response(request.user, _report(request, pk))
