"""Thin views: check the capability first (so a blinded user gets the same refusal whether an id
exists or not), call the service or selector, show the result or the error it names."""

from __future__ import annotations

import hashlib

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache

from annulus.accounts.permissions import has, need, role_of
from annulus.confirm import confirmed
from annulus.confirm import missing as confirm_missing
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.selectors import participant_or_404
from annulus.randomisation.documents import HOLDERS, allocation_table_name, sha256_hex
from annulus.trial.models import TrialState
from annulus.trial.selectors import active_protocol, trial_state

from . import selectors, services
from annulus.participants.forms import add_violation

from .forms import (EmergencyForm, GenerateForm, GroupWaiverForm, PasswordStatementForm, ReleaseForm, TransplantForm,
                    VerifyForm, WaiverForm)


def _participant(request, pk):
    return participant_or_404(pk, user=request.user)


# ---- designer: the list and the level-1 key ------------------------------------------------

def _documents(lst):
    """name -> (bytes, content type) of the documents the level-1 key holder hands out."""
    docs = services.document_bytes(lst)
    out = {}
    for holder in HOLDERS:
        name = allocation_table_name(holder)
        out[name] = docs["table"]
        out[f"{name}.sha256"] = f"{sha256_hex(docs['table'])}  {name}\n".encode()
    out["level1-key.csv"] = docs["level1"]
    out["level1-key.csv.sha256"] = f"{sha256_hex(docs['level1'])}  level1-key.csv\n".encode()
    return out


@never_cache
def designer(request):
    need(request, "allocation.level1")
    form = GenerateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.generate_list(actor=request.user, seed=form.cleaned_data["seed"] or None)
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            messages.success(request, _("Allocation list generated and sealed."))
            return redirect("allocation_designer")
    summary = selectors.list_summary(request.user)
    problems = services.seal_problems(summary["list"]) if summary else []
    documents = []
    if summary:
        docs = _documents(summary["list"])
        documents = [(name, sha256_hex(data)) for name, data in docs.items() if not name.endswith(".sha256")]
    return render(request, "allocation/designer.html", {
        "form": form, "summary": summary, "problems": problems, "documents": documents,
        "rows": selectors.level1_rows(request.user), "verify_form": VerifyForm(),
        "method": active_protocol().randomisation.method,
    })


@never_cache
def designer_document(request, name):
    need(request, "allocation.level1")
    lst = selectors.current_list()
    docs = _documents(lst) if lst else {}
    if name not in docs:
        raise Http404
    services.record_export(actor=request.user, lst=lst, document=name)
    resp = HttpResponse(docs[name], content_type="text/plain; charset=utf-8" if name.endswith(".sha256") else "text/csv")
    resp["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


def designer_verify(request):
    need(request, "allocation.level1")
    if request.method != "POST":
        return redirect("allocation_designer")
    form = VerifyForm(request.POST, request.FILES)
    lst = selectors.current_list()
    if not form.is_valid() or lst is None:
        messages.error(request, _("Choose a file to check."))
        return redirect("allocation_designer")
    upload = form.cleaned_data["file"]
    data = upload.read(2_000_000)
    digest = sha256_hex(data)
    known = {lst.table_sha256: _("allocation table"), lst.level1_sha256: _("level-1 key")}
    if digest in known:
        messages.success(request, _("%(file)s matches the sealed %(what)s (SHA-256 %(d)s).")
                         % {"file": upload.name, "what": known[digest], "d": digest})
    else:
        messages.error(request, _("%(file)s: checksum fails (SHA-256 %(d)s); this copy was changed.")
                       % {"file": upload.name, "d": digest})
    return redirect("allocation_designer")


# ---- randomising on the participant page -----------------------------------------------------

def randomise(request, pk):
    need(request, "allocation.randomise")
    p = _participant(request, pk)
    if request.method != "POST":
        return redirect("participant", pk=p.pk)
    if not confirmed(request):
        messages.error(request, _("Not randomised") + ": " + confirm_missing())
        return redirect("participant", pk=p.pk)
    try:
        env = services.randomise(actor=request.user, participant_id=p.pk)
    except RuleViolation as exc:
        messages.error(request, _("Not randomised") + f": {exc.field}: {exc.message}")
    else:
        messages.success(request, _("Randomised: random number %(n)s, drug code %(c)s.")
                         % {"n": env.random_number, "c": env.drug_code})
    return redirect("participant", pk=p.pk)


def transplant(request, pk):
    need(request, "allocation.transplant")
    p = _participant(request, pk)
    product = active_protocol().product
    if product.kind != "cell_suspension":
        raise Http404  # a kit trial's treatment is recorded on its visit's form, not transplanted
    form = TransplantForm(request.POST or None, product=product)
    if request.method == "POST" and form.is_valid():
        try:
            services.record_transplant(actor=request.user, participant_id=p.pk, **form.cleaned_data)
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("Transplantation recorded."))
            return redirect("participant", pk=p.pk)
    return render(request, "allocation/form.html", {"form": form, "p": p, "title": _("Transplantation record")})


