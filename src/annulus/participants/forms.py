from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annulus.choices import value_label, with_blank
from annulus.formdates import DateField, DateTimeField
from annulus.labels import with_unit

from .models import SOURCE_LABELS, Withdrawal


class PrescreenForm(forms.Form):
    initials = forms.CharField(label=_("Initials"), max_length=10)
    full_name = forms.CharField(label=_("Full name (for the call list)"), max_length=120, required=False)
    sex = forms.ChoiceField(label=_("Sex"), choices=with_blank([("F", _("female")), ("M", _("male"))]))
    phone = forms.CharField(label=_("Phone"), max_length=40, required=False)
    recruitment_source = forms.ChoiceField(label=_("Recruitment source"))
    prescreened_on = DateField(label=_("Pre-screening date"))

    def __init__(self, *args, sources=(), sites=(), language="en", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["recruitment_source"].choices = with_blank([(s, SOURCE_LABELS.get(s, s)) for s in sources])
        if sites:  # with one site there is nothing to choose: the service sets it
            self.fields["site"] = forms.ChoiceField(
                label=_("Site"), choices=with_blank([(s.id, f"{s.id} · {s.name.get(language)}") for s in sites]))
            self.order_fields(["site"])
        self.fields["prescreened_on"].initial = timezone.localdate()


class ConsentForm(forms.Form):
    consent_version = forms.CharField(label=_("Consent form version"), max_length=40)
    consented_at = DateTimeField(label=_("Signed at"))
    taken_by = forms.ModelChoiceField(label=_("Consent taken by"), queryset=None)

    def __init__(self, *args, staff=None, icf_versions=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["taken_by"].queryset = staff
        if icf_versions is not None:
            # one of the versions the ethics committee approved, chosen, never pre-selected
            self.fields["consent_version"] = forms.ChoiceField(
                label=_("Consent form version"),
                choices=with_blank([(v.version, _("%(version)s (ethics approval %(date)s)") % {
                    "version": v.version, "date": v.approved_on.isoformat()}) for v in icf_versions]),
                help_text=_("Versions approved by the ethics committee; the version must have been approved "
                            "on or before the day the form was signed."))


YES_NO = [("", "—"), ("true", _("yes")), ("false", _("no"))]


class EvidenceForm(forms.Form):
    """Built from the protocol's evidence fields; the service does the real checking."""

    collected_on = DateField(label=_("Collected on"))
    reason = forms.CharField(label=_("Reason for change (required when correcting a value)"), required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, protocol=None, language="en", current=None, **kwargs):
        super().__init__(*args, **kwargs)
        current = current or {}
        self.evidence_fields = []
        # as services name them, in the language of the page
        self.item_names = {spec.id: spec.label.get(language) for spec in protocol.eligibility.fields}
        for spec in protocol.eligibility.fields:
            label = spec.label.get(language)
            label = with_unit(label, spec.unit, language)  # "VAS pain (0-100 mm)" already names its unit
            if spec.type == "date":
                f = DateField(label=label, required=False)
            elif spec.type in ("integer", "decimal"):
                attrs = {"step": "1" if spec.type == "integer" else "any"}
                if spec.min is not None:
                    attrs["min"] = spec.min
                if spec.max is not None:
                    attrs["max"] = spec.max
                f = forms.CharField(label=label, required=False, widget=forms.NumberInput(attrs=attrs))
            elif spec.type == "boolean":
                f = forms.ChoiceField(label=label, required=False, choices=YES_NO)
            elif spec.type == "choice":
                f = forms.ChoiceField(label=label, required=False, choices=[("", "—")] + [(c, value_label(c)) for c in spec.choices])
            else:
                f = forms.CharField(label=label, required=False, max_length=2000)
            value = current.get(spec.id)
            if value is not None:
                f.initial = {True: "true", False: "false"}.get(value, value) if spec.type == "boolean" else value
            self.fields[spec.id] = f
            self.evidence_fields.append(spec.id)
        self.fields["collected_on"].initial = timezone.localdate()

    def evidence_values(self) -> dict:
        out = {}
        for name in self.evidence_fields:
            raw = self.data.get(name, "")
            if raw not in ("", None):
                out[name] = raw
        return out


class WithdrawForm(forms.Form):
    withdrawn_on = DateField(label=_("Withdrawal date"))
    category = forms.ChoiceField(label=_("Reason category"), choices=with_blank(Withdrawal.CATEGORIES))
    details = forms.CharField(label=_("Reason and observations"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["withdrawn_on"].initial = timezone.localdate()


class SignatureForm(forms.Form):
    """An electronic signature: the signer re-enters their password (checked by the service)."""

    password = forms.CharField(label=_("Your password (electronic signature)"), required=False, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


def add_violation(form: forms.Form, exc) -> None:
    """Show a service's RuleViolation on the field it names (or above the form); every one of
    them when the service found several (``RuleViolations``)."""
    for v in getattr(exc, "violations", [exc]):
        field = v.field if v.field in form.fields else None
        form.add_error(field, field_message(form, field, v.message) if field else f"{v.field}: {v.message}")


def field_message(form: forms.Form, field: str, message: str) -> str:
    """A service's message shown under its field. The page puts the field's label before it, so a
    message that begins with the item's own name ("VAS pain (0-100 mm) must be at most 100 mm",
    in Chinese followed by no space) loses that name rather than show it twice."""
    for name in (getattr(form, "item_names", {}).get(field), str(form.fields[field].label or "")):
        if name and message.startswith(name):
            rest = message[len(name):]
            if rest.startswith(" "):  # English: "... must be at most 100 mm"
                return rest[1:]
            if rest and "\u4e00" <= rest[0] <= "\u9fff":  # Chinese: "...不得大于100 mm"
                return rest
    return message


class RecordLockForm(forms.Form):
    """Lock or unlock a casebook, a visit or a form (X-7.5): the record is named by ``visit`` and
    ``form`` (both empty: the casebook); an unlock needs the reason."""

    action = forms.ChoiceField(choices=[("lock", _("Lock")), ("unlock", _("Unlock"))], widget=forms.HiddenInput)
    visit = forms.CharField(max_length=20, required=False, widget=forms.HiddenInput)
    form = forms.CharField(max_length=40, required=False, widget=forms.HiddenInput)
    reason = forms.CharField(label=_("Reason for unlocking"), max_length=2000, required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))
