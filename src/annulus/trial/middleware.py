"""The protocol version in force is read once per request (``annulus.trial.selectors.per_request``)."""

from __future__ import annotations

from .selectors import per_request


class ProtocolPerRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with per_request():
            return self.get_response(request)
