from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import get_language

from annulus.accounts.permissions import has

from .extensions import dashboard_panels
from .models import TrialState
from .selectors import active_protocol, active_version, trial_state


def dashboard(request):
    panels = sorted(dashboard_panels(request), key=lambda p: p.get("order", 100))
    pv = active_version()
    return render(request, "trial/dashboard.html", {"panels": panels, "pv": pv, "state": dict(TrialState.STATES).get(trial_state(), trial_state())})


def protocol_page(request):
    if not has(request.user, "protocol.view"):
        raise PermissionDenied
    protocol = active_protocol()
    blinded = not has(request.user, "allocation.recipe")
    return render(request, "trial/protocol.html", {"protocol": protocol, "pv": active_version(),
                                                   "lang": get_language(), "show_arms": not blinded})


def protocol_upload(request):
    """Load a protocol amendment: the uploaded YAML becomes a new version (administrator only).
    A file that is too large, not UTF-8 or not a valid protocol is refused with every problem
    named, and nothing is written."""
    from django import forms
    from django.contrib import messages
    from django.shortcuts import redirect
    from django.utils.translation import gettext as _

    from annulus.errors import RuleViolation
    from annulus.protocol import MAX_BYTES, ProtocolError, parse_protocol

    from .models import ProtocolVersion
    from .selectors import blind_changes_from_force
    from .services import load_protocol_version

    if not has(request.user, "protocol.manage"):
        raise PermissionDenied

    class UploadForm(forms.Form):
        file = forms.FileField(label=_("Protocol file (YAML, UTF-8, at most 1 MB)"))
        activate = forms.BooleanField(label=_("Put this version in force now"), required=False)
        # a version that changes the blind is put in force only with a PI's co-signature
        cosigner_username = forms.CharField(
            label=_("Co-signing principal investigator (user name)"), max_length=150, required=False,
            widget=forms.TextInput(attrs={"autocomplete": "off"}),
            help_text=_("Needed when the new version changes which roles are blinded or who holds a key of the "
                        "blind."))
        cosigner_password = forms.CharField(label=_("Co-signing principal investigator's password"), required=False,
                                            strip=False,
                                            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    problems: list[str] = []
    blind: list[str] = []
    refused = False
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            problems = [_("%(name)s: the file is %(size)s bytes; the limit is %(limit)s bytes")
                        % {"name": upload.name, "size": upload.size, "limit": MAX_BYTES}]
        else:
            raw = upload.read()
            try:
                protocol = parse_protocol(raw)
            except ProtocolError as exc:
                problems = exc.errors
            else:
                if form.cleaned_data["activate"]:
                    blind = blind_changes_from_force(protocol)  # the page says why a co-signature is needed
                before = set(ProtocolVersion.objects.values_list("pk", flat=True))
                try:
                    pv = load_protocol_version(actor=request.user, text=raw, activate=form.cleaned_data["activate"],
                                               cosigner_username=form.cleaned_data["cosigner_username"],
                                               cosigner_password=form.cleaned_data["cosigner_password"])
                except RuleViolation as exc:
                    if exc.field in form.fields:  # the co-signature: shown on its field, below the changes
                        form.add_error(exc.field, exc.message)
                        refused = True
                    else:
                        problems = [f"{exc.field}: {exc.message}"]
                else:
                    if pv.pk in before:
                        messages.info(request, _("This file is already loaded as version %(v)s; nothing changed.")
                                      % {"v": pv.version})
                    else:
                        messages.success(request, _("Protocol version %(v)s loaded.") % {"v": pv.version})
                    return redirect("protocol")
    versions = ProtocolVersion.objects.order_by("-loaded_at", "-id")
    status = 400 if problems or refused else 200
    return render(request, "trial/protocol_upload.html",
                  {"form": form, "problems": problems, "versions": versions, "blind": blind}, status=status)


def _error(request, code: int, message: str):
    from django.utils.translation import gettext as _

    titles = {400: _("Bad request"), 403: _("Access denied"), 404: _("Page not found"), 500: _("Server error")}
    return render(request, "error.html", {"code": code, "title": titles[code], "message": message}, status=code)


def error_400(request, exception=None):
    from django.utils.translation import gettext as _

    return _error(request, 400, _("The request could not be read; nothing was saved."))


def error_403(request, exception=None):
    from django.utils.translation import gettext as _

    return _error(request, 403, _("You do not have access to this page."))


def error_404(request, exception=None):
    from django.utils.translation import gettext as _

    return _error(request, 404, _("Page not found."))


def error_500(request):
    from django.http import HttpResponseServerError
    from django.utils.translation import gettext as _

    message = _("Something went wrong; nothing was saved.")
    try:
        return _error(request, 500, message)
    except Exception:  # noqa: BLE001 - the page itself failed (the database gone): a page without it
        from annulus.site.dblost import plain_page

        return HttpResponseServerError(plain_page(request, 500, _("Server error"), message))


def csrf_failure(request, reason=""):
    """A form sent without its page's token (an old tab, cookies off): said in the page's language."""
    from django.utils.translation import gettext as _

    return _error(request, 403, _("The form could not be accepted: it was sent from an old or another page, or "
                                  "cookies are off. Open the page again and send the form from there."))


def notifications(request):
    from django.shortcuts import redirect

    from .models import Notification
    from .services import mark_read

    if request.method == "POST":
        mark_read(user=request.user, key=request.POST.get("read", ""))
        return redirect("notifications")
    rows = Notification.objects.filter(user=request.user)[:200]
    return render(request, "trial/notifications.html", {"rows": rows})
