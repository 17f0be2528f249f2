from django.contrib.auth.views import redirect_to_login

# "/p/": the pages where a participant answers their own questionnaires through a one-time link
OPEN_PREFIXES = ("/accounts/login", "/static/", "/i18n/", "/api/", "/healthz", "/p/")


class LoginRequiredMiddleware:
    """Every page needs a login; the API authenticates on its own (session or token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(OPEN_PREFIXES):
            # the whole path with its query, URL-encoded, so the user comes back to the same view
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)


# what a user whose password the administrator reset may still reach before changing it
PASSWORD_CHANGE_OPEN = ("/accounts/password/", "/accounts/logout/", "/accounts/login/", "/static/", "/i18n/",
                        "/healthz")


def must_change_password(user) -> bool:
    """Whether ``user`` logged in with a password the administrator set (``services.reset_password``)
    and has not yet chosen their own."""
    if not getattr(user, "is_authenticated", False):
        return False
    membership = getattr(user, "membership", None)  # none for an account without a role
    return bool(membership and membership.must_change_password)


class PasswordChangeRequiredMiddleware:
    """After the administrator's reset, the user's session leads only to the password change (and
    logging out, the language, static files) until they have chosen their own password: every
    other page sends them there, and an API call made with the session is refused (403). API
    tokens are judged alone: the reset revoked every one of them, and no new one can be made
    before the change (the tokens page is a page)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if not path.startswith(PASSWORD_CHANGE_OPEN) and must_change_password(request.user):
            if path.startswith("/api/"):
                if not request.headers.get("Authorization", "").lower().startswith("bearer "):
                    from django.http import JsonResponse

                    return JsonResponse({"detail": [{"field": "password", "message":
                                                     "the administrator reset your password: change it on the "
                                                     "password page first"}]}, status=403)
            else:
                from django.shortcuts import redirect

                return redirect("password_change")
        return self.get_response(request)


SESSION_SEEN = "_seen"  # when the session's expiry was last moved (seconds since the epoch)


class SessionIdleMiddleware:
    """The idle timeout slides with use: a logged-in session's expiry is moved to
    ``SESSION_COOKIE_AGE`` from now when it was last moved ``SESSION_REFRESH_SECONDS`` ago or more,
    not on every request (``SESSION_SAVE_EVERY_REQUEST`` would write the session row on every page
    read). The session then ends between ``SESSION_COOKIE_AGE - SESSION_REFRESH_SECONDS`` and
    ``SESSION_COOKIE_AGE`` after the last request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import time

        from django.conf import settings

        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and session.session_key and not session.is_empty():
            now = int(time.time())
            seen = session.get(SESSION_SEEN)
            if not isinstance(seen, int) or now - seen >= settings.SESSION_REFRESH_SECONDS:
                session[SESSION_SEEN] = now  # modified: SessionMiddleware saves it with a new expiry
        return response