# ---- emergency unblinding ------------------------------------------------------------------

@never_cache
def emergency(request, pk):
    need(request, "unblinding.emergency")
    p = _participant(request, pk)
    # a second unblinding by the same person within 24 hours needs a PI's co-signature: say so
    # and show the fields; before dispensing there is nothing to unblind, and the page says that
    recent = selectors.recent_emergency_unblindings(request.user)
    dispensed = selectors.product_given(p.pk)
    form = EmergencyForm(request.POST or None, cosign=bool(recent))
    if request.method == "POST" and form.is_valid():
        try:
            rec, arm = services.emergency_unblind(actor=request.user, participant_id=p.pk,
                                                  password=form.cleaned_data["password"],
                                                  reason=form.cleaned_data["reason"],
                                                  cosigner_username=form.cleaned_data.get("cosigner_username", ""),
                                                  cosigner_password=form.cleaned_data.get("cosigner_password", ""))
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            arm_obj = active_protocol().arm(arm)
            # shown once, in this response only; the record keeps who, when, why and scope
            return render(request, "allocation/emergency_result.html", {
                "p": p, "rec": rec, "arm": arm_obj, "arm_name": arm_obj.name.get(get_language())})
    return render(request, "allocation/emergency.html", {
        "form": form, "p": p, "recent": recent, "dispensed": dispensed,
        "cosign_hours": selectors.EMERGENCY_COSIGN_HOURS})


def emergency_list(request):
    need(request, "unblinding.emergency_list")
    return render(request, "allocation/emergency_list.html", {"rows": selectors.emergency_list(request.user)})


def emergency_record(request, record_id):
    need(request, "unblinding.emergency_list")
    rec = next((r for r in selectors.emergency_list(request.user) if r.pk == record_id), None)
    if rec is None:
        raise Http404
    return render(request, "allocation/emergency_record.html", {"rec": rec})


# ---- database lock and the two levels --------------------------------------------------------

STEP_ACTIONS = {
    "lock": (services.sign_lock, "unblinding.lock"),
    "level1": (services.release_level1, "unblinding.level1_release"),
    "signoff": (services.sign_off_analysis, "unblinding.signoff"),
    "level2": (services.release_level2, "unblinding.level2_release"),
}


