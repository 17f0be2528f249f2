"""The Report page (X-8.5): ask for the trial report (built in the background), follow the builds,
download the file."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from annulus import jobs
from annulus.accounts.permissions import has, need
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.forms import add_violation

from . import selectors, services
from .download import file_response
from .forms import LANGUAGE_CHOICES, ReportForm
from .models import TrialReport

# what a running build is doing (``TrialReport.step``); an end point's step is its parameter (VAS)
STEPS = {"": gettext_lazy("waiting to start"), "export": gettext_lazy("exporting the analysis datasets"),
         "consort": gettext_lazy("participant flow and baseline"), "safety": gettext_lazy("safety tables"),
         "conduct": gettext_lazy("conduct tables"), "document": gettext_lazy("writing the document"),
         "done": gettext_lazy("done")}
BLINDS = {"blinded": gettext_lazy("blinded (pooled)"), "labels": gettext_lazy("by group label %(labels)s"),
          "arms": gettext_lazy("by treatment")}


def group_labels() -> str:
    """The trial's group labels as a range, "A–B" for two arms, "A–D" for four."""
    from annulus.randomisation.sequence import default_labels
    from annulus.report.words import label_range
    from annulus.trial.selectors import active_protocol

    return label_range(default_labels(len(active_protocol().arms)))


def step_label(step: str) -> str:
    if step in STEPS:
        return str(STEPS[step])
    return _("end point %(name)s") % {"name": step}


def _rows(user, reports) -> list[dict]:
    labels = dict(TrialReport.STATUSES)
    languages = dict(LANGUAGE_CHOICES)
    groups = group_labels()
    rows = []
    for report in reports:
        error = (report.error or "").strip().splitlines()
        rows.append({"report": report, **jobs.row(report, services.STALE_AFTER, labels),
                     "error": error[0] if error else "", "step": step_label(report.step),
                     "language": languages.get(report.language, report.language),
                     "blind": str(BLINDS[report.blinding]) % {"labels": groups} if report.blinding in BLINDS else None,
                     "downloadable": selectors.may_download(user, report)})
    return rows


def _your_blind(user) -> dict:
    """Which blind an unblinded report would have for ``user``, and whether one exists yet."""
    from annulus.allocation.selectors import trial_state

    widest = services.widest_blinding(user)
    if widest == "arms":
        return {"possible": True, "text": _("An unblinded report for you shows the treatments (after the "
                                            "second-level unblinding).")}
    if widest == "labels":
        return {"possible": True, "text": _("An unblinded report for you shows group labels %(labels)s, not which "
                                            "treatment each group received (first-level unblinding).")
                % {"labels": group_labels()}}
    if trial_state() in ("unblinded_1", "unblinded_2"):
        return {"possible": False, "text": _("Your role reads the blinded report only.")}
    return {"possible": False, "text": _("The unblinded report does not exist yet: it comes with the first-level "
                                         "unblinding, after the database lock. Until then only the blinded report "
                                         "can be built.")}


def reports(request):
    need(request, "report.build")
    blind = _your_blind(request.user)
    form = ReportForm(request.POST or None, unblinded_possible=blind["possible"])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            report = services.start_job(actor=request.user, as_of=data["as_of"], language=data["language"],
                                        unblinded=data["unblinded"] == "unblinded", fmt=data["format"],
                                        origin="page")
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            messages.success(request, _("Report %(number)s asked for: it is being built; the list below shows its "
                                        "progress.") % {"number": report.pk})
            return redirect("reports")
    rows = _rows(request.user, selectors.reports_for(request.user))
    ctx = {"form": form, "rows": rows, "polling": any(r["active"] for r in rows), "blind": blind,
           "group_labels": group_labels(),
           "all_reports": has(request.user, "report.all")}
    return render(request, "reports/reports.html", ctx, status=400 if form.errors else 200)


@require_GET
def download(request, pk: int):
    """The file of a finished report: the capability, and a report the user may download (their
    own; with ``report.all`` also another's that shows no more than their own would)."""
    need(request, "report.build")
    return file_response(request.user, selectors.report_for(request.user, pk))
