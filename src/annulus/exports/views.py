"""The Exports page: ask for an export (built in the background), follow the jobs, download a zip."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.decorators.http import require_GET

from annulus import jobs
from annulus.accounts.permissions import has, need
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.forms import add_violation
from annulus.widgets import DateTimeInput

from . import selectors, services
from .download import zip_response
from .models import FORMAT_CHOICES, ExportJob

LANGUAGE_CHOICES = [("en", _l("English")), ("zh-hans", _l("Simplified Chinese"))]


class ExportForm(forms.Form):
    format = forms.ChoiceField(label=_l("Format"), choices=[("", _l("— choose a format —")), *FORMAT_CHOICES])
    as_of = forms.DateTimeField(label=_l("Data as of (optional)"), required=False, widget=DateTimeInput,
                                input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
                                help_text=_l("Empty: the data as they stand when the export is built."))
    language = forms.ChoiceField(label=_l("Language of the labels"), choices=[("", "—"), *LANGUAGE_CHOICES])
    excel_bom = forms.BooleanField(label=_l("CSV for Excel (UTF-8 with byte-order mark)"), required=False)
    identifiable = forms.BooleanField(
        label=_l("Identifiable export (initials, name and phone; audited)"), required=False,
        help_text=_l("Leave unticked for the usual pseudonymised export (participant numbers only)."))

    def __init__(self, *args, identifiable: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not identifiable:
            del self.fields["identifiable"]


def _rows(user, jobs_) -> list[dict]:
    labels = dict(ExportJob.STATUSES)
    return [{"job": job, **jobs.row(job, services.STALE_AFTER, labels),
             "downloadable": selectors.may_download(user, job)} for job in jobs_]


def exports(request):
    need(request, "export.run")
    may_identify = has(request.user, "export.identifiable")
    form = ExportForm(request.POST or None, identifiable=may_identify,
                      initial={"language": "zh-hans" if (get_language() or "").startswith("zh") else "en"})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = services.start_job(actor=request.user, fmt=data["format"], as_of=data["as_of"],
                                     identifiable=bool(data.get("identifiable")), excel_bom=data["excel_bom"],
                                     language=data["language"], origin="page")
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            messages.success(request, _("Export %(number)s asked for: it is being built; the list below shows its "
                                        "progress.") % {"number": job.pk})
            return redirect("exports")
    rows = _rows(request.user, selectors.jobs_for(request.user))
    ctx = {"form": form, "rows": rows, "polling": any(r["active"] for r in rows),
           "all_jobs": has(request.user, "export.all_jobs")}
    return render(request, "exports/exports.html", ctx, status=400 if form.errors else 200)


@require_GET
def download(request, pk: int):
    """The zip of a finished export: the capability, and a job the user may download (their own;
    the data manager also another's blinded, pseudonymised one). Records nothing."""
    need(request, "export.run")
    return zip_response(request.user, selectors.job_for(request.user, pk))