def _waive(request):
    """The principal investigator waives one open item of the pre-lock checklist: the bound form,
    or a redirect when the waiver is recorded."""
    if not services._is_pi(request.user):
        raise PermissionDenied
    several = request.POST.get("action") == "waive_group"
    form = GroupWaiverForm(request.POST) if several else WaiverForm(request.POST)
    if form.is_valid():
        try:
            if several:
                done = services.waive_lock_items(actor=request.user, items=request.POST.getlist("item"),
                                                 reason=form.cleaned_data["reason"])
            else:
                done = [services.waive_lock_item(actor=request.user, item=form.cleaned_data["item"],
                                                 reason=form.cleaned_data["reason"])]
        except RuleViolation as exc:
            add_violation(form, exc)
        except NotPermitted:
            raise PermissionDenied from None
        else:
            if several:
                messages.success(request, ngettext("%(n)s item waived; each waiver is kept with the reason.",
                                                   "%(n)s items waived; each waiver is kept with the reason.",
                                                   len(done)) % {"n": len(done)})
            else:
                messages.success(request, _("Item waived; the waiver is kept with its reason."))
            return redirect(request.get_full_path())
    return form


@never_cache
def unblinding(request):
    need(request, "unblinding.view")
    waive_form = None
    if request.method == "POST" and request.POST.get("action") in ("waive", "waive_group"):
        waive_form = _waive(request)
        if not isinstance(waive_form, (WaiverForm, GroupWaiverForm)):
            return waive_form
    form = PasswordStatementForm(request.POST if request.method == "POST" and waive_form is None else None)
    if request.method == "POST" and waive_form is None:
        action = request.POST.get("action", "")
        if action not in STEP_ACTIONS or not has(request.user, STEP_ACTIONS[action][1]):
            raise PermissionDenied
        if form.is_valid():
            fn = STEP_ACTIONS[action][0]
            try:
                fn(actor=request.user, password=form.cleaned_data["password"], statement=form.cleaned_data["statement"])
            except RuleViolation as exc:
                add_violation(form, exc)
            except NotPermitted:
                raise PermissionDenied from None
            else:
                messages.success(request, _("Signed."))
                return redirect("unblinding")
    state = trial_state()
    steps = selectors.unblinding_steps()
    user = request.user
    is_pi = bool(getattr(getattr(user, "membership", None), "is_principal_investigator", False))
    role = role_of(user)
    can = {
        "lock": state in services.OPEN_STATES and (
            (role == "statistician" and "lock_statistician" not in steps) or
            (role == "investigator" and is_pi and "lock_pi" not in steps)),
        "level1": state == "locked" and has(user, "unblinding.level1_release"),
        "signoff": state == "unblinded_1" and has(user, "unblinding.signoff") and "analysis_signoff" not in steps,
        "level2": state == "unblinded_1" and "analysis_signoff" in steps and has(user, "unblinding.level2_release"),
    }
    action = next((a for a, ok in can.items() if ok), None)
    labels = selectors.level1_rows(user) if selectors.can_see_labels(user) and role != "designer" else None
    arms = selectors.unblinded_rows(user) if labels is not None and selectors.can_see_arms(user) else None
    # the checklist before the lock; after it, read-only for the record (every group and each waiver
    # with who, when and why), with waiver forms only while an item that appeared since is open in
    # the locked state (first-level unblinding waits for it)
    checklist = selectors.lock_checklist(request.user)
    after_lock = state not in services.OPEN_STATES
    if after_lock:
        _add_closed_waivers(checklist)
    shown = _checklist_view(request, checklist, waive_form)
    blocked = bool(checklist and checklist["blocking"] and action in ("lock", "level1"))
    return render(request, "allocation/unblinding.html", {
        "state": state, "state_label": dict(TrialState.STATES).get(state, state), "steps": [(k, label, steps.get(k)) for k, label in services.UnblindingStep.KINDS],
        "form": form, "action": action, "labels": labels, "arms": arms, "blocked": blocked,
        "checklist": checklist, "shown": shown, "after_lock": after_lock,
        "can_waive": services._is_pi(user) and (state in services.OPEN_STATES or state == "locked"),
        "waive_form": waive_form,
        "waive_item": waive_form.data.get("item") if isinstance(waive_form, WaiverForm) else None,
        "waive_group": waive_form.data.get("group") if isinstance(waive_form, GroupWaiverForm) else None,
        "first_blocking": checklist["blocking"][0] if blocked else None,
    })


