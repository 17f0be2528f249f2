"""Content-Security-Policy for every HTML response.

Scripts come only from this site's static files (htmx, annulus.js, Swagger UI's bundle): no inline
script, no event-handler attribute, no eval. A ``<style>`` element must carry the nonce of its
response (``{{ csp_nonce }}`` in templates); style attributes are allowed, as they cannot run
script and many pages size bars and columns with them. Nothing may frame a page, and forms post
only to this site. ``ANNULUS_CSP=0`` turns the header off (for a proxy that sets its own).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.utils.functional import SimpleLazyObject

HEADER = "Content-Security-Policy"


def policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' 'nonce-{nonce}'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce_value = nonce
        response = self.get_response(request)
        if getattr(settings, "ANNULUS_CSP", True) and HEADER not in response:
            response[HEADER] = policy(nonce)
        return response


def nonce(request) -> dict:
    """Template context: ``csp_nonce``, the nonce for this response's ``<style>`` elements (empty
    when the page is rendered outside a request, e.g. into a PDF)."""
    return {"csp_nonce": SimpleLazyObject(lambda: getattr(request, "csp_nonce_value", ""))}


DOCUMENT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                   "form-action 'none'; frame-ancestors 'none'")


def stored_document(response):
    """A report stored as a finished HTML document (rendered when it was built, so its ``<style>``
    carries no nonce): its own styles, its embedded plots, and nothing else, no script at all."""
    response[HEADER] = DOCUMENT_POLICY
    return response
