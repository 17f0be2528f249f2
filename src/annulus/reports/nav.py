from django.urls import reverse
from django.utils.translation import gettext_lazy as _


def items(request):
    return [(reverse("reports"), _("Report"), "report.build")]