def _add_closed_waivers(checklist) -> None:
    """After the lock: the waived lines whose work has since been closed (so the live checklist no
    longer lists them) join their group as waived lines, with the label they had when waived, so
    every waiver stays on the page."""
    from .models import LockWaiver

    listed = set(checklist["items"])
    groups = {g["group"]: g for g in checklist["groups"]}
    for w in LockWaiver.objects.select_related("waived_by").order_by("id"):
        if w.item in listed or w.group not in groups:
            continue
        item = {"key": w.item, "label": w.label, "link": "", "waiver": w}
        groups[w.group]["items"].append(item)
        checklist["items"][w.item] = item


CHECKLIST_SHOW = ("", "open", "waived")
# a group opens on the page when it has open items, up to this many (longer ones open on a click)
OPEN_UP_TO = 25
# lines a group shows at most (a waiver form each); the filter finds the others
LINES_PER_GROUP = 100


def _checklist_view(request, checklist, waive_form) -> dict:
    """The groups as the page shows them: counts, a status colour, and the lines the filter keeps
    (text ``q`` in the label, ``show`` open or waived); the counts always cover every item."""
    q = (request.GET.get("q") or "").strip()
    show = request.GET.get("show", "")
    show = show if show in CHECKLIST_SHOW else ""
    filtering = bool(q or show)
    waive_key = waive_form.data.get("item") if isinstance(waive_form, WaiverForm) else None
    waive_group = waive_form.data.get("group") if isinstance(waive_form, GroupWaiverForm) else None
    groups = []
    for g in checklist["groups"]:
        total, open_ = len(g["items"]), g["open"]
        lines = [i for i in g["items"]
                 if (not q or q.casefold() in str(i["label"]).casefold())
                 and (show != "open" or i["waiver"] is None) and (show != "waived" or i["waiver"] is not None)]
        matching = len(lines)
        lines = lines[:LINES_PER_GROUP]
        css = "bad" if open_ else ("warn" if total else "ok")
        expanded = (filtering and bool(lines)) or (0 < open_ <= OPEN_UP_TO) or any(i["key"] == waive_key for i in lines) or g["group"] == waive_group
        groups.append({**g, "total": total, "waived": total - open_, "lines": lines, "css": css,
                       "expanded": expanded, "shown_of": matching, "more": matching - len(lines),
                       "open_lines": [i["key"] for i in lines if i["waiver"] is None]})
    return {"groups": groups, "q": q, "show": show, "filtering": filtering,
            "total": sum(g["total"] for g in groups), "open": len(checklist["blocking"])}


# ---- pharmacy ------------------------------------------------------------------------------

def _need_level2(request, capability: str) -> None:
    """The role's capability and the level-2 key (a blinded role holding the capability by its id,
    as the kit trial's pharmacist, is refused)."""
    need(request, capability)
    if not selectors.holds_key(request.user, 2):
        raise PermissionDenied


@never_cache
def pharmacy(request):
    _need_level2(request, "allocation.recipe")
    return render(request, "allocation/pharmacy.html", {"rows": selectors.pharmacy_rows(request.user),
                                                        "level2": selectors.level2_key(request.user)})


def _pharmacy_envelope(request, envelope_id, capability="allocation.recipe"):
    _need_level2(request, capability)
    data = selectors.envelope_for_pharmacy(request.user, envelope_id)
    if data is None:
        raise Http404
    return data


