"""The database lock: one guard that every write of trial data calls.

Once the principal investigator and the statistician have signed the lock (trial state
``locked`` and later), trial data can no longer change. Every service that writes trial data
calls ``assert_writable`` inside its transaction, before it takes any other row lock. The guard
reads the single ``TrialState`` row under a shared row lock (PostgreSQL ``FOR SHARE``): writes
do not wait for each other, but the signature that locks the database (which takes the row
``FOR UPDATE``) waits for the writes under way, and a write that starts after it sees the lock.

What stays allowed after the lock is listed in ``ALLOWED_AFTER_LOCK``, with the reason; nothing
else may write trial data.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext

from annulus.errors import RuleViolation

from .models import TrialState
from .selectors import trial_state

OPEN_STATES = ("setup", "recruiting")

# The writes that stay allowed after the lock, and why. They change no collected trial data.
ALLOWED_AFTER_LOCK = {
    "unblinding_steps": "the lock signatures, first-level release, analysis sign-off and second-level release "
                        "are what the lock is for; each is signed with a password and audited",
    "emergency_unblinding": "a participant's safety never waits for the database state; it reveals one "
                            "treatment and changes no collected data",
    "sessions": "logging in and out, and failed logins, are security events, not trial data",
    "own_credentials": "a user's own password and API tokens protect access to the locked data",
    "notification_read": "marking a notification read is the reader's own bookkeeping",
    "accounts": "accounts are still created (analysis staff) and deactivated (staff who leave) after the lock; "
                "an account is not trial data",
    "reports_and_downloads": "DSMB/safety reports and key-holder documents are read from the locked data; "
                             "producing or downloading one is recorded but changes no trial data",
    "language": "the language of the pages is the user's choice",
    "exports": "a data export reads the locked data as of a time and changes none: the analysis datasets are made "
               "from the locked database; the export's run row and its audit event record that it was made",
    "reports": "the trial report reads the locked data as of a time and changes none: it is made from an export "
               "(recorded as such) and its row and audit event record that it was made",
    "lock_waivers": "between the lock and first-level unblinding the principal investigator may waive, with a "
                    "reason, an item of the pre-lock checklist that appeared after the lock (a visit window that "
                    "closed since); first-level unblinding waits for it, and the waiver changes no collected data",
}


class TrialLocked(RuleViolation):
    """A write of trial data after the database lock. Pages show it on the form, the API answers
    409 naming the field ``trial``."""

    status = 409

    def __init__(self, locked_at=None, what: str = ""):
        if locked_at is not None:
            message = gettext("the database is locked (signed on %(date)s); trial data can no longer be changed") % {
                "date": timezone.localtime(locked_at).date().isoformat()}
        else:
            message = gettext("the database is locked; trial data can no longer be changed")
        super().__init__("trial", message)
        self.what = what
        self.locked_at = locked_at


def _read(*, exclusive: bool) -> TrialState:
    if exclusive:
        return TrialState.objects.select_for_update().get_or_create(id=1)[0]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(TrialState._meta.db_table)
        rows = list(TrialState.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR SHARE", [1]))
        if rows:
            return rows[0]
    return TrialState.objects.get_or_create(id=1)[0]


def assert_writable(what: str, *, exclusive: bool = False) -> TrialState:
    """Raise ``TrialLocked`` once the database is locked; otherwise return the trial-state row.
    Call it inside the write's transaction, before any other row lock. ``exclusive`` takes the
    row ``FOR UPDATE`` for the writes that serialise on it (pre-screening numbers, case numbers,
    the allocation list)."""
    ts = _read(exclusive=exclusive)
    if ts.state not in OPEN_STATES:
        raise TrialLocked(locked_at(), what)
    return ts


def is_locked() -> bool:
    """For pages: whether the database is locked (no row lock; writes check with the guard)."""
    return trial_state() not in OPEN_STATES


def locked_at():
    """When the second signature locked the database: the time of the audit event that moved the
    trial state to 'locked' (None if the state was set otherwise)."""
    import json

    from annulus.audit.models import AuditEvent

    for payload, at in (AuditEvent.objects.filter(object_type="trial_state", object_id="1")
                        .order_by("-id").values_list("payload", "timestamp")):
        try:
            state = json.loads(payload)["changes"]["state"][1]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        if state == "locked":
            return at
    return None
