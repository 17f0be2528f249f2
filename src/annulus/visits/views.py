"""Thin views: parse the form, call the service, show the result or the error it names."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import gettext as _

from annulus.accounts.permissions import has, need
from annulus.allocation.selectors import emergency_unblindings_of
from annulus.errors import RuleViolation
from annulus.participants.forms import add_violation, field_message
from annulus.participants.selectors import participant_or_404, refuse_unseen
from annulus.trial.selectors import active_protocol, protocol_for

from . import crf, procedures, selectors, services
from .forms import (BookForm, CorrectDateForm, CrfForm, LiposuctionForm, MissedForm, OpenVisitForm, ReminderForm, UnscheduledForm,
                    VisitEntryForm)
from .models import UNSCHEDULED, FormRevision


def _participant(request, pk):
    need(request, "visits.view")
    return participant_or_404(pk, user=request.user)


def ae_link(participant_id: int, term: str) -> str:
    """The safety app's new adverse-event page, with the term filled in."""
    base = f"/participants/{participant_id}/adverse-events/new/"
    return f"{base}?{urlencode({'term': term})}" if term else base


def ae_term(protocol, form_id: str, analyte: str, computed: dict) -> str:
    """An adverse-event term for a clinically significant laboratory value ("ALT increased")."""
    form = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    name = analyte
    if form is not None and form.panel:
        a = next((a for a in protocol.lab_panel(form.panel).analytes if a.id == analyte), None)
        name = a.name.en if a else analyte
    flag = ((computed.get("parts") or {}).get(analyte) or {}).get("flag")
    return f"{name} {dict(high='increased', low='decreased').get(flag, 'abnormal')}"


def _ae_links(protocol, p, form_id, computed):
    names = crf.analyte_names(protocol, get_language())
    return [(names.get(a, a), ae_link(p.pk, ae_term(protocol, form_id, a, computed)))
            for a in crf.significant_analytes(computed)]


