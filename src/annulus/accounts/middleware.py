from django.contrib.auth.views import redirect_to_login

OPEN_PREFIXES = ("/accounts/login", "/static/", "/i18n/", "/api/", "/healthz")


class LoginRequiredMiddleware:
    """Every page needs a login; the API authenticates on its own (session or token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(OPEN_PREFIXES):
            # the whole path with its query, URL-encoded, so the user comes back to the same view
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)
