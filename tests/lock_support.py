"""Helpers shared by the database-lock tests (no tests here)."""

from __future__ import annotations

from tests.conftest import TEST_PASSWORD

STATEMENT = "All CRFs checked and signed; queries closed."
WAIVE_REASON = "Closed on paper; entered after the lock is not possible, accepted by the PI."


def waive_open_items(users) -> int:
    """The principal investigator waives every open item of the pre-lock checklist."""
    from annulus.allocation import selectors, services

    items = selectors.lock_checklist()["blocking"]
    for item in items:
        services.waive_lock_item(actor=users["pi"], item=item["key"], reason=WAIVE_REASON)
    return len(items)


def sign_lock(users, *, waive: bool = True) -> None:
    """Both signatures of the database lock, waiving the open items first."""
    from annulus.allocation import services

    if waive:
        waive_open_items(users)
    services.sign_lock(actor=users["pi"], password=TEST_PASSWORD, statement=STATEMENT)
    services.sign_lock(actor=users["statistician"], password=TEST_PASSWORD, statement=STATEMENT)


def audit_head() -> tuple:
    from annulus.audit.models import AuditHead

    head = AuditHead.objects.filter(id=1).first()
    return (head.count, head.last_hash) if head else (0, "")


def row_counts() -> dict:
    """Rows of every model of the annulus apps."""
    from django.apps import apps

    return {m._meta.label: m.objects.count() for m in apps.get_models()
            if m.__module__.startswith("annulus.")}
