from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [
        (reverse("monitoring_grid"), _("Monitoring"), "monitoring.view"),
        (reverse("monitoring_findings"), _("Review findings"), "review.view"),
    ]
