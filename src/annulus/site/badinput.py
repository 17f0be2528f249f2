"""Bad input is a clear 4xx naming the field, never a server error.

One check for every request, page and API alike: a NUL character (``\\x00``) in the URL path,
a query parameter, a form field or a JSON value is refused with 400 naming where it is (no
database accepts it in text, and no person types it). A rule violation that a page view lets
escape is shown as a 400 page naming its field instead of a 500 page.
"""

from __future__ import annotations

import json
import re

from django.http import JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

from annulus.errors import RuleViolation

NUL = "\x00"
# a JSON string escape for NUL: an odd number of backslashes before u0000
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.I)


def _json_path(value, path: str = "") -> str | None:
    if isinstance(value, str):
        return (path or "body") if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return here.replace(NUL, "\\0")
            found = _json_path(item, here)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _json_path(item, f"{path}[{i}]" if path else f"[{i}]")
            if found:
                return found
    return None


def _nul_field(request) -> str | None:
    """The name of the first part of the request that holds a NUL character, or None."""
    if NUL in request.path_info:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "path"
        return next((name for name, value in match.kwargs.items() if NUL in str(value)), "path")
    sources = [request.GET]
    if request.method == "POST" and not _is_json(request):
        sources.append(request.POST)
    for source in sources:
        for key, values in source.lists():
            if NUL in key or any(NUL in v for v in values):
                return key.replace(NUL, "\\0")
    if _is_json(request) and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = request.body
        if b"\x00" in body:
            return "body"
        if _JSON_NUL.search(body):
            try:
                return _json_path(json.loads(body)) or "body"
            except ValueError:
                return "body"
    return None


def _is_json(request) -> bool:
    return request.content_type == "application/json"


def refuse(request, detail: list[dict], status: int = 400):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail}, status=status)
    lines = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in detail)
    return render(request, "error.html", {"code": status, "message": lines}, status=status)


class BadInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        field = _nul_field(request)
        if field is not None:
            return refuse(request, [{"field": field, "message": _("must not contain a NUL character (\\0)")}])
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, RuleViolation) and not request.path.startswith("/api/"):
            every = getattr(exception, "violations", [exception])
            return refuse(request, [v.as_dict() for v in every], status=exception.status)
        return None
