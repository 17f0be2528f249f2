"""Web forms. They only carry the answers; the service does the checking and names the field."""

from datetime import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annulus.choices import with_blank
from annulus.formdates import DateField, DateTimeField
from annulus.labels import with_unit
from annulus.widgets import ISO_DATETIME, DateInput, DateTimeInput

from .models import Liposuction, ReminderCall


class LiposuctionForm(forms.Form):
    performed_on = DateField(label=_("Liposuction date (day 0)"))
    fat_volume_ml = forms.CharField(label=_("Subcutaneous fat harvested (mL, protocol: 150)"),
                                    widget=forms.NumberInput(attrs={"step": "any"}))
    anaesthesia = forms.ChoiceField(label=_("Anaesthesia"), choices=with_blank(Liposuction.ANAESTHESIA))
    observation_hours = forms.CharField(label=_("Observation before discharge (hours, protocol: 4)"),
                                        widget=forms.NumberInput(attrs={"step": "any"}))
    complications = forms.CharField(label=_("Complications (empty if none)"), required=False,
                                    widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(label=_("Reason for correction (required when changing a saved record)"), required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["performed_on"].initial = timezone.localdate()


class OpenVisitForm(forms.Form):
    visit_date = DateField(label=_("Visit date"))


class CorrectDateForm(forms.Form):
    visit_date = DateField(label=_("Correct visit date"))
    reason = forms.CharField(label=_("Reason for the correction"), max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))


class BookForm(forms.Form):
    on = DateField(label=_("Book the visit for"))


class MissedForm(forms.Form):
    reason = forms.CharField(label=_("Why the visit was missed"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class UnscheduledForm(forms.Form):
    visit_date = DateField(label=_("Visit date"))
    reason = forms.CharField(label=_("Reason for the unscheduled visit"), max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))
    forms = forms.MultipleChoiceField(label=_("Forms to collect"), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["forms"].choices = choices
        self.fields["visit_date"].initial = timezone.localdate()


class ReminderForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Call outcome"), choices=with_blank(ReminderCall.OUTCOMES))
    note = forms.CharField(label=_("Note"), required=False, max_length=2000)


# choices longer than this are statements, shown in full as radio buttons rather than in a list
STATEMENT_LENGTH = 40


class StatementRadios(forms.RadioSelect):
    """One radio button per statement; "not answered" is offered but never ticked by itself."""

    def format_value(self, value):
        return [] if value in (None, "") else super().format_value(value)


class CrfForm(forms.Form):
    """Built from the form's item list (crf.FormSpec); labels in the page's language."""

    collected_at = DateTimeField(label=_("Collected at"), required=False)
    reason = forms.CharField(label=_("Reason for change (required once the form is complete)"), required=False,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, spec=None, language="en", current=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.item_ids = []
        self.item_names = {item.id: item.en for item in spec.items}  # as the services name them in messages
        current = current or {}
        for item in spec.items:
            label = item.label(language)
            if item.kind == "number":
                attrs = {"step": "any", "inputmode": "decimal"}
                if item.min is not None:
                    attrs["min"] = item.min
                if item.max is not None:
                    attrs["max"] = item.max
                f = forms.CharField(label=with_unit(label, item.unit, language), required=False,
                                    widget=forms.TextInput(attrs=attrs))
            elif item.kind in ("code", "choice"):
                zh = (language or "").startswith("zh")
                choices = [(v, zh_label if zh else en) for v, en, zh_label in item.choices if v != ""]
                if any(len(en) > STATEMENT_LENGTH for _v, en, _zh in item.choices):
                    # statements (ODI) are read in full, as on the paper form: one radio button each
                    f = forms.ChoiceField(label=label, required=False, widget=StatementRadios,
                                          choices=choices + [("", _("not answered"))])
                else:
                    f = forms.ChoiceField(label=label, required=False, choices=[("", "—")] + choices)
            elif item.kind == "date":
                f = forms.CharField(label=label, required=False, widget=DateInput)
            elif item.kind == "datetime":
                f = forms.CharField(label=label, required=False, widget=DateTimeInput)
            elif item.id in spec.extra.get("short", ()):
                f = forms.CharField(label=label, required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))
            elif item.id.endswith("__unit"):
                f = forms.CharField(label=label, required=False, initial=item.unit,
                                    widget=forms.TextInput(attrs={"size": 8, "class": "unit"}))
            else:
                f = forms.CharField(label=label, required=False, widget=forms.Textarea(attrs={"rows": 2}))
            if item.id in current:
                f.initial = str(current[item.id])
                if item.kind == "datetime":
                    # the picker shows the local time without its offset
                    f.initial = timezone.localtime(datetime.fromisoformat(f.initial)).strftime(ISO_DATETIME)
            self.fields[item.id] = f
            self.item_ids.append(item.id)

    def items(self) -> dict:
        # add_prefix: on the visit entry page each form's inputs are named "<form id>-<item>"
        values = {k: self.data.get(self.add_prefix(k), "") for k in self.item_ids}
        return {k: v for k, v in values.items() if v != ""}

    def has_answers(self) -> bool:
        """Anything typed besides the units, which come pre-filled with the protocol's."""
        return any(not k.endswith("__unit") for k in self.items())


class VisitEntryForm(forms.Form):
    """The fields shared by every form of the visit entry page."""

    collected_at = DateTimeField(label=_("Collected at"), required=False)
