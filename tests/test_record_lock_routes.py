"""A locked casebook refuses every write that targets its participant (X-7.5).

The writes are not listed here: every page and API write of the site is already a case of
``tests/test_lock_write_routes.py`` (whose ``test_every_route_is_classified`` fails for a route
without one), and this test runs each of them. Which participant a write targets is not told
either: each case is first run on the open trial inside a rolled-back transaction, and the
participants named by the audit events it appends are its targets (a participant the write itself
creates is not one). Then, with the casebook of every target locked, the same request must be
refused - API 409 JSON naming the field "lock", page 200/400/409 with the lock's message shown,
never 403 or 500 - with no row of any annulus model added or removed and the audit chain's head
unchanged. The first run is made while another participant's casebook (and a form, a visit and the
adverse-event log inside it) is locked, so each write is also shown allowed for another
participant.

A write that names no participant must be listed in ``NO_PARTICIPANT``; a write that names one
and stays allowed on a locked casebook must be listed in ``ALLOWED_ON_LOCKED_RECORD`` with the
reason. A new write that names a participant and is refused by neither fails here until its
service calls ``annulus.participants.locks.assert_record_writable``.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.participants.models import Participant, RecordLock

from .lock_support import audit_head, row_counts
from .test_lock_write_routes import API_CASES, PAGE_CASES, Browser, Script, build_trial

# writes that name no participant (checked: their audit events name none)
NO_PARTICIPANT = {
    "participants/new/": "pre-screening creates the participant",
    ("POST", "/api/v1/participants"): "pre-screening creates the participant",
    "allocation/": "the allocation list belongs to the trial",
    ("POST", "/api/v1/allocation/list"): "the allocation list belongs to the trial",
    "safety/dsmb/recommendations/new/": "a DSMB recommendation is about the trial",
    "protocol/upload/": "a protocol amendment is about the trial",
    ("POST", "/api/v1/protocol/versions"): "a protocol amendment is about the trial",
}

ATTESTATION = ("an attestation about the data (verified against source, reviewed, signed), not an entry of the "
               "casebook: a locked record is still verified, audited and signed, and the lock guarantees that "
               "what was attested no longer changes")
QUERY = ("a query is a question about the data, not an entry of it: it is raised, closed and re-opened on a "
         "locked record too, and answered only once the data manager unlocks the record (an answer may change "
         "the data)")

WAIVER = ("a pre-lock waiver is about the database lock: the principal investigator records why the lock may go "
          "ahead with a participant's open line; it changes no casebook data (it names the participant so that it "
          "shows on the participant's audit trail)")

# writes that name a participant and stay allowed on a locked casebook, with the reason
# routes refused on a locked record with a message of their own instead of the staff's (which names
# the casebook and who locked it): the participant's questionnaire pages speak to the participant
OWN_LOCK_MESSAGE = {
    "p/<str:token>/": "the research team has closed this record",
}

ALLOWED_ON_LOCKED_RECORD = {
    "unblinding/": WAIVER,
    ("POST", "/api/v1/allocation/unblinding/waivers"): WAIVER,
    "pharmacy/envelopes/<int:envelope_id>/": "product release is the pharmacy's quality record of the lot "
                                             "(unblinded), kept outside the casebook",
    ("POST", "/api/v1/allocation/pharmacy/envelopes/{envelope_id}/release"):
        "product release is the pharmacy's quality record of the lot (unblinded), kept outside the casebook",
    "monitoring/participants/<int:pk>/sdv/": ATTESTATION,
    ("POST", "/api/v1/monitoring/participants/{pk}/sdv"): ATTESTATION,
    "monitoring/participants/<int:pk>/review/": ATTESTATION,
    ("POST", "/api/v1/monitoring/findings"): ATTESTATION,
    "monitoring/findings/<int:pk>/": ATTESTATION,
    ("POST", "/api/v1/monitoring/findings/{pk}/resolve"): ATTESTATION,
    "participants/<int:pk>/casebook/": ATTESTATION,
    "queries/new/": QUERY,
    "queries/<int:pk>/ close a query": QUERY,
    "queries/<int:pk>/ re-open a query": QUERY,
    ("POST", "/api/v1/queries"): QUERY,
    ("POST", "/api/v1/queries/{pk}/close"): QUERY,
    ("POST", "/api/v1/queries/{pk}/reopen"): QUERY,
    ("POST", "/api/v1/casebooks/participants/{pk}/sign"): ATTESTATION,
    "participants/<int:pk>/locks/ unlock the casebook": "unlocking is how a locked record is opened again",
    ("POST", "/api/v1/participants/{pk}/unlock"): "unlocking is how a locked record is opened again",
    ("POST", "/api/v1/participants/{pk}/visits/{key}/unlock"): "unlocking is how a locked record is opened again",
    ("POST", "/api/v1/participants/{pk}/visits/{key}/forms/{form_id}/unlock"):
        "unlocking is how a locked record is opened again",
    ("POST", "/api/v1/participants/{pk}/forms/{form_id}/unlock"): "unlocking is how a locked record is opened again",
}


class _Rollback(Exception):
    pass


def _rolled_back(fn):
    out = {}
    try:
        with transaction.atomic():
            out["value"] = fn()
            raise _Rollback
    except _Rollback:
        pass
    return out["value"]


def _probe(send):
    """Send the request on the open trial, rolled back: the response, the number of audit events
    appended and the existing participants they name."""
    def run():
        existing = set(Participant.objects.values_list("pk", flat=True))
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        resp = send()
        named = set(AuditEvent.objects.filter(id__gt=last).exclude(participant_id=None)
                    .values_list("participant_id", flat=True))
        return resp, AuditEvent.objects.filter(id__gt=last).count(), named & existing
    return _rolled_back(run)


def _lock_casebooks(ids, user):
    """Set-up: the casebooks of ``ids`` locked (rows written directly: the open work of the
    trial, draft forms and open tasks, would keep the service from locking them, and that rule is
    tested in test_record_locks.py)."""
    for pid in ids:
        if not RecordLock.objects.filter(participant_id=pid, visit="", form="", unlocked_at=None).exists():
            RecordLock.objects.create(participant_id=pid, visit="", form="", locked_by=user, locked_at=timezone.now())


def _text(resp) -> str:
    return resp.content.decode("utf-8", "replace")


def _messages(ids) -> list[str]:
    from annulus.participants.locks import RecordLocked

    rows = RecordLock.objects.filter(participant_id__in=ids, visit="", form="", unlocked_at=None)
    return [RecordLocked(r).message for r in rows.select_related("locked_by", "participant")]


@pytest.fixture
def open_trial(users, make_participant):
    t = build_trial(users, make_participant)
    t["users"] = users
    # another participant's records are locked at every level throughout (build_trial)
    assert RecordLock.objects.filter(participant=t["rel"], unlocked_at=None).count() == 4
    return t


def _check(name, key, send, problems, users, expect_api: bool, other_rule: str | None = None):
    resp, events, targets = _probe(send)
    ok = resp.status_code < 300 if expect_api else resp.status_code == 200
    if not events and other_rule is not None and other_rule in _text(resp):
        return  # another rule refuses it on this trial too (e.g. the list once randomisation started)
    if not ok or not events:
        problems.append(f"{name}: does not write on the open trial while another casebook is locked: "
                        f"{resp.status_code} {_text(resp)[:200]}")
        return
    if not targets:
        if key not in NO_PARTICIPANT:
            problems.append(f"{name}: its audit events name no participant; list it in NO_PARTICIPANT")
        return
    if key in NO_PARTICIPANT:
        problems.append(f"{name}: listed in NO_PARTICIPANT but writes for participants {sorted(targets)}")
        return

    def locked_run():
        _lock_casebooks(targets, users["data_manager"])
        counts, head = row_counts(), audit_head()
        r = send()
        return r, row_counts() != counts or audit_head() != head, _messages(targets)

    resp, written, messages = _rolled_back(locked_run)
    own = next((m for route, m in OWN_LOCK_MESSAGE.items() if not isinstance(key, tuple) and key.startswith(route)),
               None)
    if own is not None:
        messages = [own]
    if key in ALLOWED_ON_LOCKED_RECORD:
        if not written:
            problems.append(f"{name}: listed as allowed on a locked casebook, but it wrote nothing "
                            f"({resp.status_code} {_text(resp)[:200]})")
        return
    if written:
        problems.append(f"{name}: something was written for a locked casebook")
    if expect_api:
        body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
        body = body if isinstance(body, dict) else {}
        fields = [d.get("field") for d in body.get("detail", [])]
        if resp.status_code != 409 or fields != ["lock"] or body["detail"][0]["message"] not in messages:
            problems.append(f"{name}: expected 409 naming 'lock': {resp.status_code} {_text(resp)[:300]}")
    elif resp.status_code not in (200, 400, 409) or not any(m in _text(resp) for m in messages):
        problems.append(f"{name}: {resp.status_code}, the lock's message is not shown")


@pytest.mark.req("X-7.5")
def test_every_api_write_for_a_participant_is_refused_on_a_locked_casebook(open_trial, users):
    t = open_trial
    problems = []
    scripts, browsers = {}, {}
    for (method, route), cases in API_CASES.items():
        for case in cases:
            path, body = case.path(t), case.data(t)
            script = scripts.setdefault(case.role, Script(users[case.role]))
            _check(f"{method} {route} {case.note} (token)".strip(), (method, route),
                   lambda: script.api(method, path, body), problems, users, expect_api=True,
                   other_rule=case.unlocked)
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            _check(f"{method} {route} {case.note} (session)".strip(), (method, route),
                   lambda: browser.api(method, path, body), problems, users, expect_api=True,
                   other_rule=case.unlocked)
    assert not problems, "\n".join(problems)


@pytest.mark.req("X-7.5")
def test_every_page_write_for_a_participant_is_refused_on_a_locked_casebook(open_trial, users):
    t = open_trial
    problems = []
    browsers = {}
    for route, cases in PAGE_CASES.items():
        for case in cases:
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            path, data = case.path(t), case.data(t)
            key = f"{route} {case.note}".strip()
            key = key if key in ALLOWED_ON_LOCKED_RECORD else route
            _check(f"{route} {case.note}".strip(), key,
                   lambda: browser.post(path, data, case.files(t) if case.files else None), problems, users,
                   expect_api=False, other_rule=case.unlocked)
    assert not problems, "\n".join(problems)


@pytest.mark.req("X-7.5")
def test_the_lists_name_only_routes_that_exist():
    pages = set(PAGE_CASES) | {f"{r} {c.note}".strip() for r, cases in PAGE_CASES.items() for c in cases}
    apis = set(API_CASES)
    for key in list(NO_PARTICIPANT) + list(ALLOWED_ON_LOCKED_RECORD):
        assert key in (apis if isinstance(key, tuple) else pages), f"{key} is no write case any more"
