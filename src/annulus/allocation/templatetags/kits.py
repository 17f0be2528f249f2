"""``{% kit_panel p slot %}``: on the page of a dispensing visit of a kit trial, the kit to
dispense, for the roles that record the dispensing; a button allocates it."""

from django import template
from django.template.loader import render_to_string

from ..selectors import kit_for_visit

register = template.Library()


@register.simple_tag(takes_context=True)
def kit_panel(context, p, slot):
    request = context.get("request")
    visit = slot.record
    if request is None or visit is None or visit.outcome != "attended":
        return ""
    kit = kit_for_visit(request.user, p, slot.key)
    if kit is None:
        return ""
    return render_to_string("allocation/_kit_panel.html", {"p": p, "key": slot.key, "kit": kit, "next": "visit"},
                            request=request)
