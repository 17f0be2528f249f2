from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [
        (reverse("dashboard"), _("Dashboard"), "dashboard.view"),
        (reverse("participants"), _("Participants"), "participant.view"),
        (reverse("protocol"), _("Protocol"), "protocol.view"),
        (reverse("data_dictionary"), _("Data dictionary"), "protocol.view"),
    ]
