from django import forms
from django.utils.translation import gettext_lazy as _

from annulus.choices import with_blank

from .models import ASSIGNEES
from .services import MAX_TEXT


class RaiseForm(forms.Form):
    """Field types only; the service checks the target against the data dictionary and the
    participant's records and names the field that is wrong."""

    participant = forms.IntegerField(label=_("Participant (record number)"), widget=forms.HiddenInput)
    visit = forms.CharField(label=_("Visit"), required=False, max_length=20, widget=forms.HiddenInput)
    form = forms.CharField(label=_("Form"), required=False, max_length=40, widget=forms.HiddenInput)
    record = forms.IntegerField(label=_("Record"), required=False, min_value=0, widget=forms.HiddenInput)
    item = forms.CharField(label=_("Item"), required=False, max_length=60, widget=forms.Select)
    assigned_to = forms.ChoiceField(label=_("To be answered by"), choices=with_blank(ASSIGNEES))
    text = forms.CharField(label=_("Question"), max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, items=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].widget.choices = [("", _("— the whole form or visit —"))] + list(items)


class StepForm(forms.Form):
    text = forms.CharField(label=_("Text"), max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, label=None, **kwargs):
        super().__init__(*args, **kwargs)
        if label:
            self.fields["text"].label = label
