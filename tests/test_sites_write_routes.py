"""A user limited to sites writes nothing for a participant of another site (P-7.2, X-7.3).

The writes are not listed here: every page and API write of the site is a case of
``tests/test_lock_write_routes.py`` (whose ``test_every_route_is_classified`` fails for a route
without one), and this test runs each of them, as ``tests/test_record_lock_routes.py`` does for
record locks. The trial of those tests is built at one site ("01"); then the protocol declares a
second one ("B"). Each write is first sent with every user limited to site "01" inside a
rolled-back transaction: it must write, and the participants named by the audit events it
appends are its targets. Then, with every user limited to site "B", the same request must be
refused as a request about an unknown participant or record is - API 404 "not found", or a 4xx
naming the field with the message given for one that does not exist; page 404, or the form shown
again with that message - never 403 or 500, with no row of any annulus model added or removed and
the audit chain's head unchanged.

A write that names no participant is listed in ``NO_PARTICIPANT`` of the record-lock test (checked
there by its audit events); the participant's own questionnaire page (``p/<token>/``) is written by
the participant through a link, not by a user.
"""

from __future__ import annotations

import pytest
import yaml

from annulus.accounts.models import Membership

from .lock_support import audit_head, row_counts
from .test_lock_write_routes import API_CASES, PAGE_CASES, Browser, Script, build_trial
from .test_record_lock_routes import NO_PARTICIPANT, _probe, _rolled_back

NOT_A_USERS_WRITE = {"p/<str:token>/": "the participant answers through a link, as no user of any site"}

# what a request about a participant or record that does not exist is answered (field, message start)
UNKNOWN = {("", "not found"), ("participant", "no such participant"), ("participant", "no participant '"),
           ("query", "no query "), ("finding", "no such finding"),
           ("item", "is not an open item of the pre-lock checklist")}
UNKNOWN_TEXTS = ("no such participant", "no participant &#x27;", "no participant '", "no query ",
                 "no such finding", "is not an open item of the pre-lock checklist")


def _scope(users, sites: list[str]) -> None:
    """Set-up: every user limited to ``sites`` (the row written directly; the Users page and its
    audit are tested in test_sites.py)."""
    Membership.objects.filter(user__in=[u.pk for u in users.values()]).update(sites=sites)


