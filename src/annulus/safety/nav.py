from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [
        (reverse("safety"), _("Safety"), "safety.view"),
        (reverse("safety_dsmb"), _("DSMB"), "dsmb.open"),
    ]