@never_cache
def envelope(request, envelope_id):
    data = _pharmacy_envelope(request, envelope_id)
    protocol = active_protocol()
    quarantine = any(not r.passed for r in data["releases"])
    form = ReleaseForm(request.POST or None, criteria=protocol.product.release_criteria, language=get_language(),
                       quarantine=quarantine)
    if request.method == "POST":
        need(request, "allocation.release")
        if form.is_valid():
            try:
                rel = services.record_release(actor=request.user, envelope_id=envelope_id,
                                              lot_number=form.cleaned_data["lot_number"],
                                              tested_on=form.cleaned_data["tested_on"], results=form.results(),
                                              **form.quarantine_fields())
            except RuleViolation as exc:
                add_violation(form, exc)
            else:
                if rel.passed:
                    messages.success(request, _("Release checks recorded: lot %(lot)s passed.") % {"lot": rel.lot_number})
                else:
                    messages.error(request, _("Release checks recorded: lot %(lot)s FAILED (%(failing)s). The lot is "
                                              "quarantined and cannot be dispensed.")
                                   % {"lot": rel.lot_number, "failing": ", ".join(rel.failing)})
                return redirect("pharmacy_envelope", envelope_id=envelope_id)
    criteria = {c.id: c for c in protocol.product.release_criteria}
    return render(request, "allocation/envelope.html", {**data, "form": form, "criteria": criteria,
                                                        "lang": get_language()})


def dispense(request, envelope_id):
    data = _pharmacy_envelope(request, envelope_id, "allocation.dispense")
    if request.method == "POST" and not confirmed(request):
        messages.error(request, _("Not dispensed") + ": " + confirm_missing())
    elif request.method == "POST":
        try:
            services.dispense(actor=request.user, envelope_id=data["envelope"].pk)
        except RuleViolation as exc:
            messages.error(request, _("Not dispensed") + f": {exc.field}: {exc.message}")
        else:
            messages.success(request, _("Dispensed."))
    return redirect("pharmacy_envelope", envelope_id=envelope_id)


def _html_or_pdf(request, template: str, ctx: dict, filename: str):
    """The page as HTML, or with ``?format=pdf`` as a PDF (WeasyPrint) of the same HTML."""
    if request.GET.get("format") != "pdf":
        return render(request, template, ctx)
    try:
        from weasyprint import HTML
    except ImportError:
        raise Http404 from None
    html = render_to_string(template, ctx, request=request)
    pdf = HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf()
    resp = HttpResponse(pdf, content_type="application/pdf")
    resp["Content-Disposition"] = f'inline; filename="{filename}"'
    return resp


def sachet_label(request, envelope_id):
    """The sachet label, in English and Chinese: drug code, participant number, lot and expiry,
    and fixed text; nothing on it differs between arms."""
    from datetime import timedelta

    from django.utils import timezone

    data = _pharmacy_envelope(request, envelope_id, "allocation.dispense")
    protocol = active_protocol()
    env, dispensing = data["envelope"], data["dispensing"]
    release = dispensing.release if dispensing else None
    expiry = None
    if dispensing:
        expiry = timezone.localtime(dispensing.dispensed_at + timedelta(hours=protocol.product.shelf_life_hours))
    ctx = {"e": env, "protocol": protocol, "dispensing": dispensing,
           "case_number": env.participant.case_number or env.random_number,
           "lot": release.lot_number if release else "", "expiry": expiry,
           "tz": protocol.trial.timezone}
    # the file name carries the drug code only, like the sachet
    return _html_or_pdf(request, "allocation/label.html", ctx, f"sachet-label-{env.drug_code}.pdf")


def emergency_contact(protocol) -> str:
    """The 24-hour contact printed on every emergency letter: the protocol's, else the setting."""
    from django.conf import settings

    c = protocol.trial.emergency_contact
    if c is not None:
        return f"{c.name.en} / {c.name.zh}, {c.phone}"
    return getattr(settings, "ANNULUS_EMERGENCY_CONTACT", "") or ""


def letter(request, envelope_id):
    """The sealed emergency letter for one participant, in English and Chinese: that
    participant's treatment only, and whom to call day and night."""
    from annulus.notation import scientific

    data = _pharmacy_envelope(request, envelope_id, "allocation.letters")
    protocol = active_protocol()
    cells = protocol.product.concentration_cells_per_ml
    concentration = scientific(f"{cells / 10**6:g}x10^6 cells/mL" if cells >= 10**6 else f"{cells} cells/mL")
    ctx = {"e": data["envelope"], "arm": data["arm"], "protocol": protocol, "lang": get_language(),
           "contact": emergency_contact(protocol), "concentration": concentration}
    # the file name carries the drug code only, like the sachet
    return _html_or_pdf(request, "allocation/letter.html", ctx, f"emergency-letter-{data['envelope'].drug_code}.pdf")


