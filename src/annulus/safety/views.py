"""Thin views: parse the form, call the service, show the result or the error it names."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annulus.accounts.permissions import has, need
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.forms import add_violation
from annulus.participants.models import Withdrawal
from annulus.participants.selectors import get_participant, paginate
from annulus.trial.selectors import active_protocol

from . import causality, reports, selectors, services
from .forms import (AckForm, AdverseEventForm, GenerateForm, RecommendationForm, SafetyWithdrawForm, SentForm,
                    TaskDismissForm, TaskLinkForm)
from .models import SERIOUS_CRITERIA, DsmbReport


def _event(request, pk):
    need(request, "safety.view")
    ae = selectors.get_event(pk, user=request.user)
    if ae is None:
        raise Http404
    return ae


def _local_input(dt):
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M") if dt else None


# ---- listings ----------------------------------------------------------------------------------

def csv_columns(protocol) -> list[str]:
    """The listing's CSV columns: the causalities are the protocol's (``causality_<id>``, then
    ``causality_product``)."""
    return (["event", "case_number", "screening_number", "term", "meddra_pt_code", "meddra_version", "onset",
             "end", "serious", "criteria", "grade"] + causality.fields(protocol)
            + ["expectedness", "action_taken", "outcome", "first_knowledge", "revision"])


def _cell(value):
    # a leading = + - @ would make a spreadsheet evaluate free text as a formula
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else value


def _csv_row(ae, protocol):
    fmt = lambda dt: timezone.localtime(dt).strftime("%Y-%m-%d %H:%M") if dt else ""  # noqa: E731
    held = causality.flat(ae, protocol)
    return [_cell(v) for v in [ae.label, ae.participant.case_number or "", ae.participant.screening_number, ae.term, ae.meddra_pt_code,
            ae.meddra_version, fmt(ae.onset_at), fmt(ae.end_at), "yes" if ae.serious else "no",
            ";".join(ae.serious_criteria), ae.grade, *(held.get(f, "") for f in causality.fields(protocol)),
            ae.expectedness, ae.action_taken, ae.outcome, fmt(ae.first_knowledge_at), ae.revision]]


def listing(request):
    need(request, "safety.view")
    kind = request.GET.get("listing", "all")
    if kind not in selectors.LISTINGS:
        kind = "all"
    q = request.GET.get("q", "")
    qs = selectors.events(listing=kind, q=q, user=request.user)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="adverse-events-{kind}-{timezone.localdate().isoformat()}.csv"'
        response.write("\ufeff")  # lets spreadsheet programs read the Chinese text as UTF-8
        w = csv.writer(response)
        protocol = active_protocol()
        w.writerow(csv_columns(protocol))
        for ae in qs.iterator():
            w.writerow(_csv_row(ae, protocol))
        return response
    page = paginate(qs, request.GET.get("page"), per_page=50)
    clocks = {}
    if kind != "all":
        for row in selectors.clock_rows(selectors.sae_reports(user=request.user).filter(adverse_event__in=[ae.pk for ae in page.object_list])):
            clocks.setdefault(row["r"].adverse_event_id, []).append(row)
    return render(request, "safety/list.html", {"page": page, "listing": kind, "listings": selectors.LISTINGS,
                                                "q": q, "clocks": clocks, "title": selectors.LISTINGS[kind]})


# ---- adverse events ---------------------------------------------------------------------------

def ae_new(request, pk):
    need(request, "safety.edit")
    need(request, "participant.view")
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    # an open adverse-event task of this participant (?task=): the event recorded here closes it
    task = selectors.open_task(p.pk, request.GET.get("task"))
    if task is None and request.GET.get("term"):
        # the eCRF's "record an adverse event" link of a clinically significant value names its term
        task = selectors.open_tasks(p.pk).filter(term=request.GET["term"][:200]).first()
    term = request.GET.get("term", "")[:200] or (task.term if task else "")
    # no clinical answer is pre-selected: grade, causality, expectedness, action and outcome start empty
    initial = {"term": term, "onset_at": _local_input(timezone.now())}
    form = AdverseEventForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            source = request.GET.get("source", "")[:60] or (f"task:{task.source}"[:60] if task else "")
            ae = services.record_adverse_event(actor=request.user, participant_id=p.pk, source=source,
                                               task_id=task.pk if task else None, **form.event_fields())
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Adverse event %(n)s recorded.") % {"n": ae.label})
            if ae.serious:
                messages.warning(request, _("Serious: the reporting clocks are running; see the reports below."))
            return redirect("safety_ae", pk=ae.pk)
    return render(request, "safety/ae_form.html", {"form": form, "p": p, "title": _("Record adverse event"),
                                                   "task": task})


def ae_task(request, pk):
    """Close an adverse-event task: link an adverse event already recorded, or dismiss it with a
    reason. GET shows the task and both forms."""
    need(request, "safety.edit")
    task = selectors.get_task(pk, user=request.user)
    if task is None:
        raise Http404
    link_form = TaskLinkForm(request.POST if request.POST.get("action") == "link" else None,
                             events=task.participant.adverse_events.order_by("number"))
    dismiss_form = TaskDismissForm(request.POST if request.POST.get("action") == "dismiss" else None)
    if request.method == "POST":
        form = link_form if request.POST.get("action") == "link" else dismiss_form
        if form.is_valid():
            try:
                if form is link_form:
                    services.link_ae_task(actor=request.user, task_id=task.pk,
                                          adverse_event_id=form.cleaned_data["adverse_event_id"])
                else:
                    services.dismiss_ae_task(actor=request.user, task_id=task.pk, reason=form.cleaned_data["reason"])
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                messages.success(request, _("Adverse-event task closed."))
                return redirect("participant", pk=task.participant_id)
    return render(request, "safety/ae_task.html", {"task": task, "p": task.participant, "link_form": link_form,
                                                   "dismiss_form": dismiss_form})


def ae_detail(request, pk):
    ae = _event(request, pk)
    revisions = list(ae.revisions.select_related("saved_by").order_by("-revision"))
    withdrawal = Withdrawal.objects.filter(participant=ae.participant, adverse_event_id=ae.pk).first()
    other_withdrawal = Withdrawal.objects.filter(participant=ae.participant).first()
    return render(request, "safety/ae_detail.html", {
        "ae": ae, "p": ae.participant, "revisions": revisions, "susar": selectors.is_susar(ae),
        "causality": selectors.causality_rows(ae),
        "reports": selectors.clock_rows(ae.sae_reports.select_related("sent_by")),
        "withdrawal": withdrawal, "already_withdrawn": other_withdrawal is not None,
        "can_edit": has(request.user, "safety.edit"),
        "can_withdraw": has(request.user, "participant.withdraw") and other_withdrawal is None,
    })


def ae_edit(request, pk):
    need(request, "safety.edit")
    ae = _event(request, pk)
    initial = {f: v for f, v in services.flat_fields(ae).items() if f != "source"}
    for f in ("onset_at", "end_at", "first_knowledge_at"):
        initial[f] = _local_input(getattr(ae, f))
    initial["serious"] = "yes" if ae.serious else "no"
    form = AdverseEventForm(request.POST or None, initial=initial, with_reason=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_adverse_event(actor=request.user, adverse_event_id=ae.pk,
                                          reason=form.cleaned_data["reason"], **form.event_fields())
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Follow-up saved as a new revision."))
            return redirect("safety_ae", pk=ae.pk)
    return render(request, "safety/ae_form.html", {"form": form, "p": ae.participant, "ae": ae,
                                                   "title": _("Update adverse event %(n)s") % {"n": ae.label}})


def ae_withdraw(request, pk):
    need(request, "participant.withdraw")
    ae = _event(request, pk)
    form = SafetyWithdrawForm(request.POST or None, initial={"details": f"{ae.label}: {ae.term}"})
    if request.method == "POST" and form.is_valid():
        try:
            services.withdraw_for_event(actor=request.user, adverse_event_id=ae.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Withdrawn for safety. The participant will not be replaced."))
            return redirect("safety_ae", pk=ae.pk)
    return render(request, "safety/simple_form.html", {"form": form, "p": ae.participant, "ae": ae,
                                                       "title": _("Withdraw the participant because of %(n)s") % {"n": ae.label}})


# ---- SAE clocks --------------------------------------------------------------------------------

def sae_dashboard(request):
    need(request, "safety.view")
    services.notify_overdue(actor=None)
    show = request.GET.get("show", "open")
    rows = selectors.clock_rows(selectors.sae_reports(only_open=show == "open", user=request.user))
    return render(request, "safety/sae.html", {"rows": rows, "show": show, "susar": active_protocol().safety.susar,
                                               "overdue": sum(1 for r in rows if r["clock"]["state"] == "overdue")})


def sae_report(request, pk):
    need(request, "safety.view")
    r = selectors.sae_reports(user=request.user).filter(pk=pk).first()
    if r is None:
        raise Http404
    can = has(request.user, "safety.report")
    sent_form = SentForm(request.POST if request.POST.get("action") == "sent" else None, prefix="s")
    ack_form = AckForm(request.POST if request.POST.get("action") == "ack" else None, prefix="a")
    if request.method == "POST":
        if not can:
            raise PermissionDenied
        form = sent_form if request.POST.get("action") == "sent" else ack_form
        if form.is_valid():
            try:
                if form is sent_form:
                    services.record_report_sent(actor=request.user, report_id=r.pk, **form.cleaned_data)
                    messages.success(request, _("Sending recorded."))
                else:
                    services.record_report_acknowledged(actor=request.user, report_id=r.pk, **form.cleaned_data)
                    messages.success(request, _("Acknowledgement recorded."))
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                return redirect("safety_sae_report", pk=r.pk)
    ae = r.adverse_event
    from . import clock_text

    return render(request, "safety/sae_report.html", {
        "r": r, "ae": ae, "p": ae.participant, "clock": selectors.clock(r), "can": can,
        "recipient": clock_text.recipient_name(r), "rule": clock_text.rule(r.rule),
        "warning": clock_text.warning(r.calendar_warning),
        "sent_form": sent_form, "ack_form": ack_form, "criteria": SERIOUS_CRITERIA,
        "protocol": active_protocol(), "causality": selectors.causality_rows(ae),
        "revisions": ae.revisions.select_related("saved_by").order_by("revision"),
    })


# ---- DSMB ---------------------------------------------------------------------------------------

def dsmb(request):
    need(request, "dsmb.open")
    protocol = active_protocol()
    closed = has(request.user, "dsmb.closed")
    form = GenerateForm(request.POST or None, closed=closed)
    if request.method == "POST":
        need(request, "dsmb.generate")
    if request.method == "POST" and form.is_valid():
        try:
            rep = services.generate_report(actor=request.user, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            messages.success(request, _("Report generated."))
            return redirect("safety_dsmb_report", pk=rep.pk)
    visible = list(selectors.reports_for(request.user))
    today = timezone.localdate()
    rows = []
    for due in reports.schedule(months=protocol.safety.dsmb_interim_months, today=today):
        made = [r for r in visible if r.as_of == due]
        state = "ok" if made else ("overdue" if due <= today else "due")
        rows.append({"due": due, "reports": made, "state": state})
    return render(request, "safety/dsmb.html", {
        "schedule": rows, "first": reports.first_enrolment(), "months": protocol.safety.dsmb_interim_months,
        "reports": visible, "alerts": selectors.alerts_for(request.user), "closed": closed,
        "recommendations": selectors.recommendations(), "form": form,
        "can_recommend": has(request.user, "dsmb.recommend"),
        "can_generate": has(request.user, "dsmb.generate"),
        "arm_names": {a.id: a.name for a in protocol.arms},
        "thresholds": protocol.safety.dsmb_thresholds,
    })


def dsmb_alert(request, pk):
    """A threshold alert with its arm and events: the page the alert's notification links to
    (closed-report readers only; anyone else gets the same 404 as for a missing alert)."""
    need(request, "dsmb.open")
    alert = selectors.alert_for(request.user, pk)
    if alert is None:
        raise Http404
    try:
        arm_of = services.closed_arms(request.user)
    except NotPermitted:
        raise Http404 from None
    protocol = active_protocol()
    names = {a.id: a.name for a in protocol.arms}
    threshold = next((t for t in protocol.safety.dsmb_thresholds if t.id == alert.threshold_id), None)
    events = list(selectors.events(user=request.user).filter(pk__in=alert.adverse_event_ids).order_by("onset_at", "id"))
    rows = [{"ae": e, "arm": names.get(arm_of.get(e.participant_id)),
             "susar": selectors.is_susar(e, protocol.safety.related_causality)} for e in events]
    return render(request, "safety/dsmb_alert.html", {"alert": alert, "rows": rows, "threshold": threshold,
                                                      "arm": names.get(alert.arm) if alert.arm else None})


def _report(request, pk) -> DsmbReport:
    rep = selectors.report_for(request.user, pk)
    if rep is None:  # the same answer whether the report is missing or closed to this user
        raise Http404
    return rep


def dsmb_report(request, pk):
    rep = _report(request, pk)
    from annulus.site.csp import stored_document

    return stored_document(HttpResponse(rep.html_in(get_language()), content_type="text/html; charset=utf-8"))


def dsmb_report_pdf(request, pk):
    rep = _report(request, pk)
    response = HttpResponse(reports.render_pdf(rep.html_in(get_language())), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="dsmb-{rep.kind}-{rep.as_of.isoformat()}.pdf"'
    return response


def dsmb_recommend(request):
    need(request, "dsmb.recommend")
    form = RecommendationForm(request.POST or None, initial={"meeting_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            services.record_recommendation(actor=request.user, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Recommendation recorded; the investigators are notified."))
            return redirect("safety_dsmb")
    return render(request, "safety/simple_form.html", {"form": form, "title": _("DSMB recommendation")})
