"""The demo shows participants answering their own questionnaires (issue 18): the fill hands out a
card code to every participant in follow-up, records the e-mail contact of a few, and ends with
the schedule's issuing (``annulus selfentry issue-due``'s service), so that the outbox holds the
messages and the dashboard and the call list show questionnaires waiting; the demo's output names
one participant link with its card code, and that link works with that code. The trail verifies."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client

from annulus.audit.selectors import verify_chain
from annulus.participants import states
from annulus.participants.models import Participant
from annulus.selfentry import selectors
from annulus.selfentry.models import CardCode, Contact, SelfEntryLink
from annulus.trial.demo import build_demo, demo_notes

NOTE = re.compile(r"^Participant questionnaire \(open it on a phone\): (http://demo\.example:8000(/p/[\w-]+/))"
                  r"  \(card code (\d{6})\)$")


def _phone(language: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
    client.get("/accounts/login/")
    return client


@pytest.mark.req("P-4.5", "X-5.7")
def test_the_demo_fill_shows_the_participant_flow(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.ANNULUS_SITE_URL = "http://demo.example:8000"
    settings.ANNULUS_SELFENTRY_SENDER = "annulus.selfentry.senders.FileSender"
    ctx = build_demo(seed=2022, candidates=70)  # half the demo: enough in follow-up and in windows

    # a card code for every participant in follow-up, made through the service (audited, hashed)
    people = Participant.objects.filter(pk__in=ctx.enrolled, status__in=(states.TREATED, states.IN_FOLLOW_UP))
    assert people.count() > 20
    carded = set(CardCode.objects.filter(replaced_at__isnull=True).values_list("participant_id", flat=True))
    assert set(people.values_list("pk", flat=True)) <= carded
    assert all(len(c.code_hash) > 20 and not c.code_hash.isdigit() for c in CardCode.objects.all())
    # a few gave an e-mail address for their links
    contacts = list(Contact.objects.all())
    assert 1 <= len(contacts) <= 5 and all(c.email.endswith("@example.org") for c in contacts)

    # the schedule issued and sent a link for the open windows: one file per message in the outbox
    by_schedule = SelfEntryLink.objects.filter(issued_by__isnull=True)
    assert by_schedule.count() >= 3 and all(link.sent_via == "file" for link in by_schedule)
    outbox = sorted((tmp_path / "selfentry-outbox").iterdir())
    assert len(outbox) == by_schedule.count()
    messages = [f.read_text(encoding="utf-8") for f in outbox]
    assert all(re.search(r"^http://demo\.example:8000/p/[\w-]{40,}/$", m, re.M) for m in messages)
    screening = set(Participant.objects.values_list("screening_number", flat=True))
    assert not any(s and s in m for m in messages for s in screening)  # the link names no one
    # a participant with an e-mail address gets the message there, in the language recorded
    emailed = {c.participant_id: c for c in contacts}
    wanted = sorted(f"To: {emailed[pid].email}\nLanguage: {emailed[pid].language}"
                    for pid in by_schedule.values_list("participant_id", flat=True) if pid in emailed)
    assert wanted and sorted("\n".join(m.splitlines()[:2]) for m in messages if "@" in m.splitlines()[0]) == wanted
    rows = selectors.open_questionnaires()
    statuses = {r["status"] for r in rows}
    assert selectors.ISSUED in statuses
    assert len(selectors.to_remind()) >= by_schedule.count()

    # the coordinator sees them waiting on the dashboard and on the call list
    office = Client()
    office.force_login(ctx.users["coordinator"])
    dashboard = office.get("/").content.decode()
    issued = int(re.search(r'data-testid="q-issued">(\d+)<', dashboard).group(1))
    assert issued >= by_schedule.count() and 'data-testid="to-remind"' in dashboard
    assert 'data-testid="to-remind"' in office.get("/visits/calls/").content.decode()

    # the output's participant link works with its card code, in both languages' pages
    lines = demo_notes(ctx.users)
    assert len(lines) == 1, lines
    m = NOTE.match(lines[0])
    assert m, lines[0]
    url, path, code = m.groups()
    link = selectors.link_by_token(path.split("/")[2])
    assert link is not None and selectors.usable(link) and link.issued_by == ctx.users["coordinator"]
    for language, words in (("zh-hans", "卡片代码"), ("en", "Card code")):
        phone = _phone(language)
        first = phone.get(path)
        assert first.status_code == 200 and words in first.content.decode()
    opened = phone.post(path, {"action": "code", "code": code, "csrfmiddlewaretoken": phone.cookies["csrftoken"].value})
    html = opened.content.decode()
    assert opened.status_code == 200 and 'name="proof"' in html
    # the questions of the link's questionnaires (which ones depends on the visit the demo's day falls on)
    assert link.instruments and all(f'name="{form_id}-' in html for form_id in link.instruments)
    # shown again while it still works (``annulus demo`` on the filled database)
    assert demo_notes(ctx.users) == lines

    # the demo's audit trail still verifies
    result = verify_chain()
    assert result.ok, (result.bad_event, result.problem)
