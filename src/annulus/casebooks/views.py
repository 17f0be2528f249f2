"""The casebook page (read-only content, signature block, sign form) and its printable PDF."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l

from annulus.accounts.permissions import need
from annulus.confirm import confirmed
from annulus.confirm import missing as confirm_missing
from annulus.errors import NotPermitted, RuleViolation, RuleViolations
from annulus.participants.forms import add_violation
from annulus.participants.selectors import participant_or_404

from . import present, selectors, services


class SignForm(forms.Form):
    """21 CFR 11.200: both components of the signature (user name and password) at signing."""

    username = forms.CharField(label=_l("Your user name"), required=False, max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(label=_l("Your password (electronic signature)"), required=False, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    content_hash = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)


def context(request, p) -> dict:
    status = selectors.status_of(p)
    return {"p": p, "status": status, "sections": present.sections(status["content"]),
            "changes": present.change_lines(status["changes"]), "eligibility": selectors.eligibility_signature(p),
            "meaning": selectors.MEANING, "printed_at": timezone.now(), "language": get_language()}


def casebook(request, pk):
    need(request, "casebook.view")
    p = participant_or_404(pk, user=request.user)
    can_sign = services.may_sign(request.user)
    form = SignForm(request.POST or None)
    if request.method == "POST":
        need(request, "casebook.sign")
        if not confirmed(request):
            # every problem at once, without checking the password while "I confirm" is missing
            form.is_valid()
            form.add_error(None, confirm_missing())
            found = services.signer_problems(request.user, form.cleaned_data.get("username", ""),
                                             form.cleaned_data.get("password", ""))
            if found:
                add_violation(form, RuleViolations(found))
        elif form.is_valid():
            try:
                services.sign_casebook(actor=request.user, participant_id=p.pk,
                                       username=form.cleaned_data["username"], password=form.cleaned_data["password"],
                                       content_hash=form.cleaned_data["content_hash"])
            except RuleViolation as exc:
                add_violation(form, exc)
            except NotPermitted:
                raise PermissionDenied from None
            else:
                messages.success(request, _("Casebook signed."))
                return redirect("casebook", pk=p.pk)
    ctx = context(request, p)
    if request.GET.get("format") == "pdf":
        return _pdf(request, p, ctx)
    ctx.update({"form": form, "can_sign": can_sign})
    if request.method == "GET":
        form.initial["content_hash"] = ctx["status"]["content_hash"]
    else:
        form.data = form.data.copy()
        form.data["content_hash"] = ctx["status"]["content_hash"]
    return render(request, "casebooks/casebook.html", ctx, status=400 if form.errors else 200)


def _pdf(request, p, ctx) -> HttpResponse:
    from weasyprint import HTML

    from annulus.safety.reports import _page_footer

    ctx["page_footer"] = _page_footer()
    html = render_to_string("casebooks/print.html", ctx, request=request)
    pdf = HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf()
    resp = HttpResponse(pdf, content_type="application/pdf")
    resp["Content-Disposition"] = f'inline; filename="casebook-{p.case_number or p.screening_number}.pdf"'
    return resp
