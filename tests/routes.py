"""The site's URL routes, read from Django's resolver, for the tests that request every page."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver


def url_routes(patterns=None, prefix: str = ""):
    """Every route of the URL configuration as its pattern text (``participants/<int:pk>/``)."""
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            yield from url_routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)
