from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annulus.widgets import DateInput, DateTimeInput


class GenerateForm(forms.Form):
    seed = forms.CharField(label=_("Seed (leave empty to draw a 63-bit random seed)"), required=False, max_length=20)


class VerifyForm(forms.Form):
    file = forms.FileField(label=_("Allocation table or key file (CSV) to check"))


class PasswordStatementForm(forms.Form):
    statement = forms.CharField(label=_("Statement"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    password = forms.CharField(label=_("Your password (signature)"), widget=forms.PasswordInput, strip=False)


class EmergencyForm(forms.Form):
    reason = forms.CharField(label=_("Emergency and why the treatment must be known"),
                             widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, required=False)
    password = forms.CharField(label=_("Your password (re-enter to confirm)"), widget=forms.PasswordInput,
                               strip=False, required=False)


class TransplantForm(forms.Form):
    transplanted_at = forms.DateTimeField(label=_("Injected at"),
                                          widget=DateTimeInput())
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
            self.fields["disc_level"].initial = product.target_level
            self.fields["needle_gauge"].initial = product.needle_gauge
            self.fields["approach"].initial = product.approach
            self.fields["imaging"].initial = product.imaging_guidance
            self.fields["volume_ml"].initial = product.injection_volume_ml


class ReleaseForm(forms.Form):
    """Built from protocol.product.release_criteria; the service does the real checking."""

    lot_number = forms.CharField(label=_("ADMSC lot number"), max_length=40)
    tested_on = forms.DateField(label=_("Tested on"), widget=DateInput())

    def __init__(self, *args, criteria=(), language="en", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tested_on"].initial = timezone.localdate()
        self.criteria_fields = []
        for c in criteria:
            name = f"results.{c.id}"
            bound = {"equals": f"= {c.value}", "min": f"≥ {c.min:g}" if c.min is not None else "",
                     "max": f"≤ {c.max:g}" if c.max is not None else "",
                     "range": f"{c.min:g}–{c.max:g}" if c.min is not None and c.max is not None else "",
                     "negative": _("negative"), "normal": _("normal")}[c.kind]
            label = f"{c.label.get(language)} ({bound}{' ' + c.unit if c.unit else ''})"
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

    def results(self) -> dict:
        return {cid: self.data.get(name, "") for cid, name in self.criteria_fields}
