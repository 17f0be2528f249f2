"""Thin views: the query dashboard and list (with CSV), raising a query, and a query's thread with
its answer, close and re-open forms."""

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
from annulus.participants.selectors import get_participant, paginate

from . import selectors, services
from .forms import RaiseForm, StepForm
from .models import ASSIGNEES, ORIGINS, STATUSES, QueryMessage

CSV_COLUMNS = ["query", "participant", "case_number", "visit", "form", "record", "item", "target", "origin", "check",
               "status", "assigned_to", "raised_by", "raised_at", "updated_at", "closed_at", "age_days", "messages",
               "last_message"]


def _cell(value):
    # a leading = + - @ would make a spreadsheet evaluate free text as a formula
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else value


def _rows(qs, language):
    today = timezone.localdate()
    fmt = lambda dt: timezone.localtime(dt).strftime("%Y-%m-%d %H:%M") if dt else ""  # noqa: E731
    ids = [q.pk for q in qs]
    threads: dict[int, list] = {}
    for m in QueryMessage.objects.filter(query_id__in=ids).order_by("at", "id"):
        threads.setdefault(m.query_id, []).append(m)
    for q in qs:
        thread = threads.get(q.pk, [])
        yield [_cell(v) for v in [
            q.label, q.participant.screening_number, q.participant.case_number or "", q.visit, q.form,
            q.record or "", q.item, selectors.target_text(q, language), q.origin, q.check_id, q.status,
            q.assigned_to, q.raised_by.username if q.raised_by_id else "system", fmt(q.raised_at), fmt(q.updated_at),
            fmt(q.closed_at), (today - timezone.localtime(q.raised_at).date()).days, len(thread),
            thread[-1].text if thread else ""]]


def _filters(request) -> dict:
    g = request.GET
    status = g.get("status", "active")
    if status not in {"", "active"} | {s for s, _l in STATUSES}:
        status = "active"
    assigned = g.get("assigned_to", "")
    origin = g.get("origin", "")
    participant = g.get("participant", "")
    return {"status": status,
            "form": g.get("form", "")[:40],
            "assigned_to": assigned if assigned in dict(ASSIGNEES) else "",
            "origin": origin if origin in dict(ORIGINS) else "",
            "participant": participant if participant.isdigit() else "",
            "sort": g.get("sort", "-raised") if g.get("sort", "-raised") in selectors.SORTS else "-raised"}


def dashboard(request):
    need(request, "queries.view")
    f = _filters(request)
    qs = selectors.query_list(status=f["status"], form=f["form"], assigned_to=f["assigned_to"], origin=f["origin"],
                              participant=f["participant"] or None, sort=f["sort"], user=request.user)
    language = get_language()
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="queries-{timezone.localdate().isoformat()}.csv"'
        response.write("\ufeff")  # lets spreadsheet programs read the Chinese text as UTF-8
        w = csv.writer(response)
        w.writerow(CSV_COLUMNS)
        for row in _rows(list(qs), language):
            w.writerow(row)
        return response
    page = paginate(qs, request.GET.get("page"), per_page=50)
    values = current_values(page.object_list, language)
    for q in page.object_list:
        q.target_text = selectors.target_text(q, language)
        q.current_value = values.get(q.pk)
    summary = selectors.dashboard(user=request.user)
    summary["forms"] = [(form, selectors.form_label(form, language) or _("casebook / visit"), n)
                        for form, n in summary["forms"]]
    assignees = dict(ASSIGNEES)
    summary["assignees"] = [(a, assignees.get(a, a), n) for a, n in summary["assignees"]]
    used_forms = sorted(set(selectors.query_list(user=request.user).values_list("form", flat=True)) - {""})
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("format", None)
    return render(request, "queries/dashboard.html", {
        "summary": summary, "page": page, "f": f, "statuses": STATUSES, "assignees": ASSIGNEES, "origins": ORIGINS,
        "forms": [(x, selectors.form_label(x, language)) for x in used_forms],
        "query_string": params.urlencode(), "can_raise": has(request.user, "queries.raise")})


def current_values(queries, language) -> dict[int, str]:
    """Each query's data point as it is now, readable (coded answers by their words, numbers as typed,
    with the item's unit, via the data dictionary), by query id; a query on a whole form, visit or
    casebook has none. A handful of reads whatever the number of queries."""
    from annulus.monitoring.selectors import data_points
    from annulus.monitoring.values import shown_value

    wanted = [q for q in queries if q.item]
    if not wanted:
        return {}
    points = data_points({q.participant_id for q in wanted})
    index, loose = {}, {}
    for pid, pts in points.items():
        for pt in pts:
            index[(pid, pt.visit, pt.form, int(pt.record or 0), pt.item)] = pt.value
            loose[(pid, pt.form, int(pt.record or 0), pt.item)] = pt.value
    dictionary = selectors._dictionary()
    out = {}
    for q in wanted:
        key = (q.participant_id, q.form, int(q.record or 0), q.item)
        if (q.participant_id, q.visit, *key[1:]) in index:
            value = index[(q.participant_id, q.visit, *key[1:])]
        elif q.form in ("liposuction", "transplant", "consent", "screening", "eligibility") and key in loose:
            value = loose[key]  # records kept once per participant, whatever visit key the query names
        else:
            continue
        entry = dictionary.entry(q.form, q.item) if dictionary is not None else None
        out[q.pk] = shown_value(value, entry, language, unit=True)
    return out


def _target_from(data) -> dict:
    def text(name, limit):
        return str(data.get(name, "") or "")[:limit]

    return {"participant": text("participant", 12), "visit": text("visit", 20), "form": text("form", 40),
            "record": text("record", 12) or "0", "item": text("item", 60)}


