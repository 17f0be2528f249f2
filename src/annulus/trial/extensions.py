"""How apps add to shared pages without editing them.

An app may have ``nav.py`` with ``items(request) -> list[(url, label, capability)]`` and
``dashboard.py`` with ``panels(request) -> list[dict(template=..., **context)]``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from django.apps import apps


@lru_cache(maxsize=None)  # a handful of module names, each looked up once
def app_modules(name: str) -> tuple:
    """Each annulus app's module ``name`` (e.g. ``"nav"``), for the apps that have one, in app order."""
    found = []
    for config in apps.get_app_configs():
        if not config.name.startswith("annulus."):
            continue
        try:
            found.append(importlib.import_module(f"{config.name}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.{name}":
                raise
    return tuple(found)


def nav_items(request) -> list[tuple[str, str]]:
    from annulus.accounts.permissions import has

    out = []
    for module in app_modules("nav"):
        for url, label, capability in module.items(request):
            if capability is None or has(request.user, capability):
                out.append((url, label))
    return out


def dashboard_panels(request) -> list[dict]:
    out = []
    for module in app_modules("dashboard"):
        out.extend(module.panels(request))
    return out


def participant_panels(request, participant) -> list[dict]:
    """Sections other apps add to the participant page (allocation, visits, safety)."""
    out = []
    for module in app_modules("participant_panels"):
        out.extend(module.panels(request, participant))
    return sorted(out, key=lambda p: p.get("order", 100))


def timeline_events(participant) -> list[dict]:
    """Dated milestones other apps add to the participant's journey (``timeline.py``)."""
    out = []
    for module in app_modules("timeline"):
        out.extend(module.events(participant))
    return out


def lock_checklist_groups() -> list[dict]:
    """The open work each app lists before the database lock (``lock_checklist.py``: ``GROUP``,
    ``TITLE``, ``ORDER`` and ``open_items() -> [{key, label, link}]``, or ``GROUPS``, a list of
    dicts with those keys in lower case)."""
    groups = []
    for m in app_modules("lock_checklist"):
        # a module lists one group (GROUP, TITLE, ORDER, open_items) or several (GROUPS: a list of
        # dicts with those keys, lower-case)
        for g in getattr(m, "GROUPS", None) or [{"group": m.GROUP, "title": m.TITLE,
                                                 "order": getattr(m, "ORDER", 100), "open_items": m.open_items}]:
            groups.append((g.get("order", 100), {"group": g["group"], "title": g["title"], "items": g["open_items"]()}))
    return [g for _, g in sorted(groups, key=lambda pair: pair[0])]


def audit_labels(object_type: str, body: dict, language: str, cache: dict | None = None) -> dict:
    """Readable names for an audit event's fields and values, from the apps' ``audit_labels.py``
    (``labels(object_type, body, language, cache) -> dict or None``; the first answer counts)."""
    cache = {} if cache is None else cache
    for module in app_modules("audit_labels"):
        found = module.labels(object_type, body, language, cache)
        if found:
            return found
    return {}
