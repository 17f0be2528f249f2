"""Thin views: parse the form, call the service, show the result or the error it names."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from annulus.accounts.permissions import has, need
from annulus.confirm import confirmed
from annulus.confirm import missing as confirm_missing
from annulus.errors import NotPermitted, RuleViolation
from annulus.trial.extensions import participant_panels
from annulus.trial.selectors import active_protocol

from . import selectors, services, states
from .forms import ConsentForm, EvidenceForm, PrescreenForm, SignatureForm, WithdrawForm, add_violation


def _beside(form, problems) -> None:
    """A service's problems shown on a form that refused other fields itself (a field the form
    already names keeps its own message)."""
    for v in problems:
        if v.field not in form.errors:
            add_violation(form, v)


def _participant(request, pk):
    need(request, "participant.view")
    return selectors.participant_or_404(pk, user=request.user)


def participant_list(request):
    need(request, "participant.view")
    q = request.GET.get("q", "")
    status = request.GET.get("status", "")
    sort = request.GET.get("sort", "number")
    if status not in states.LABELS:
        status = ""
    # the site column and filter when the trial has several sites (those of a user scoped to sites)
    sites = active_protocol().site_list
    mine = selectors.user_sites(request.user)
    choices = [(s.id, f"{s.id} · {s.name.get(get_language())}") for s in sites if mine is None or s.id in mine]
    site = request.GET.get("site", "")
    if site not in {code for code, _label in choices}:
        site = ""
    page = selectors.paginate(selectors.participant_list(user=request.user, q=q, status=status, sort=sort, site=site),
                              request.GET.get("page"))
    template = "participants/_table.html" if request.headers.get("HX-Request") else "participants/list.html"
    return render(request, template, {"page": page, "q": q, "status": status, "sort": sort,
                                      "statuses": states.CHOICES, "site": site,
                                      "sites": choices if len(sites) > 1 else []})


def prescreen(request):
    need(request, "participant.edit")
    protocol = active_protocol()
    sites = protocol.site_list
    mine = selectors.user_sites(request.user)
    if mine is not None:  # a user scoped to sites pre-screens at those only
        sites = [s for s in sites if s.id in mine] or sites
    form = PrescreenForm(request.POST or None, sources=protocol.recruitment_sources,
                         sites=sites if len(protocol.site_list) > 1 else (), language=get_language())
    if request.method == "POST" and form.is_valid():
        try:
            p = services.prescreen(actor=request.user, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Pre-screening recorded as %(n)s.") % {"n": p.screening_number})
            return redirect("participant", pk=p.pk)
    elif request.method == "POST":
        # the fields the form accepted may still break the service's rules: named beside the others
        _beside(form, services.prescreen_problems(actor=request.user, **form.cleaned_data))
    return render(request, "participants/form.html", {"form": form, "title": _("New pre-screening")})


def _shown(spec, value):
    """An evidence value as the page shows it: a choice in the page's language."""
    from annulus.choices import value_label

    return value_label(value) if spec.type == "choice" else value


def participant_detail(request, pk):
    p = _participant(request, pk)
    protocol = active_protocol()
    result, values = services.evaluate_participant(p)
    lang = get_language()
    criteria = [
        {"id": r.criterion.id, "box": r.box, "text": r.criterion.text.get(lang), "passed": r.passed,
         "values": {protocol.eligibility.field(f).label.get(lang): _shown(protocol.eligibility.field(f), values.get(f))
                    for f in r.criterion.fields}}
        for r in result.results
    ]
    decision = next((d for d in reversed(selectors.decisions_of(p.pk)) if not d.superseded), None)
    withdrawal = selectors.withdrawal_of(p.pk)
    return render(request, "participants/detail.html", {
        "p": p, "timeline": selectors.timeline(p), "criteria": criteria, "outcome": result.outcome,
        "decision": decision, "withdrawal": withdrawal, "consents": selectors.consents_of(p.pk),
        "can_edit": has(request.user, "participant.edit"),
        "next_steps": states.TRANSITIONS.get(p.status, set()),
        "panels": participant_panels(request, p),
        "can_audit": has(request.user, "audit.view"),
    })