def level2_document(request):
    _need_level2(request, "allocation.level2")
    lst = selectors.current_list()
    if lst is None:
        raise Http404
    data = services.document_bytes(lst)["level2"]
    services.record_export(actor=request.user, lst=lst, document="level2-key.csv")
    resp = HttpResponse(data, content_type="text/csv")
    resp["Content-Disposition"] = 'attachment; filename="level2-key.csv"'
    resp["X-Content-SHA256"] = hashlib.sha256(data).hexdigest()
    return resp


# ---- kits of a kit product ------------------------------------------------------------------

def _kit_list(request):
    if not services.is_kit_product(active_protocol()):
        raise Http404  # a trial whose product is not in kits has no kit list
    need(request, "allocation.kit_list")
    try:
        return selectors.kit_list(request.user)
    except NotPermitted:
        raise PermissionDenied from None


@never_cache
def kit_list(request):
    """The kit list for labelling, for the supply manager (level-2 key holder)."""
    data = _kit_list(request)
    return render(request, "allocation/kits.html", {"data": data})


KIT_CSV_COLUMNS = ("serial_number", "kit_number", "group_label", "arm", "contents_en", "contents_zh", "allocated")


@never_cache
def kit_list_csv(request):
    """The kit list as CSV for the labels: both languages' kit contents; audited as an export."""
    import csv
    import io

    data = _kit_list(request)
    if data is None:
        raise Http404
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(KIT_CSV_COLUMNS)
    for r in data["rows"]:
        contents = r["contents"]
        writer.writerow([r["serial"], r["kit_number"], r["group_label"], r["arm"],
                         contents.en if contents else "", contents.zh if contents else "",
                         "yes" if r["allocated"] else "no"])
    body = buf.getvalue().encode("utf-8")
    services.record_export(actor=request.user, lst=data["list"], document="kit-list.csv")
    resp = HttpResponse(body, content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="kit-list.csv"'
    return resp


def allocate_kit(request, pk, key):
    """The kit to dispense at a dispensing visit, for the roles that record it (the procedure's
    ``recorded_by``); POST allocates it (``services.assign_kit``). Only the number is shown."""
    if not selectors.may_allocate_kit(request.user, key):
        raise PermissionDenied
    p = _participant(request, pk)
    if request.method == "POST":
        try:
            kit = services.assign_kit(actor=request.user, participant_id=p.pk, visit_key=key)
        except RuleViolation as exc:
            messages.error(request, _("No kit allocated") + f": {exc.field}: {exc.message}")
        else:
            messages.success(request, _("Kit %(kit)s allocated: dispense this kit.") % {"kit": kit.kit_number})
        back = request.POST.get("next", "")
        if back == "visit" and has(request.user, "visits.view"):
            return redirect("visit", pk=p.pk, key=key)
        return redirect("allocate_kit", pk=p.pk, key=key)
    protocol = active_protocol()
    visit = next((v for v in protocol.schedule.visits if v.id == key), None)
    # once the visit is recorded: its dispensing record, which this role records, and the visit
    from annulus.visits.procedures import may_save, record_procedure
    from annulus.visits.selectors import get_visit

    recorded = visit is not None and get_visit(p.pk, key) is not None
    record_form = next((f for f in (visit.forms if recorded else [])
                        if (proc := record_procedure(protocol, f)) is not None and "dispensing" in proc.checks
                        and may_save(request.user, protocol, f)), None)
    return render(request, "allocation/kit.html", {
        "p": p, "key": key, "visit": visit, "kit": selectors.kit_for_visit(request.user, p, key),
        "record_form": record_form, "visit_link": recorded and has(request.user, "visits.view")})
