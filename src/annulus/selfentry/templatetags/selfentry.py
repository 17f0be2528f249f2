"""``{% selfentry_panel p slot %}``: the visit page's section on the participant's own questionnaires."""

from django import template
from django.template.loader import render_to_string

from annulus.accounts.permissions import has

from annulus.trial.selectors import active_protocol, protocol_for

from ..selectors import links_of, patient_forms

register = template.Library()


@register.simple_tag(takes_context=True)
def selfentry_panel(context, p, slot):
    request = context.get("request")
    visit = slot.record
    forms = visit.forms if visit is not None else ([] if slot.procedure else slot.forms)
    protocol = protocol_for(visit.protocol_version) if visit is not None else active_protocol()
    if request is None or not patient_forms(protocol, forms):
        return ""
    if visit is not None and visit.outcome != "attended":
        return ""
    if not has(request.user, "visits.view"):
        return ""
    return render_to_string("selfentry/_visit_panel.html", {
        "p": p, "slot": slot, "rows": links_of(p.pk, slot.key),
        "can_issue": has(request.user, "visits.edit") and context.get("can_edit", False)}, request=request)
