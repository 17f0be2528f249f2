"""Reading trial reports: whose a user may see and download."""

from __future__ import annotations

from annulus.accounts.permissions import has

from .models import TrialReport

LEVELS = ("blinded", "labels", "arms")


def reports_for(user, limit: int = 50) -> list[TrialReport]:
    """The user's own reports, newest first (``report.all``: everyone's)."""
    if not has(user, "report.build"):
        return []
    qs = TrialReport.objects.select_related("user").order_by("-id")
    if not has(user, "report.all"):
        qs = qs.filter(user=user)
    return list(qs[:limit])


def report_for(user, pk: int) -> TrialReport | None:
    """One report the user may see (None: no such report, or another user's)."""
    if not has(user, "report.build"):
        return None
    qs = TrialReport.objects.select_related("user").filter(pk=pk)
    if not has(user, "report.all"):
        qs = qs.filter(user=user)
    return qs.first()


def may_download(user, report: TrialReport | None) -> bool:
    """A finished report is downloaded by the user who asked for it; a ``report.all`` reader also
    downloads another user's, when it shows no more than an unblinded report of their own would
    (a blinded report always; one by group label only for a reader who may see the labels)."""
    from . import services

    if report is None or report.status != TrialReport.DONE or not report.path or not has(user, "report.build"):
        return False
    if report.user_id == user.pk:
        return True
    if not has(user, "report.all") or report.blinding not in LEVELS:
        return False
    return LEVELS.index(report.blinding) <= LEVELS.index(services.widest_blinding(user))
