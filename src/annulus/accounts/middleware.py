from django.conf import settings
from django.shortcuts import redirect

OPEN_PREFIXES = ("/accounts/login", "/static/", "/i18n/", "/api/", "/healthz")


class LoginRequiredMiddleware:
    """Every page needs a login; the API authenticates on its own (session or token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(OPEN_PREFIXES):
            return redirect(f"{settings.LOGIN_URL and '/accounts/login/'}?next={request.path}")
        return self.get_response(request)
