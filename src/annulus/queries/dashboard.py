from django.db.models import Count

from annulus.accounts.permissions import has, role_of
from annulus.participants.selectors import scoped

from .models import ANSWERED, OPEN, SITE_ROLES, Query


def panels(request):
    if not has(request.user, "queries.view"):
        return []
    counts = {(a, s): n for a, s, n in scoped(request.user, Query.objects).filter(status__in=(OPEN, ANSWERED))
              .values_list("assigned_to", "status").annotate(n=Count("id")).order_by()}
    role = role_of(request.user)
    mine = ("site", role) if role in SITE_ROLES else (role,)
    return [{"template": "queries/_dashboard_panel.html", "order": 32,
             "open": sum(n for (a, s), n in counts.items() if s == OPEN),
             "answered": sum(n for (a, s), n in counts.items() if s == ANSWERED),
             "mine": sum(n for (a, s), n in counts.items() if s == OPEN and a in mine),
             "mine_filter": role if role not in SITE_ROLES else ""}]
