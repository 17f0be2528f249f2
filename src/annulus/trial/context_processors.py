from .extensions import nav_items


def navigation(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav_items": []}
    from annulus.accounts.middleware import must_change_password

    if must_change_password(request.user):  # every page leads to the password change until it is made
        return {"nav_items": [], "unread_notifications": 0}
    from .models import Notification

    unread = Notification.objects.filter(user=request.user, read_at__isnull=True).count()
    return {"nav_items": nav_items(request), "unread_notifications": unread}
