from .extensions import nav_items


def navigation(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav_items": []}
    from .models import Notification

    unread = Notification.objects.filter(user=request.user, read_at__isnull=True).count()
    return {"nav_items": nav_items(request), "unread_notifications": unread}
