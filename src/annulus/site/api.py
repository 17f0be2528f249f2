"""The REST API under /api/v1/ (django-ninja). Each app contributes a router from its ``api.py``.

Authentication: the browser session (with CSRF) or a per-user token, ``Authorization: Bearer ann_...``.
Errors are JSON naming the field: ``{"detail": [{"field": "...", "message": "..."}]}``.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from annulus.accounts.services import token_expired, user_for_token
from annulus.errors import NotPermitted, RuleViolation

log = logging.getLogger("annulus.api")


class TokenAuth(HttpBearer):
    """``Authorization: Bearer ann_...``. A request that carries a bearer token is judged by the
    token alone: a wrong token is refused (401) even with a valid session cookie, and no CSRF token
    is asked for (a browser never adds this header to a cross-site request by itself)."""

    def __call__(self, request):
        if not request.headers.get(self.header, "").lower().startswith(self.openapi_scheme):
            return None  # no token: the session decides
        user = super().__call__(request)
        if not user:
            if getattr(request, "_annulus_token_expired", False):
                raise TokenExpired()
            raise AuthenticationError()
        return user

    def authenticate(self, request, token):
        user = user_for_token(token)
        if user is not None:
            request.user = user
        else:
            request._annulus_token_expired = token_expired(token)
        return user


class TokenExpired(AuthenticationError):
    """A token that was issued and not revoked, past its expiry date: 401, saying so."""


class BrowserSessionAuth(SessionAuth):
    """The browser's session cookie, with Django's CSRF check on unsafe methods. Anonymous
    requests are refused with 401 before any CSRF check."""

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


def login_required_docs(view):
    """The interactive docs and the OpenAPI document need a login like every other call: the
    session, or a bearer token (judged alone, as in TokenAuth). Anonymous: the docs page sends the
    browser to the login page, the document answers 401."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            user = TokenAuth()(request)
        except AuthenticationError:
            user = None
        else:
            user = user or (request.user if request.user.is_authenticated else None)
        if user is None:
            if request.path.rstrip("/").endswith("/docs"):
                return redirect_to_login(request.get_full_path())
            return JsonResponse({"detail": [{"field": "", "message": "authentication required"}]}, status=401)
        return view(request, *args, **kwargs)

    return wrapped


api = NinjaAPI(
    title="Annulus API",
    version="1",
    urls_namespace="api",
    auth=[TokenAuth(), BrowserSessionAuth()],  # the token first: see TokenAuth
    docs=Swagger(settings={"validatorUrl": None}),  # no call to the online validator
    docs_url="/docs",
    openapi_url="/openapi.json",
    docs_decorator=login_required_docs,
)


def _field_of(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload", "form")]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    detail = [{"field": _field_of(e.get("loc", ())), "message": e.get("msg", "invalid").removeprefix("Value error, ")}
              for e in exc.errors]
    return api.create_response(request, {"detail": detail}, status=422)


@api.exception_handler(RuleViolation)
def on_rule_violation(request, exc: RuleViolation):
    every = getattr(exc, "violations", [exc])
    return api.create_response(request, {"detail": [v.as_dict() for v in every]}, status=exc.status)


@api.exception_handler(NotPermitted)
def on_not_permitted(request, exc):
    return api.create_response(request, {"detail": [{"field": "", "message": "not permitted for your role"}]}, status=403)


@api.exception_handler(Http404)
def on_404(request, exc):
    return api.create_response(request, {"detail": [{"field": "", "message": "not found"}]}, status=404)


@api.exception_handler(AuthenticationError)
def on_auth(request, exc):
    if isinstance(exc, TokenExpired):
        return api.create_response(
            request, {"detail": [{"field": "authorization", "message": "the token has expired"}]}, status=401)
    return api.create_response(request, {"detail": [{"field": "", "message": "authentication required"}]}, status=401)


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    return api.create_response(request, {"detail": [{"field": "", "message": str(exc)}]}, status=exc.status_code)


def _mount():
    import importlib

    from django.apps import apps

    for config in apps.get_app_configs():
        if not config.name.startswith("annulus."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.api")
        except ModuleNotFoundError as exc:
            if exc.name == f"{config.name}.api":
                continue
            raise
        api.add_router(module.PREFIX, module.router)
        for prefix, router in getattr(module, "EXTRA_ROUTERS", ()):  # an app's further routers
            api.add_router(prefix, router)


_mount()
