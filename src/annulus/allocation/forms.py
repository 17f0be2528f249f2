from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annulus.formdates import DateField, DateTimeField
from annulus.notation import scientific


class GenerateForm(forms.Form):
    seed = forms.CharField(label=_("Seed (leave empty to draw a 63-bit random seed)"), required=False, max_length=20)


class VerifyForm(forms.Form):
    file = forms.FileField(label=_("Allocation table or key file (CSV) to check"))


class PasswordStatementForm(forms.Form):
    statement = forms.CharField(label=_("Statement"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    password = forms.CharField(label=_("Your password (signature)"), widget=forms.PasswordInput, strip=False)
    # every step of the lock and unblinding is irreversible: the signer ticks the box, and the
    # server refuses the step without it
    confirm = forms.BooleanField(label=_("I confirm this signature; the step cannot be undone"))


class EmergencyForm(forms.Form):
    reason = forms.CharField(label=_("Emergency and why the treatment must be known"),
                             widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, required=False)
    password = forms.CharField(label=_("Your password (re-enter to confirm)"), widget=forms.PasswordInput,
                               strip=False, required=False)
    # shown only when needed: a second emergency unblinding by the same person within 24 hours
    cosigner_username = forms.CharField(
        label=_("Co-signing principal investigator (user name)"), max_length=150, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}))
    cosigner_password = forms.CharField(label=_("Co-signing principal investigator's password"), required=False,
                                        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, cosign=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not cosign:
            del self.fields["cosigner_username"], self.fields["cosigner_password"]


class TransplantForm(forms.Form):
    transplanted_at = DateTimeField(label=_("Injected at"))
    drug_code = forms.CharField(label=_("Drug code (scan or type from the sachet)"), max_length=20, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}))
    disc_level = forms.CharField(label=_("Disc level"), max_length=10)
    needle_gauge = forms.IntegerField(label=_("Spinal needle (G)"))
    approach = forms.CharField(label=_("Approach"), max_length=40)
    imaging = forms.CharField(label=_("Imaging guidance"), max_length=40)
    volume_ml = forms.DecimalField(label=_("Volume injected (mL)"), max_digits=4, decimal_places=2)
    activity_restriction_explained = forms.BooleanField(
        label=_("Activity restriction for 2 weeks explained to the participant"), required=False)
    notes = forms.CharField(label=_("Notes"), widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def __init__(self, *args, product=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["transplanted_at"].initial = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
        if product is not None:
            # what was done is typed, never pre-filled; the protocol's value is shown beside it
            protocol_values = {"disc_level": product.target_level, "needle_gauge": product.needle_gauge,
                               "approach": product.approach, "imaging": product.imaging_guidance,
                               "volume_ml": f"{product.injection_volume_ml:g}"}
            for name, value in protocol_values.items():
                self.fields[name].help_text = _("protocol: %(value)s") % {"value": value}


class ReleaseForm(forms.Form):
    """Built from protocol.product.release_criteria; the service does the real checking."""

    lot_number = forms.CharField(label=_("ADMSC lot number"), max_length=40)
    tested_on = DateField(label=_("Tested on"))

    def __init__(self, *args, criteria=(), language="en", quarantine=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tested_on"].initial = timezone.localdate()
        self.criteria_fields = []
        for c in criteria:
            name = f"results.{c.id}"
            bound = {"equals": f"= {c.value}", "min": f"≥ {c.min:g}" if c.min is not None else "",
                     "max": f"≤ {c.max:g}" if c.max is not None else "",
                     "range": f"{c.min:g}–{c.max:g}" if c.min is not None and c.max is not None else "",
                     "negative": _("negative"), "normal": _("normal")}[c.kind]
            label = scientific(f"{c.label.get(language)} ({bound}{' ' + c.unit if c.unit else ''})")  # 10⁶
            if c.kind == "negative":
                f = forms.ChoiceField(label=label, choices=[("", "—"), ("negative", _("negative")),
                                                            ("positive", _("positive"))], required=False)
            elif c.kind == "normal":
                f = forms.ChoiceField(label=label, choices=[("", "—"), ("normal", _("normal")),
                                                            ("abnormal", _("abnormal"))], required=False)
            else:
                f = forms.CharField(label=label, required=False, widget=forms.NumberInput(attrs={"step": "any"}))
            self.fields[name] = f
            self.criteria_fields.append((c.id, name))

        if quarantine:
            # a failed lot is quarantined: its new record needs a reason and a second pharmacist (QA)
            self.fields["reason"] = forms.CharField(
                label=_("Reason for testing a failed lot again"), required=False, max_length=2000,
                widget=forms.Textarea(attrs={"rows": 2}),
                help_text=_("Only for the same lot number as a failed release; a new lot needs no reason."))
            self.fields["qa_username"] = forms.CharField(
                label=_("Second pharmacist (QA): user name"), required=False, max_length=150,
                widget=forms.TextInput(attrs={"autocomplete": "off"}))
            self.fields["qa_password"] = forms.CharField(
                label=_("Second pharmacist (QA): password"), required=False, strip=False,
                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def results(self) -> dict:
        return {cid: self.data.get(name, "") for cid, name in self.criteria_fields}

    def quarantine_fields(self) -> dict:
        return {k: self.cleaned_data.get(k) or "" for k in ("reason", "qa_username", "qa_password") if k in self.fields}


class GroupWaiverForm(forms.Form):
    """The principal investigator waives the open lines a group shows, with one reason."""

    group = forms.CharField(widget=forms.HiddenInput, max_length=40)
    reason = forms.CharField(label=_("Reason for waiving these items"), min_length=10, max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))


class WaiverForm(forms.Form):
    """The principal investigator waives one open item of the pre-lock checklist."""

    item = forms.CharField(label=_("Checklist item"), widget=forms.HiddenInput, max_length=60)
    reason = forms.CharField(label=_("Reason for waiving this item"), min_length=10, max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))
