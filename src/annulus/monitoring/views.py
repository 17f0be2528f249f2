"""Thin views of monitoring: the status grid, the casebook summary, the SDV worksheet and the
auditor's review findings."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from annulus.accounts.permissions import has, need
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.forms import add_violation
from annulus.participants.models import Participant
from annulus.participants.selectors import get_participant, paginate, visible
from annulus.trial.lock import is_locked
from annulus.trial.selectors import active_protocol

from . import selectors, services
from .models import ReviewFinding

GRID_FILTERS = [
    ("open_queries", gettext_lazy("open queries")),
    ("sdv_pending", gettext_lazy("SDV to do")),
    ("sdv_cleared", gettext_lazy("SDV cleared by a change")),
    ("sdv_done", gettext_lazy("SDV done")),
    ("not_entered", gettext_lazy("forms not entered")),
    ("unsigned", gettext_lazy("not signed")),
    ("signed", gettext_lazy("signed")),
    ("locked", gettext_lazy("locked")),
]
CELL_LABELS = {
    "empty": gettext_lazy("nothing recorded"), "locked": gettext_lazy("locked"),
    "open_queries": gettext_lazy("open queries"), "sdv_cleared": gettext_lazy("SDV cleared by a change"),
    "not_entered": gettext_lazy("forms not entered"), "sdv_pending": gettext_lazy("SDV to do"),
    "sdv_done": gettext_lazy("SDV done"), "entered": pgettext_lazy("form status", "entered"),
}
SIGNATURE_LABELS = {"signed": gettext_lazy("signed"), "invalidated": gettext_lazy("signature invalidated"),
                    "unsigned": gettext_lazy("not signed")}
STATE_LABELS = {"verified": gettext_lazy("verified"), "cleared": gettext_lazy("verification cleared"),
                "pending": gettext_lazy("to verify"), "not_required": gettext_lazy("not in the plan")}


def _participant(request, pk) -> Participant:
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


def _visit_link(p, visit: str) -> str | None:
    from django.urls import reverse

    if visit == selectors.SCREENING:
        return reverse("participant", args=[p.pk])
    if visit == "":
        return reverse("participant", args=[p.pk]) + "#safety"
    if visit in active_protocol().page_procedures:
        return reverse("participant", args=[p.pk]) + "#allocation"
    return reverse("visit", args=[p.pk, visit])


# ---- the status grid -------------------------------------------------------------------------

def _grid_rows(request):
    status = request.GET.get("status", "")
    if status not in dict(GRID_FILTERS):
        status = ""
    q = (request.GET.get("q") or "").strip()[:40]
    people = visible(request.user).exclude(status="pre_screened").order_by("screening_number")
    if q:
        from django.db.models import Q

        people = people.filter(Q(screening_number__icontains=q) | Q(case_number__icontains=q) | Q(initials__icontains=q))
    protocol = active_protocol()
    rows = selectors.status_grid(people, protocol=protocol)
    totals = selectors.grid_totals(rows)
    shown = [r for r in rows if r.matches(status)]
    sort = request.GET.get("sort", "number")
    keys = {"number": lambda r: r.participant.screening_number,
            "case": lambda r: r.participant.case_number or "~",
            "queries": lambda r: sum(c.queries for c in r.cells),
            "sdv": lambda r: sum(c.sdv_required - c.sdv_verified for c in r.cells)}
    if sort.lstrip("-") in keys:
        shown.sort(key=keys[sort.lstrip("-")], reverse=sort.startswith("-"))
    return protocol, rows, shown, totals, status, q


def grid(request):
    need(request, "monitoring.view")
    protocol, rows, shown, totals, status, q = _grid_rows(request)
    language = get_language()
    page = paginate(shown, request.GET.get("page"), per_page=50)
    columns = [(c, selectors.visit_name(protocol, c, language)) for c in selectors.grid_columns(protocol)]
    for r in page.object_list:
        for c in r.cells:
            c.link = _visit_link(r.participant, c.visit)
            c.label = CELL_LABELS.get(c.status, c.status)
        r.signature_label = SIGNATURE_LABELS.get(r.signature or "", "")
        r.open_queries = sum(c.queries for c in r.cells)
        r.sdv_left = sum(c.sdv_required - c.sdv_verified for c in r.cells)
    return render(request, "monitoring/grid.html", {
        "page": page, "columns": columns, "filters": GRID_FILTERS, "status": status, "q": q, "totals": totals,
        "available": selectors.columns_available(), "shown": len(shown), "legend": CELL_LABELS})


# ---- one participant's casebook ---------------------------------------------------------------

def _form_rows(request, p):
    """Visits x forms of one casebook with entry, queries, SDV and lock status."""
    protocol = active_protocol()
    language = get_language()
    dictionary = selectors._dictionary()
    points = selectors.evaluate([p.pk])[p.pk]
    counts_fn = selectors._optional("annulus.queries.selectors", "open_query_counts")
    locks_fn = selectors._optional("annulus.participants.selectors", "locked_records")
    queries = counts_fn(participant_ids=[p.pk]) if counts_fn else {}
    locks = locks_fn(participant_ids=[p.pk]) if locks_fn else {}
    rows: dict[tuple[str, str], dict] = {}
    order: list[tuple[str, str]] = []
    for pt in points:
        key = (pt.visit, pt.form)
        if key not in rows:
            order.append(key)
            rows[key] = {"visit": pt.visit, "form": pt.form, "visit_name": selectors.visit_name(protocol, pt.visit, language),
                         "form_name": selectors.form_name(protocol, pt.form, language, dictionary), "items": 0, "required": 0,
                         "verified": 0, "cleared": 0, "records": set()}
        r = rows[key]
        r["items"] += 1
        r["records"].add(pt.record)
        if pt.required:
            r["required"] += 1
            r["verified"] += pt.state == "verified"
            r["cleared"] += pt.state == "cleared"
    # forms of visits opened but not yet complete show as not entered
    from annulus.visits.models import FormRecord, Visit

    page_forms = {f.id for f in protocol.schedule.forms if f.procedure in protocol.page_procedures}

    for v in Visit.objects.filter(participant=p).order_by("visit_date", "id"):
        done = set(FormRecord.objects.filter(visit=v, state__in=(FormRecord.COMPLETE, FormRecord.CHANGED))
                   .values_list("form_id", flat=True))
        for f in v.forms or []:
            if f in page_forms:
                continue
            key = (v.key, f)
            if key not in rows:
                order.append(key)
                rows[key] = {"visit": v.key, "form": f, "visit_name": selectors.visit_name(protocol, v.key, language),
                             "form_name": selectors.form_name(protocol, f, language, dictionary), "items": 0, "required": 0,
                             "verified": 0, "cleared": 0, "records": set()}
            rows[key]["entered"] = f in done if v.outcome == "attended" else None
    out = []
    for key in order:
        r = rows[key]
        r.setdefault("entered", r["items"] > 0)
        r["queries"] = queries.get((p.pk, r["visit"], r["form"]), 0)
        r["locked"] = any(k in locks for k in ((p.pk, "", ""), (p.pk, r["visit"], ""), (p.pk, r["visit"], r["form"])))
        r["link"] = _visit_link(p, r["visit"])
        r["done"] = r["required"] > 0 and r["verified"] == r["required"]
        out.append(r)
    return out, points


def casebook(request, pk):
    need(request, "monitoring.view")
    p = _participant(request, pk)
    rows, points = _form_rows(request, p)
    required = sum(r["required"] for r in rows)
    verified = sum(r["verified"] for r in rows)
    cleared = sum(r["cleared"] for r in rows)
    sign_fn = selectors._optional("annulus.casebooks.selectors", "signature_status")
    signature = sign_fn(participant_ids=[p.pk]).get(p.pk) if sign_fn else None
    open_findings = selectors.findings(participant_id=p.pk, status=ReviewFinding.OPEN).count() \
        if has(request.user, "review.view") else None
    return render(request, "monitoring/casebook.html", {
        "p": p, "rows": rows, "required": required, "verified": verified, "cleared": cleared,
        "percent": round(100 * verified / required) if required else None,
        "signature": SIGNATURE_LABELS.get(signature or "", ""), "signature_code": signature,
        "open_findings": open_findings, "can_review": has(request.user, "review.view"),
        "can_audit": has(request.user, "audit.view")})


# ---- the SDV worksheet ------------------------------------------------------------------------

def sdv(request, pk):
    """Every data point of a casebook with what the plan asks and its verification; the monitor
    marks an item or a whole form verified against source here."""
    need(request, "monitoring.view")
    p = _participant(request, pk)
    error = None
    if request.method == "POST":
        need(request, "sdv.verify")
        data = request.POST
        try:
            marks = services.verify(actor=request.user, participant_id=p.pk, visit=data.get("visit", ""),
                                    form=data.get("form", ""), record=data.get("record") or 0,
                                    item=data.get("item", ""))
        except NotPermitted:
            raise
        except RuleViolation as exc:
            error = exc
        else:
            messages.success(request, _("%(n)d item(s) marked verified against source.") % {"n": len(marks)})
            return redirect(request.get_full_path())
    protocol = active_protocol()
    language = get_language()
    points = selectors.evaluate([p.pk])[p.pk]
    selectors.explain_cleared(p.pk, points)
    labels = selectors.item_labels(protocol, language)
    dictionary = selectors._dictionary()
    show = request.GET.get("show", "plan")
    if show not in ("plan", "all", "todo"):
        show = "plan"
    groups: dict[tuple, dict] = {}
    for pt in points:
        if show == "plan" and not (pt.required or pt.mark):
            continue
        if show == "todo" and pt.state not in ("pending", "cleared"):
            continue
        key = (pt.visit, pt.form, pt.record)
        g = groups.setdefault(key, {"visit": pt.visit, "form": pt.form, "record": pt.record,
                                    "visit_name": selectors.visit_name(protocol, pt.visit, language),
                                    "form_name": selectors.form_name(protocol, pt.form, language, dictionary),
                                    "points": [], "open": 0})
        pt.label = labels.get((pt.form, pt.item), pt.item)
        pt.state_label = STATE_LABELS[pt.state]
        pt.shown = _shown_value(pt.value, dictionary.entry(pt.form, pt.item) if dictionary is not None else None,
                                language)
        g["points"].append(pt)
        g["open"] += pt.state in ("pending", "cleared", "not_required")
    return render(request, "monitoring/sdv.html", {
        "p": p, "groups": list(groups.values()), "show": show, "error": error,
        "can_verify": has(request.user, "sdv.verify") and not is_locked(),
        "plan": selectors.current_plan(protocol)})


def _shown_value(value, entry=None, language=None) -> str:
    """A value as the page shows it (``annulus.monitoring.values.shown_value``)."""
    from .values import shown_value

    return shown_value(value, entry, language)


# ---- review findings -------------------------------------------------------------------------

class FindingForm(forms.Form):
    where = forms.ChoiceField(label=gettext_lazy("Where"), required=False)
    category = forms.ChoiceField(label=gettext_lazy("Category"),
                                 choices=[("", "—")] + ReviewFinding.CATEGORIES)
    text = forms.CharField(label=gettext_lazy("Finding"), widget=forms.Textarea(attrs={"rows": 4}), max_length=4000)

    def __init__(self, *args, where_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["where"].choices = [("", _("the participant as a whole"))] + list(where_choices)

    def address(self) -> dict:
        """visit, form, record and item of the chosen place ("visit|form|record|item")."""
        raw = self.cleaned_data.get("where") or ""
        if not raw:
            return {"visit": "", "form": "", "record": 0, "item": ""}
        visit, form, record, item = (raw.split("|") + ["", "", "0", ""])[:4]
        return {"visit": visit, "form": form, "record": int(record or 0), "item": item}


def _where_choices(p, points, protocol, language, dictionary) -> list:
    """The places of a casebook a finding may name, grouped by form: the whole form, then each
    item by its label."""
    labels = selectors.item_labels(protocol, language)
    groups: dict[tuple, list] = {}
    names: dict[tuple, str] = {}
    for pt in points:
        key = (pt.visit, pt.form, pt.record)
        if key not in groups:
            names[key] = (f"{selectors.visit_name(protocol, pt.visit, language)} · "
                          f"{selectors.form_name(protocol, pt.form, language, dictionary)}"
                          + (f" #{pt.record}" if pt.record else ""))
            groups[key] = [(f"{pt.visit}|{pt.form}|{pt.record}|", names[key] + " · " + _("whole form"))]
        groups[key].append((f"{pt.visit}|{pt.form}|{pt.record}|{pt.item}", labels.get((pt.form, pt.item), pt.item)))
    return [(names[k], v) for k, v in groups.items()]


def _describe(f, protocol, language, dictionary, labels) -> str:
    """Where a finding lies, by name."""
    if not (f.visit or f.form):
        return _("the participant as a whole")
    parts = [selectors.visit_name(protocol, f.visit, language)]
    if f.form:
        parts.append(selectors.form_name(protocol, f.form, language, dictionary) + (f" #{f.record}" if f.record else ""))
    if f.item:
        parts.append(labels.get((f.form, f.item), f.item))
    return " · ".join(parts)


def _described(findings_qs):
    protocol, language = active_protocol(), get_language()
    dictionary = selectors._dictionary()
    labels = selectors.item_labels(protocol, language)
    out = list(findings_qs)
    for f in out:
        f.where = _describe(f, protocol, language, dictionary, labels)
    return out


class ResolveForm(forms.Form):
    resolution = forms.CharField(label=gettext_lazy("Resolution"), widget=forms.Textarea(attrs={"rows": 3}),
                                 max_length=4000)


def findings(request):
    need(request, "review.view")
    status = request.GET.get("status", "")
    rows = selectors.findings(status=status, user=request.user)
    page = paginate(rows, request.GET.get("page"), per_page=50)
    page.object_list = _described(page.object_list)
    return render(request, "monitoring/findings.html", {
        "page": page, "status": status, "statuses": ReviewFinding.STATUSES,
        "open": selectors.findings(status=ReviewFinding.OPEN, user=request.user).count()})


def participant_review(request, pk):
    """The auditor's review of one participant: links to every record and the audit trail, the
    findings so far and the form to record one."""
    need(request, "review.view")
    p = _participant(request, pk)
    form = None
    protocol, language = active_protocol(), get_language()
    dictionary = selectors._dictionary()
    if request.method == "POST":
        need(request, "review.record")
    if has(request.user, "review.record"):
        choices = _where_choices(p, selectors.data_points([p.pk])[p.pk], protocol, language, dictionary)
        initial = {}
        if request.GET.get("visit") is not None and request.GET.get("form"):
            initial["where"] = f"{request.GET['visit']}|{request.GET['form']}|{request.GET.get('record') or 0}|"
        if request.method == "POST" or not is_locked():
            form = FindingForm(request.POST if request.method == "POST" else None, initial=initial,
                               where_choices=choices)
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.record_finding(actor=request.user, participant_id=p.pk, category=d["category"],
                                        text=d["text"], **form.address())
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                messages.success(request, _("Review finding recorded."))
                return redirect("monitoring_review", pk=p.pk)
    rows, _points = _form_rows(request, p)
    return render(request, "monitoring/review.html", {
        "p": p, "form": form, "findings": _described(selectors.findings(participant_id=p.pk)), "rows": rows,
        "can_audit": has(request.user, "audit.view")})


def finding(request, pk):
    need(request, "review.view")
    f = selectors.get_finding(pk, user=request.user)
    if f is None:
        raise Http404
    form = None
    if has(request.user, "review.record") and f.status == ReviewFinding.OPEN and not is_locked():
        form = ResolveForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        need(request, "review.record")
        if form is None:
            form = ResolveForm(request.POST)
        if form.is_valid():
            try:
                services.resolve_finding(actor=request.user, finding_id=f.pk,
                                         resolution=form.cleaned_data["resolution"])
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                messages.success(request, _("Review finding resolved."))
                return redirect("monitoring_finding", pk=f.pk)
    f.where = _described([f])[0].where
    return render(request, "monitoring/finding.html", {"f": f, "p": f.participant, "form": form})