def liposuction(request, pk):
    need(request, "visits.edit")
    p = _participant(request, pk)
    current = selectors.current_liposuction(p.pk)
    initial = {}
    if current:
        initial = {"performed_on": current.performed_on, "fat_volume_ml": current.fat_volume_ml,
                   "anaesthesia": current.anaesthesia, "observation_hours": current.observation_hours,
                   "complications": current.complications}
    form = LiposuctionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.record_liposuction(actor=request.user, participant_id=p.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Liposuction recorded; the schedule is set from day 0."))
            return redirect("participant", pk=p.pk)
    return render(request, "participants/form.html", {"form": form, "p": p, "title": _("Liposuction (day 0)")})


def _slot(p, key):
    slot = selectors.slot_for(p, key)
    if slot is None:
        raise Http404
    return slot


def visit_detail(request, pk, key):
    p = _participant(request, pk)
    slot = _slot(p, key)
    protocol = active_protocol()
    can_edit = has(request.user, "visits.edit") and not _record_locked(p, key)
    open_form = OpenVisitForm(initial={"visit_date": timezone.localdate()})
    missed_form = MissedForm()
    today = timezone.localdate()
    book_form = BookForm(initial={"on": slot.appointment or max(today, slot.window_start or today)})
    date_form = CorrectDateForm(initial={"visit_date": slot.record.visit_date if slot.record else None})
    if request.method == "POST":
        need(request, "visits.edit")
        action = request.POST.get("action")
        try:
            if action == "open":
                open_form = OpenVisitForm(request.POST)
                if open_form.is_valid():
                    services.open_visit(actor=request.user, participant_id=p.pk, visit_id=slot.visit_id,
                                        visit_date=open_form.cleaned_data["visit_date"])
                    messages.success(request, _("Visit recorded; enter its forms."))
                    return redirect("visit", pk=p.pk, key=key)
            elif action == "book":
                book_form = BookForm(request.POST)
                if book_form.is_valid():
                    services.book_visit(actor=request.user, participant_id=p.pk, visit_id=slot.visit_id,
                                        on=book_form.cleaned_data["on"])
                    messages.success(request, _("Visit booked."))
                    return redirect("visit", pk=p.pk, key=key)
            elif action == "correct_date":
                date_form = CorrectDateForm(request.POST)
                if date_form.is_valid():
                    services.correct_visit_date(actor=request.user, participant_id=p.pk, visit_key=key,
                                                visit_date=date_form.cleaned_data["visit_date"],
                                                reason=date_form.cleaned_data["reason"])
                    messages.success(request, _("Visit date corrected."))
                    return redirect("visit", pk=p.pk, key=key)
            elif action == "missed":
                missed_form = MissedForm(request.POST)
                if missed_form.is_valid():
                    services.record_missed(actor=request.user, participant_id=p.pk, visit_id=slot.visit_id,
                                           reason=missed_form.cleaned_data["reason"])
                    messages.warning(request, _("Visit recorded as missed."))
                    return redirect("participant", pk=p.pk)
        except RuleViolation as exc:
            add_violation({"open": open_form, "book": book_form, "correct_date": date_form}.get(action, missed_form), exc)
    rows = []
    if slot.record is not None:
        records = selectors.form_records(slot.record)
        sub = timedelta(days=protocol.schedule.submission_days)
        now = timezone.now()
        names = crf.analyte_names(protocol, get_language())
        for form_id in slot.record.forms:
            rec = records.get(form_id)
            due = rec.collected_at + sub if rec else None
            late = bool(rec and ((rec.submitted_at is None and now > due) or (rec.submitted_at and rec.submitted_at > due)))
            rows.append({"form_id": form_id, "name": selectors.form_name(protocol, form_id), "rec": rec,
                         "state": rec.state if rec else "not_started",
                         "state_label": selectors.FORM_STATE_LABELS[rec.state if rec else "not_started"],
                         "headline": crf.headline(form_id, rec.computed, names, protocol=protocol) if rec else [],
                         "due": due, "late": late,
                         "ae": _ae_links(protocol, p, form_id, rec.computed) if rec else [],
                         "ae_review": ae_link(p.pk, "") if rec and rec.items.get("new_events") == "yes" else None})
    completion_due = (slot.record.visit_date + timedelta(days=protocol.schedule.completion_days)
                      if slot.record and slot.record.visit_date else None)
    return render(request, "visits/visit.html", {
        "p": p, "unblindings": emergency_unblindings_of(p.pk), "slot": slot, "rows": rows, "can_edit": can_edit, "open_form": open_form, "missed_form": missed_form, "date_form": date_form,
        "book_form": book_form, "can_book": can_edit and slot.state in ("upcoming", "due", "open", "overdue")
        and slot.window_start is not None and p.status in selectors.ACTIVE,
        "completion_due": completion_due, "today": timezone.localdate(),
        "form_names": [selectors.form_name(protocol, f) for f in slot.forms],
        "can_open": can_edit and slot.record is None and slot.visit_id != UNSCHEDULED and not slot.procedure
        and slot.state not in ("cancelled",),
    })


def _crf_context(request, p, slot, form_id):
    protocol = active_protocol()
    if slot.record is None:
        raise Http404
    if form_id not in slot.record.forms:
        raise Http404
    spec = crf.spec_for(protocol, form_id)
    rec = selectors.form_records(slot.record).get(form_id)
    return protocol, spec, rec


def _lab_rows(spec, form, computed, language):
    """Lab forms as a table: analyte, value, unit, reference range, flag, judgement."""
    panel = spec.extra.get("panel")
    if panel is None:
        return None
    parts = (computed or {}).get("parts") or {}
    rows = []
    for a in panel.analytes:
        ref = a.normal if a.kind == "qualitative" else f"{a.low:g}–{a.high:g}"
        rows.append({"name": a.name.get(language), "value": form[a.id],
                     "unit": form[f"{a.id}__unit"] if a.kind != "qualitative" else None,
                     "cs": form[f"{a.id}__cs"], "ref": ref, "ref_unit": a.unit,
                     "flag": (parts.get(a.id) or {}).get("flag"),
                     "flag_label": LAB_FLAGS.get((parts.get(a.id) or {}).get("flag"), "")})
    return rows


# a result's place against the reference range, in words (the stored flag is a code)
LAB_FLAGS = {"low": _lazy("below the range"), "high": _lazy("above the range"), "abnormal": _lazy("abnormal"),
             "normal": _lazy("normal")}


def _record_locked(p, key, form_id="") -> bool:
    """The form, its visit or the casebook is locked by the data manager (X-7.5)."""
    from annulus.participants.locks import covering_lock

    return covering_lock(p.pk, key, form_id) is not None


def crf_form(request, pk, key, form_id):
    p = _participant(request, pk)
    slot = _slot(p, key)
    protocol, spec, rec = _crf_context(request, p, slot, form_id)
    language = get_language()
    current = rec.items if rec else {}
    data = request.POST if request.method == "POST" else None
    initial = {"collected_at": timezone.localtime(rec.collected_at).strftime("%Y-%m-%dT%H:%M")} if rec else {}
    form = CrfForm(data, spec=spec, language=language, current=current, initial=initial)
    # a locked form (or its visit or casebook) shows its answers without controls, as to a reader
    may = procedures.may_save(request.user, protocol, form_id)
    can_edit = may and not _record_locked(p, key, form_id)
    if not can_edit:
        for field in form.fields.values():  # a reader sees the answers, not controls to change them
            field.disabled = True
    computed = rec.computed if rec else None
    if request.method == "POST":
        if not may:
            raise PermissionDenied
        changed = _changed_since_shown(request.POST, [form_id], {form_id: rec} if rec else {}, prefixed=False)
        if changed:
            form.add_error(None, _changed_message(protocol, changed))
        elif form.is_valid():
            try:
                rec = services.save_form(actor=request.user, participant_id=p.pk, visit_key=key, form_id=form_id,
                                         items=form.items(), complete="complete" in request.POST,
                                         collected_at=form.cleaned_data["collected_at"],
                                         reason=form.cleaned_data["reason"])
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                messages.success(request, _("Form saved (%(state)s).") % {"state": selectors.FORM_STATE_LABELS[rec.state]})
                significant = crf.significant_analytes(rec.computed)
                if significant or (spec is crf.AE_REVIEW and rec.items.get("new_events") == "yes"):
                    return redirect("crf_form", pk=p.pk, key=key, form_id=form_id)
                return redirect("visit", pk=p.pk, key=key)
    revisions = list(FormRevision.objects.filter(form=rec).select_related("saved_by")) if rec else []
    for r in revisions:
        r.answers = crf.answers_text(spec, r.items, language)  # labels and answer words, not keys and codes
        r.state_label = selectors.FORM_STATE_LABELS.get(r.state, r.state)
    return render(request, "visits/crf.html", {
        "p": p, "unblindings": emergency_unblindings_of(p.pk), "slot": slot, "form": form, "rec": rec, "spec": spec, "form_id": form_id,
        "title": selectors.form_name(protocol, form_id),
        "intro": spec.intro_zh if (language or "").startswith("zh") else spec.intro_en,
        "lab_rows": _lab_rows(spec, form, computed, language),
        "score": _score_context(protocol, p, form_id, computed),
        "revisions": revisions, "can_edit": can_edit,
        "state_label": selectors.FORM_STATE_LABELS[rec.state if rec else "not_started"],
    })


def _changed_since_shown(post, form_ids, records, *, prefixed: bool) -> list[str]:
    """Forms saved by someone else since the page was drawn: the revision the page showed (a
    hidden field) is no longer the current one. Saving over them would lose their answers."""
    changed = []
    for fid in form_ids:
        shown = post.get(f"{fid}-revision" if prefixed else "revision")
        if shown is None:
            continue
        current = records[fid].revision if records.get(fid) else 0
        if shown != str(current):
            changed.append(fid)
    return changed


def _changed_message(protocol, changed: list[str]) -> str:
    names = ", ".join(selectors.form_name(protocol, f) for f in changed)
    return _("%(forms)s changed since this page was opened (saved by someone else). Nothing was saved: "
             "open the page again to see the current answers.") % {"forms": names}


def visit_entry(request, pk, key):
    """Every form of the visit still to complete on one page, saved together: the way a paper
    CRF booklet is transcribed. Completed forms are changed one at a time, each with its reason."""
    p = _participant(request, pk)
    slot = _slot(p, key)
    if slot.record is None or slot.record.outcome != "attended":
        raise Http404
    protocol = protocol_for(slot.record.protocol_version)  # the forms of the version the visit was opened under
    language = get_language()
    records = selectors.form_records(slot.record)
    done = [f for f in slot.record.forms if f in records and records[f].is_complete]
    pending = [f for f in slot.record.forms if f not in done]
    data = request.POST if request.method == "POST" else None
    entry = VisitEntryForm(data)
    # a locked visit (or casebook) shows its answers without controls, as the single-form page does;
    # a form locked on its own is shown read-only and left out of what the page saves
    can_edit = has(request.user, "visits.edit") and not _record_locked(p, key)
    # a form locked on its own, or a procedure's record this role does not record, is shown
    # read-only and left out of what the page saves
    locked_forms = {f for f in pending if can_edit and (_record_locked(p, key, f)
                                                        or not procedures.may_save(request.user, protocol, f))}
    forms = {}
    for form_id in pending:
        rec = records.get(form_id)
        forms[form_id] = CrfForm(data, prefix=form_id, spec=crf.spec_for(protocol, form_id), language=language,
                                 current=rec.items if rec else {})
        if not can_edit or form_id in locked_forms:
            for field in forms[form_id].fields.values():  # a reader sees the answers, not controls
                field.disabled = True
    if request.method == "POST":
        need(request, "visits.edit")
        complete = "complete" in request.POST
        changed = _changed_since_shown(request.POST, slot.record.forms, records, prefixed=True)
        if changed:
            entry.add_error(None, _changed_message(protocol, changed))
        elif entry.is_valid() and all(f.is_valid() for f in forms.values()):
            # a draft saves what was typed; completing saves every form still open
            batch = {fid: f.items() for fid, f in forms.items()
                     if fid not in locked_forms and (complete or f.has_answers() or fid in records)}
            try:
                if not batch:
                    raise RuleViolation("forms", _("nothing entered"))
                services.save_visit_forms(actor=request.user, participant_id=p.pk, visit_key=key, forms=batch,
                                          complete=complete, collected_at=entry.cleaned_data["collected_at"])
            except RuleViolation as exc:
                for v in getattr(exc, "violations", [exc]):
                    form_id, _dot, field = v.field.partition(".")
                    target = forms.get(form_id) if field else None
                    if target is not None and field in target.item_ids:
                        target.add_error(field, field_message(target, field, v.message))
                    elif field == "collected_at":  # one time for the whole page
                        if v.message not in entry.errors.get("collected_at", []):
                            entry.add_error("collected_at", v.message)
                    elif target is not None:
                        target.add_error(None, v.message)
                    else:
                        add_violation(entry, v)
            else:
                messages.success(request, _("Visit forms saved (%(n)d).") % {"n": len(batch)})
                return redirect("visit", pk=p.pk, key=key)
    sections = []
    for fid, f in forms.items():
        rec = records.get(fid)
        state = rec.state if rec else "not_started"
        sections.append({"form_id": fid, "form": f, "title": selectors.form_name(protocol, fid), "state": state,
                         "state_label": selectors.FORM_STATE_LABELS[state],
                         "lab_rows": _lab_rows(f.spec, f, rec.computed if rec else None, language),
                         "revision": rec.revision if rec else 0, "has_errors": bool(f.errors),
                         "locked": fid in locked_forms})
    return render(request, "visits/entry.html", {
        "p": p, "unblindings": emergency_unblindings_of(p.pk), "slot": slot, "entry": entry, "sections": sections,
        "done": [{"form_id": f, "title": selectors.form_name(protocol, f)} for f in done],
        "can_edit": can_edit,
    })


def _score_context(protocol, p, form_id, computed, error=None):
    if computed is None and error is None:
        return {"empty": True}
    language = get_language()
    names = crf.analyte_names(protocol, language)
    try:
        spec = crf.spec_for(protocol, form_id)
    except RuleViolation:
        spec = None

    def label(key):  # an item's or analyte's name, never its key
        item = spec.item(key) if spec else None
        return item.label(language) if item else names.get(key, key)

    out = {"headline": crf.headline(form_id, computed, names, protocol=protocol) if computed else [], "error": error,
           "reason": (computed or {}).get("reason"),
           "missing": [label(k) for k in (computed or {}).get("missing") or []],
           "ae": _ae_links(protocol, p, form_id, computed or {}),
           "needs_judgement": [label(k) for k in (computed or {}).get("needs_judgement") or []]}
    if spec is crf.AE_REVIEW and (computed or {}).get("new_events") == "yes":
        out["ae_review"] = ae_link(p.pk, "")
    return out


def crf_preview(request, pk, key, form_id):
    """htmx: the scores of the answers on screen, computed by the same code as on saving."""
    p = _participant(request, pk)
    slot = _slot(p, key)
    protocol, spec, rec = _crf_context(request, p, slot, form_id)
    form = CrfForm(request.POST, spec=spec, language=get_language())
    form.is_valid()
    try:
        cleaned = crf.clean(spec, form.items())
        base = selectors.baseline_score(protocol, p.pk, slot.visit_id, form_id)
        computed = crf.compute(protocol, form_id, cleaned, baseline=base)
        score = _score_context(protocol, p, form_id, computed)
    except RuleViolation as exc:
        score = _score_context(protocol, p, form_id, None, error=f"{exc.field}: {exc.message}")
    return render(request, "visits/_score.html", {"score": score})


def unscheduled(request, pk):
    need(request, "visits.edit")
    p = _participant(request, pk)
    protocol = active_protocol()
    lang = get_language()
    # the cell product's procedures are recorded on its own pages, never at an unscheduled visit
    pages = protocol.page_procedures
    choices = [(f.id, f.name.get(lang)) for f in protocol.schedule.forms
               if f.id not in pages and f.procedure not in pages]
    form = UnscheduledForm(request.POST or None, choices=choices)
    if request.method == "POST" and form.is_valid():
        try:
            v = services.add_unscheduled_visit(actor=request.user, participant_id=p.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Unscheduled visit added."))
            return redirect("visit", pk=p.pk, key=v.key)
    return render(request, "participants/form.html", {"form": form, "p": p, "title": _("Unscheduled visit")})


def overdue(request):
    need(request, "visits.view")
    data = selectors.overdue(user=request.user)
    protocol = active_protocol()
    names = {v.id: v.name.get(get_language()) for v in protocol.schedule.visits}

    def visit_name(visit):
        return names.get(visit.visit_id) or _("Unscheduled") + f" {visit.number}"

    for row in data["unsubmitted"] + data["late_submitted"]:
        row["name"] = selectors.form_name(protocol, row["form"].form_id)
        row["visit_name"] = visit_name(row["form"].visit)
    for row in data["incomplete"]:
        row["visit_name"] = visit_name(row["visit"])
    for row in data["late_submitted"]:
        row["late_days"] = round(row["late_by"].total_seconds() / 86400, 1)
    return render(request, "visits/overdue.html", {"data": data})


def _day(request) -> date:
    from annulus import dates

    raw = request.GET.get("date", "")
    try:
        day = date.fromisoformat(raw) if raw else timezone.localdate()
    except ValueError:
        return timezone.localdate()
    if dates.problem(day):
        raise RuleViolation("date", dates.OUT_OF_RANGE)
    return day


def call_list(request):
    need(request, "visits.remind")
    day = _day(request)
    if request.method == "POST":
        form = ReminderForm(request.POST)
        try:
            if not form.is_valid():
                raise RuleViolation("outcome", "choose the call outcome")
            participant_id = int(request.POST.get("participant", "0"))
            refuse_unseen(request.user, [participant_id])  # as unknown: "no such participant"
            services.record_reminder(actor=request.user, participant_id=participant_id,
                                     visit_id=request.POST.get("visit", ""), visit_on=request.POST.get("visit_on", ""),
                                     **form.cleaned_data)
        except (RuleViolation, ValueError) as exc:
            messages.error(request, _("Not recorded") + f": {getattr(exc, 'message', exc)}")
        else:
            messages.success(request, _("Reminder call recorded."))
        return redirect(f"{reverse('call_list')}?date={day.isoformat()}")
    rows = selectors.call_list(day, user=request.user)
    return render(request, "visits/calls.html", {"rows": rows, "day": day, "visit_on": day + timedelta(
        days=active_protocol().schedule.reminder_days_before), "reminder_form": ReminderForm(),
        "prev": day - timedelta(days=1), "next": day + timedelta(days=1),
        "questionnaires": _questionnaires_to_remind(request)})


def _questionnaires_to_remind(request):
    """The participants whose questionnaire link waits (participant self-entry), or None when
    that app is not installed."""
    from django.apps import apps

    if not apps.is_installed("annulus.selfentry"):
        return None
    from annulus.participants.selectors import visible
    from annulus.selfentry.selectors import to_remind

    return to_remind(participant_ids=visible(request.user).values_list("pk", flat=True))
