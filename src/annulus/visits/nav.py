from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [
        (reverse("call_list"), _("Call list"), "visits.remind"),
        (reverse("visits_overdue"), _("Overdue"), "visits.view"),
    ]