def _item_choices(form_id: str, language: str) -> list[tuple[str, str]]:
    d = selectors._dictionary()
    f = d.form(form_id) if d is not None and form_id else None
    if f is not None:
        return [(e.item, e.label(language)) for e in f.items]
    spec = selectors._spec(form_id) if form_id else None
    return [(i.id, i.label(language)) for i in spec.items] if spec is not None else []


def raise_page(request):
    need(request, "queries.raise")
    language = get_language()
    initial = _target_from(request.POST if request.method == "POST" else request.GET)
    items = _item_choices(initial["form"], language)
    if initial["form"] == "" and initial["visit"] not in ("", "screening"):
        items = [("visit_date", _("Visit date"))]
    form = RaiseForm(request.POST or None, initial=initial, items=items)
    participant = get_participant(int(initial["participant"]), user=request.user) \
        if initial["participant"].isdigit() else None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            q = services.raise_query(actor=request.user, participant_id=d["participant"], visit=d["visit"],
                                     form=d["form"], record=d["record"] or 0, item=d["item"], text=d["text"],
                                     assigned_to=d["assigned_to"])
        except NotPermitted:
            raise PermissionDenied from None
        except RuleViolation as exc:
            _show_target_errors(form, exc)
        else:
            messages.success(request, _("Query raised."))
            return redirect("query", pk=q.pk)
    elif request.method == "POST":
        # the form's own field errors are shown; the target is checked too, so every problem shows at once
        try:
            selectors.check_target(initial["participant"], initial["visit"], initial["form"], initial["record"],
                                   request.POST.get("item", ""), user=request.user)
        except RuleViolation as exc:
            _show_target_errors(form, exc)
    target = {"participant": participant, "visit": selectors.visit_label(initial["visit"], language),
              "form": selectors.form_label(initial["form"], language)}
    return render(request, "queries/raise.html", {"form": form, "target": target, "p": participant})


def _show_target_errors(form, exc):
    """A problem with a hidden target field is shown above the form, naming the field."""
    for v in getattr(exc, "violations", [exc]):
        if v.field in ("item", "assigned_to", "text"):
            add_violation(form, v)
        else:
            form.add_error(None, f"{v.field}: {v.message}")


def thread(request, pk):
    need(request, "queries.view")
    q = selectors.get_query(pk, user=request.user)
    if q is None:
        raise Http404
    language = get_language()
    action = request.POST.get("action") if request.method == "POST" else None
    record_locked = _locked(q)
    # an answer may change the data: on a locked record the page says so instead of offering the form
    can_answer = has(request.user, "queries.answer") and q.status != "closed" and not record_locked
    can_close = services.may_close(request.user, q) and q.status != "closed"
    can_reopen = services.may_close(request.user, q) and q.status != "open"
    forms = {
        "answer": StepForm(request.POST if action == "answer" else None, prefix="answer", label=_("Answer")),
        "close": StepForm(request.POST if action == "close" else None, prefix="close", label=_("Reason for closing")),
        "reopen": StepForm(request.POST if action == "reopen" else None, prefix="reopen",
                           label=_("Why the query is re-opened")),
    }
    status = 200
    if action in forms:
        step = {"answer": services.answer_query, "close": services.close_query, "reopen": services.reopen_query}[action]
        form = forms[action]
        if form.is_valid():
            try:
                step(actor=request.user, query_id=q.pk, text=form.cleaned_data["text"])
            except NotPermitted:
                form.add_error(None, _("Your role may not answer queries."))
                status = 403
            except RuleViolation as exc:
                status = 403 if exc.status == 403 else 200
                for v in getattr(exc, "violations", [exc]):
                    form.add_error("text" if v.field == "text" else None,
                                   v.message if v.field == "text" else f"{v.field}: {v.message}")
            else:
                messages.success(request, {"answer": _("Answer saved."), "close": _("Query closed."),
                                           "reopen": _("Query re-opened.")}[action])
                return redirect("query", pk=q.pk)
    thread_rows = list(q.messages.select_related("author").order_by("at", "id"))
    check_message = selectors.check_message(q.check_id, language) if q.check_id else ""
    for m in thread_rows:
        if m.kind == QueryMessage.RAISE and q.check_id and check_message != q.check_id:
            # the edit check's message in the page's language, with the failing values as stored
            m.text = f"{check_message} ({q.fingerprint})" if q.fingerprint else check_message
        elif m.kind == QueryMessage.AUTO_CLOSE:
            m.text = _("the edit check's condition no longer holds (the data were changed)")
    # each author's role by its name in the page's language, as the protocol names it
    from annulus.trial.selectors import active_protocol

    role_names = {r.id: r.name.get(language) for r in active_protocol().roles}
    for m in thread_rows:
        m.role_name = role_names.get(m.author_role, m.author_role)
    return render(request, "queries/thread.html", {
        "q": q, "p": q.participant, "target": selectors.target_text(q, language), "link": selectors.target_link(q),
        "messages_": thread_rows, "forms": forms, "can_answer": can_answer, "can_close": can_close,
        "can_reopen": can_reopen, "check_message": check_message,
        "assignee": dict(ASSIGNEES).get(q.assigned_to, q.assigned_to),
        "record_locked": record_locked, "current_value": current_values([q], language).get(q.pk)}, status=status)


def _locked(q) -> bool:
    try:
        from annulus.participants.locks import covering_lock
    except ImportError:
        return False
    return covering_lock(q.participant_id, q.visit, q.form) is not None
