"""``{% selfentry_panel p slot %}``: the visit page's section on the participant's own questionnaires."""

from django import template
from django.template.loader import render_to_string

from annulus.accounts.permissions import has

from ..selectors import PATIENT_FORMS, links_of_visit

register = template.Library()


@register.simple_tag(takes_context=True)
def selfentry_panel(context, p, slot):
    request = context.get("request")
    visit = slot.record
    if request is None or visit is None or not any(f in visit.forms for f in PATIENT_FORMS):
        return ""
    if not has(request.user, "visits.view"):
        return ""
    return render_to_string("selfentry/_visit_panel.html", {
        "p": p, "slot": slot, "rows": links_of_visit(visit),
        "can_issue": has(request.user, "visits.edit") and context.get("can_edit", False)}, request=request)
