from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [
        (reverse("allocation_designer"), _("Allocation list"), "allocation.level1"),
        (reverse("pharmacy"), _("Pharmacy"), "allocation.recipe"),
        (reverse("kit_list"), _("Kit list"), "allocation.kit_list"),
        (reverse("emergency_list"), _("Emergency unblindings"), "unblinding.emergency_list"),
        (reverse("unblinding"), _("Lock & unblinding"), "unblinding.view"),
    ]