@pytest.fixture
def two_site_trial(users, make_participant):
    from annulus.trial.services import load_protocol_version

    t = build_trial(users, make_participant)
    t["users"] = users
    data = yaml.safe_load(t["protocol_text"])
    data["version"] = "1.1"
    data["sites"] = [{"id": "01", "name": {"en": "North Hospital", "zh": "北方医院"}},
                     {"id": "B", "name": {"en": "South Hospital", "zh": "南方医院"}}]
    load_protocol_version(actor=None, text=yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    from annulus.participants.models import Participant

    assert set(Participant.objects.values_list("site", flat=True)) == {"01"}
    return t


def _text(resp) -> str:
    return resp.content.decode("utf-8", "replace")


def _answered_as_unknown(resp, expect_api: bool) -> bool:
    if resp.status_code in (403,) or resp.status_code >= 500:
        return False
    if expect_api:
        if not resp.headers.get("Content-Type", "").startswith("application/json"):
            return False
        detail = resp.json().get("detail") if isinstance(resp.json(), dict) else None
        if not isinstance(detail, list) or not detail or resp.status_code < 400:
            return False
        return all(any(d.get("field") == f and str(d.get("message", "")).startswith(m) for f, m in UNKNOWN)
                   for d in detail)
    if resp.status_code == 404:
        return True
    return resp.status_code == 200 and any(m in _text(resp) for m in UNKNOWN_TEXTS)


def _check(name, key, send, problems, users, expect_api: bool, other_rule: str | None = None) -> bool:
    """True when the write was tried for another site's participant."""
    if key in NO_PARTICIPANT or (not isinstance(key, tuple) and key.split(" ")[0] in NOT_A_USERS_WRITE):
        return False
    _scope(users, ["01"])
    resp, events, targets = _probe(send)
    ok = resp.status_code < 300 if expect_api else resp.status_code == 200
    if not events and other_rule is not None and other_rule in _text(resp):
        return False  # another rule refuses it on this trial for everyone (e.g. a waiver given already)
    if not ok or not events:
        problems.append(f"{name}: a user of the participant's site cannot write: {resp.status_code} {_text(resp)[:200]}")
        return False
    if not targets:
        problems.append(f"{name}: its audit events name no participant; list it in NO_PARTICIPANT")
        return False

    def other_site():
        _scope(users, ["B"])
        counts, head = row_counts(), audit_head()
        r = send()
        return r, row_counts() != counts or audit_head() != head

    resp, written = _rolled_back(other_site)
    if written:
        problems.append(f"{name}: something was written for another site's participant")
    if not _answered_as_unknown(resp, expect_api):
        problems.append(f"{name}: not answered as for an unknown participant: {resp.status_code} {_text(resp)[:300]}")
    return True


@pytest.mark.req("P-7.2", "X-7.3")
def test_every_api_write_for_another_sites_participant_is_refused(two_site_trial, users):
    t = two_site_trial
    problems, tried = [], []
    scripts, browsers = {}, {}
    for (method, route), cases in API_CASES.items():
        for case in cases:
            path, body = case.path(t), case.data(t)
            script = scripts.setdefault(case.role, Script(users[case.role]))
            tried += [route] * _check(f"{method} {route} {case.note} (token)".strip(), (method, route),
                                      lambda: script.api(method, path, body), problems, users, expect_api=True,
                                      other_rule=case.unlocked)
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            _check(f"{method} {route} {case.note} (session)".strip(), (method, route),
                   lambda: browser.api(method, path, body), problems, users, expect_api=True, other_rule=case.unlocked)
    assert not problems, "\n".join(problems)
    # every API write of a participant's data was tried (those naming none are listed in NO_PARTICIPANT)
    assert len(set(tried)) == len([k for k in API_CASES if k not in NO_PARTICIPANT]), sorted(set(tried))


@pytest.mark.req("P-7.2", "X-7.3")
def test_every_page_write_for_another_sites_participant_is_refused(two_site_trial, users):
    t = two_site_trial
    problems, tried = [], []
    browsers = {}
    for route, cases in PAGE_CASES.items():
        for case in cases:
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            path, data = case.path(t), case.data(t)
            tried += [route] * _check(f"{route} {case.note}".strip(), route,
                   lambda: browser.post(path, data, case.files(t) if case.files else None), problems, users,
                   expect_api=False, other_rule=case.unlocked)
    assert not problems, "\n".join(problems)
    assert set(tried) == set(PAGE_CASES) - set(NO_PARTICIPANT) - set(NOT_A_USERS_WRITE), sorted(set(tried))


@pytest.mark.req("P-7.2")
def test_emergency_unblinding_of_another_sites_participant_is_not_found(two_site_trial, users):
    """The one write allowed after the database lock that names a participant in its URL."""
    from annulus.allocation.models import EmergencyUnblinding
    from tests.conftest import TEST_PASSWORD

    t = two_site_trial
    _scope(users, ["B"])
    browser, script = Browser(users["investigator"]), Script(users["investigator"])
    page = f"/participants/{t['f'].pk}/emergency-unblinding/"
    assert browser.client.get(page).status_code == 404
    counts, head = row_counts(), audit_head()
    r = browser.post(page, {"password": TEST_PASSWORD, "reason": "Anaphylaxis in the ward", "scope": "participant"})
    assert r.status_code == 404
    r = script.api("POST", f"/api/v1/allocation/participants/{t['f'].pk}/emergency-unblinding",
                                          {"password": TEST_PASSWORD, "reason": "Anaphylaxis in the ward"})
    assert r.status_code == 404 and r.json() == {"detail": [{"field": "", "message": "not found"}]}
    assert row_counts() == counts and audit_head() == head and not EmergencyUnblinding.objects.exists()


@pytest.mark.req("P-7.2")
def test_the_audit_trail_refuses_a_write_for_another_sites_participant(two_site_trial, users):
    """The one check every write passes: a service called directly (as a command would) by a user
    of another site writes nothing and answers as for an unknown participant."""
    from annulus.errors import RuleViolation
    from annulus.participants.selectors import UnknownParticipant
    from annulus.queries import services as qs

    from django.contrib.auth import get_user_model

    from annulus.participants import services as ps

    t = two_site_trial
    _scope(users, ["B"])
    data_manager, monitor = (get_user_model().objects.get(pk=users[r].pk) for r in ("data_manager", "monitor"))
    counts, head = row_counts(), audit_head()
    with pytest.raises(UnknownParticipant) as exc:
        ps.lock_record(actor=data_manager, participant_id=t["f"].pk, visit="w1", form="vas")
    assert (exc.value.field, exc.value.message) == ("participant", "no such participant")
    with pytest.raises(RuleViolation) as exc:
        qs.raise_query(actor=monitor, participant_id=t["f"].pk, text="Please check", assigned_to="site")
    assert exc.value.field == "participant" and exc.value.message.startswith("no participant")
    assert row_counts() == counts and audit_head() == head
    _scope(users, [])  # every site again
    ps.lock_record(actor=get_user_model().objects.get(pk=data_manager.pk), participant_id=t["f"].pk, visit="w1",
                   form="vas")
    assert audit_head() != head

