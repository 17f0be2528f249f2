"""The protocol version in force is read once per request, and a page's repeated reads of one
participant's records once per GET or HEAD request (``annulus.trial.selectors.per_request``)."""

from __future__ import annotations

from .selectors import per_request


class ProtocolPerRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with per_request(reads=request.method in ("GET", "HEAD")):
            return self.get_response(request)
