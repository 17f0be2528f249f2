from django import forms
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _

from annulus.choices import with_blank
from annulus.formdates import DateField, DateTimeField

from . import causality
from .models import (ACTIONS, CAUSALITY, EXPECTEDNESS, GRADES, OUTCOMES, PRODUCT_CAUSALITY, SERIOUS_CRITERIA,
                     DsmbRecommendation)


def _causality_text(name) -> str:
    return gettext("Causality: {}").format(name.get(get_language()))


#: "Causality: <the procedure>" in the language active when it is shown (``name``: the
#: protocol's ``Text``)
causality_label = lazy(_causality_text, str)


class AdverseEventForm(forms.Form):
    """Field types only; the service checks the rules and names the field that breaks one."""

    term = forms.CharField(label=_("Adverse event term (verbatim)"), max_length=200)
    meddra_pt_code = forms.CharField(label=_("MedDRA preferred-term code"), max_length=8, required=False,
                                     help_text=_("8 digits; coded from the licensed dictionary"))
    meddra_version = forms.CharField(label=_("MedDRA version"), max_length=10, required=False)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    onset_at = DateTimeField(label=_("Onset"))
    end_at = DateTimeField(label=_("End (resolution or death)"), required=False)
    serious = forms.TypedChoiceField(label=_("Serious (ICH E2A)"), coerce=lambda v: v == "yes",
                                     choices=with_blank([("no", _("no")), ("yes", _("yes"))]))
    serious_criteria = forms.MultipleChoiceField(label=_("Seriousness criteria"), required=False,
                                                 choices=SERIOUS_CRITERIA, widget=forms.CheckboxSelectMultiple)
    first_knowledge_at = DateTimeField(label=_("First knowledge of the serious event"), required=False,
                                       help_text=_("Starts the reporting clocks (12 h / 24 h or 2nd working day)"))
    grade = forms.TypedChoiceField(label=_("Severity grade (CTCAE)"), coerce=int, choices=with_blank(GRADES),
                                   empty_value=None)
    # then one causality per procedure the protocol names (``safety.causality_of``), added in
    # __init__ just before this one
    causality_product = forms.ChoiceField(label=_("Causality: study product"), choices=with_blank(CAUSALITY))
    expectedness = forms.ChoiceField(label=_("Expectedness"), choices=with_blank(EXPECTEDNESS))
    action_taken = forms.ChoiceField(label=_("Action taken"), choices=with_blank(ACTIONS))
    outcome = forms.ChoiceField(label=_("Outcome"), choices=with_blank(OUTCOMES))

    def __init__(self, *args, with_reason=False, protocol=None, **kwargs):
        super().__init__(*args, **kwargs)
        if protocol is None:
            from annulus.trial.selectors import active_protocol

            protocol = active_protocol()
        procedures = {c.field: forms.ChoiceField(label=causality_label(c.name), choices=with_blank(CAUSALITY))
                      for c in causality.items(protocol)}
        if procedures:
            ordered = {}
            for name, field in self.fields.items():
                if name == PRODUCT_CAUSALITY:
                    ordered.update(procedures)
                ordered[name] = field
            self.fields = ordered
        if with_reason:
            self.fields["reason"] = forms.CharField(label=_("Reason for the change (follow-up information, correction)"),
                                                    widget=forms.Textarea(attrs={"rows": 2}))

    def event_fields(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k != "reason"}


class TaskLinkForm(forms.Form):
    adverse_event_id = forms.ChoiceField(label=_("Adverse event already recorded"))

    def __init__(self, *args, events=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["adverse_event_id"].choices = with_blank([(str(e.pk), f"{e.label} {e.term}") for e in events])


class TaskDismissForm(forms.Form):
    reason = forms.CharField(label=_("Why this is not an adverse event"), max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))


class SentForm(forms.Form):
    sent_at = DateTimeField(label=_("Sent at"))
    sent_to = forms.CharField(label=_("Sent to (person)"), max_length=120)
    method = forms.ChoiceField(label=_("Method"), choices=with_blank([
        ("e-mail", _("e-mail")), ("fax", _("fax")), ("by hand", _("by hand")),
        ("phone then written", _("phone then written"))]))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sent_at"].initial = timezone.localtime().strftime("%Y-%m-%dT%H:%M")


class AckForm(forms.Form):
    acknowledged_at = DateTimeField(label=_("Acknowledged at"))
    acknowledged_by = forms.CharField(label=_("Acknowledged by (person)"), max_length=120)


class SafetyWithdrawForm(forms.Form):
    withdrawn_on = DateField(label=_("Withdrawal date"))
    details = forms.CharField(label=_("Reason and observations"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["withdrawn_on"].initial = timezone.localdate()


class GenerateForm(forms.Form):
    as_of = DateField(label=_("Data cut-off"))
    kind = forms.ChoiceField(label=_("Report"), choices=with_blank([("open", _("open (pooled)")),
                                                                    ("closed", _("closed (by arm)"))]))

    def __init__(self, *args, closed=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not closed:
            self.fields["kind"].choices = with_blank([("open", _("open (pooled)"))])
        self.fields["as_of"].initial = timezone.localdate()


class RecommendationForm(forms.Form):
    meeting_on = DateField(label=_("Meeting date"))
    as_of = DateField(label=_("Data cut-off reviewed"), required=False)
    decision = forms.ChoiceField(label=_("Recommendation"), choices=with_blank(DsmbRecommendation.DECISIONS))
    summary = forms.CharField(label=_("Recommendation to the investigators (open)"), widget=forms.Textarea(attrs={"rows": 4}))
    closed_notes = forms.CharField(label=_("Closed-session notes (DSMB only)"), required=False,
                                   widget=forms.Textarea(attrs={"rows": 3}))