def consent(request, pk):
    need(request, "participant.edit")
    p = _participant(request, pk)
    staff = get_user_model().objects.filter(membership__role__in=["investigator", "coordinator"], is_active=True)
    form = ConsentForm(request.POST or None, staff=staff,  # who took consent is chosen, never pre-selected
                       icf_versions=services.approved_icf_versions())
    if request.method == "POST" and form.is_valid():
        try:
            services.record_consent(actor=request.user, participant_id=p.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Consent recorded."))
            return redirect("participant", pk=p.pk)
    return render(request, "participants/form.html", {"form": form, "p": p, "title": _("Informed consent")})


def screening(request, pk):
    need(request, "participant.edit")
    p = _participant(request, pk)
    protocol = active_protocol()
    current = {f: e.value for f, e in services.current_evidence(p).items()}
    form = EvidenceForm(request.POST or None, protocol=protocol, language=get_language(), current=current)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                services.enter_evidence(actor=request.user, participant_id=p.pk, values=form.evidence_values(),
                                        collected_on=form.cleaned_data["collected_on"], reason=form.cleaned_data["reason"])
            messages.success(request, _("Screening evidence saved."))
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            # the decision is a step of its own: an investigator reads the outcome and signs it
            return redirect("eligibility_decision" if "decide" in request.POST else "participant", pk=p.pk)
    elif request.method == "POST":
        # a missing date does not hide a wrong value: each value's problem is named beside it
        _beside(form, services.evidence_problems(values=form.evidence_values(),
                                                 collected_on=form.cleaned_data.get("collected_on"),
                                                 reason=form.cleaned_data.get("reason", "")))
    return render(request, "participants/screening.html", {"form": form, "p": p, "title": _("Screening evidence")})


@never_cache
def eligibility_decision(request, pk):
    """The outcome evaluated from the evidence, signed by an investigator with their password."""
    need(request, "participant.edit")
    p = _participant(request, pk)
    form = SignatureForm(request.POST or None)
    if request.method == "POST":
        need(request, "participant.decide")
        if form.is_valid():
            try:
                d = services.decide_eligibility(actor=request.user, participant_id=p.pk,
                                                password=form.cleaned_data["password"])
            except RuleViolation as exc:
                add_violation(form, exc)
            except NotPermitted:
                raise PermissionDenied from None
            else:
                if d.outcome == "eligible":
                    messages.success(request, _("Eligible: every criterion is met."))
                else:
                    messages.warning(request, _("Screen failure: %(ids)s") % {"ids": ", ".join(d.failing)})
                return redirect("participant", pk=p.pk)
    result, _values = services.evaluate_participant(p)
    lang = get_language()
    return render(request, "participants/eligibility.html", {
        "p": p, "form": form, "outcome": result.outcome, "open": p.status == states.SCREENING,
        "failing": [(r.criterion.id, r.criterion.text.get(lang)) for r in result.failing],
        "missing": [(r.criterion.id, r.criterion.text.get(lang)) for r in result.undecided],
        "can_sign": has(request.user, "participant.decide"),
    })


def enrol(request, pk):
    need(request, "participant.enrol")
    p = _participant(request, pk)
    if request.method != "POST":
        return redirect("participant", pk=p.pk)
    if not confirmed(request):
        messages.error(request, _("Not enrolled") + ": " + confirm_missing())
        return redirect("participant", pk=p.pk)
    try:
        p = services.enrol(actor=request.user, participant_id=p.pk)
    except RuleViolation as exc:
        messages.error(request, _("Not enrolled") + f": {exc.message}")
    else:
        messages.success(request, _("Enrolled as case %(n)s.") % {"n": p.case_number})
    return redirect("participant", pk=p.pk)


def withdraw(request, pk):
    need(request, "participant.withdraw")
    p = _participant(request, pk)
    form = WithdrawForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.withdraw(actor=request.user, participant_id=p.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Withdrawal recorded. The participant will not be replaced."))
            return redirect("participant", pk=p.pk)
    return render(request, "participants/form.html", {"form": form, "p": p, "title": _("Withdraw participant")})


def audit_trail(request, pk):
    need(request, "audit.view")
    p = _participant(request, pk)
    from annulus.accounts.permissions import is_blinded
    from annulus.audit.present import present_trail
    from annulus.audit.selectors import events_for_participant

    action = request.GET.get("action", "")
    object_type = request.GET.get("type", "")
    actor = request.GET.get("actor", "")[:150]
    events = events_for_participant(p.pk, action=action, object_type=object_type, actor=actor)
    page = selectors.paginate(events, request.GET.get("page"), per_page=50)
    # a blinded reader sees each event's place in this trail, never the chain's global number
    blinded = is_blinded(request.user)
    rows = present_trail(page.object_list, p.pk, blinded=blinded)
    from annulus.audit.present import ACTION_NAMES, record_name

    types = sorted(((t, record_name(t)) for t in set(events_for_participant(p.pk).values_list("object_type", flat=True))),
                   key=lambda pair: pair[1])
    return render(request, "participants/audit.html", {"p": p, "page": page, "rows": rows, "action": action,
                                                        "type": object_type, "actor": actor, "types": types,
                                                        "actions": [(k, str(v)) for k, v in ACTION_NAMES.items()
                                                                    if k in ("create", "change", "void", "sign", "unblind")],
                                                        "show_ids": not blinded})


def record_locks(request, pk):
    """The locks of one participant's records (X-7.5): the padlock of the record named by
    ``visit``/``form`` (the casebook when both are empty), every lock ever set with who, when
    and why it was lifted, and for the data manager the lock/unlock form. The controls on the
    participant, visit and form pages post here; a refusal is shown on this page's form."""
    from django.utils.http import url_has_allowed_host_and_scheme

    from . import locks
    from .forms import RecordLockForm

    p = _participant(request, pk)
    source = request.POST if request.method == "POST" else request.GET
    visit, form_id = source.get("visit", "")[:20], source.get("form", "")[:40]
    form = RecordLockForm(request.POST or None, initial={"visit": visit, "form": form_id,
                                                        "action": "unlock" if locks.open_lock(p.pk, visit, form_id) else "lock"})
    if request.method == "POST":
        need(request, "record.lock")
        if form.is_valid():
            data = form.cleaned_data
            visit, form_id = data["visit"], data["form"]
            try:
                if data["action"] == "lock":
                    services.lock_record(actor=request.user, participant_id=p.pk, visit=visit, form=form_id)
                    messages.success(request, _("Locked: %(what)s.") % {"what": locks.record_name(visit, form_id)})
                else:
                    services.unlock_record(actor=request.user, participant_id=p.pk, visit=visit, form=form_id,
                                           reason=data["reason"])
                    messages.success(request, _("Unlocked: %(what)s.") % {"what": locks.record_name(visit, form_id)})
            except RuleViolation as exc:
                for v in getattr(exc, "violations", [exc]):
                    # "lock" (the lock in force, the open work) is the form's own subject: no prefix
                    form.add_error(v.field if v.field in form.fields else None,
                                   v.message if v.field in form.fields or v.field == "lock" else f"{v.field}: {v.message}")
            except NotPermitted:
                raise PermissionDenied from None
            else:
                target = request.POST.get("next", "")
                if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                       require_https=request.is_secure()):
                    target = ""
                return redirect(target or "participant", **({} if target else {"pk": p.pk}))
    try:
        locks.check_target(p.pk, visit, form_id)
        known = True
    except RuleViolation:
        known = False
    own = locks.open_lock(p.pk, visit, form_id) if known else None
    return render(request, "participants/record_lock.html", {
        "p": p, "form": form, "visit": visit, "form_id": form_id, "known": known, "own": own,
        "name": locks.record_name(visit, form_id) if known else f"{visit} {form_id}".strip(),
        "history": [{"lock": r, "name": locks.record_name(r.visit, r.form)} for r in selectors.lock_history(p.pk)],
        "can_lock": has(request.user, "record.lock"),
    })
