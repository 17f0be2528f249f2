"""Demo step 105, at the end of the fill: participants answer their own questionnaires.

Every participant in follow-up is handed a card code by the coordinator (``reset_card_code``, the
first code on the card); a few give an e-mail address for their links, one of them reading them in
English; one participant's link is issued in clinic and shown with its card code in the demo's
output (``notes``), so that a person trying the demo can open it on a phone; then the schedule
issues and sends a link for every other visit whose window is open today, as ``annulus selfentry
issue-due`` does (the file sender: ``ANNULUS_VAR_DIR/selfentry-outbox/``). The dashboard's
questionnaire panel and the call list then show questionnaires issued and waiting.

The card codes are stored as hashes only: the one code the output shows is kept, with its link,
in ``ANNULUS_VAR_DIR/demo-participant-link.json``, so that ``annulus demo`` on the filled
database shows it again (or a new link and code when that one no longer works)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from annulus.errors import RuleViolation
from annulus.participants import states
from annulus.participants.locks import RecordLocked
from annulus.participants.models import Participant

from . import selectors, services

NOTE_FILE = "demo-participant-link.json"
IN_FOLLOW_UP = (states.TREATED, states.IN_FOLLOW_UP)
EMAILS = 4  # participants who give an e-mail address for their links
CARD_REASON = "participant card handed out at the transplantation visit"


def _note_path() -> Path:
    return Path(settings.VAR_DIR) / NOTE_FILE


def _issue_shown_link(coord, people) -> dict | None:
    """A link the coordinator issues in clinic for the first of ``people`` with a questionnaire
    waiting today (the first link of a participant with no card code brings the code), saved for
    the output; None when no window is open today."""
    ids = [p.pk for p in people]
    rows = [r for r in selectors.open_questionnaires(people=Participant.objects.filter(pk__in=ids))
            if r["status"] == selectors.NOT_ISSUED]
    for row in rows:
        p, key = row["participant"], row["slot"].key
        if selectors.current_card(p.pk) is not None:
            continue  # its code is only a hash now: take one whose first code comes with the link
        try:
            issued = services.issue_link(actor=coord, participant_id=p.pk, visit_key=key)
        except (RuleViolation, RecordLocked):
            continue
        code = issued.card_code
        note = {"token": issued.token, "code": code, "participant": p.pk, "visit": key}
        _note_path().write_text(json.dumps(note), encoding="utf-8")
        return note
    return None


def self_entry_all(ctx) -> None:
    coord = ctx.users["coordinator"]
    people = list(Participant.objects.filter(pk__in=ctx.enrolled, status__in=IN_FOLLOW_UP).order_by("case_number"))
    ctx.progress("self-entry: the link shown by the demo")
    shown = _issue_shown_link(coord, people)
    ctx.progress(f"self-entry: card codes for {len(people)} participants in follow-up")
    for p in people:
        if shown is not None and p.pk == shown["participant"]:
            continue  # its card code came with its first link
        try:
            services.reset_card_code(actor=coord, participant_id=p.pk, reason=CARD_REASON)
        except (RuleViolation, RecordLocked):
            continue  # a locked casebook: no new card code
    # the e-mail address of a few whose links the schedule is about to send
    waiting = [r["participant"] for r in selectors.open_questionnaires(
        people=Participant.objects.filter(pk__in=[p.pk for p in people])) if r["status"] == selectors.NOT_ISSUED]
    for n, p in enumerate(list(dict.fromkeys(waiting))[:EMAILS]):
        try:
            services.set_contact(actor=coord, participant_id=p.pk,
                                 email=f"participant{p.case_number or p.pk}@example.org".lower(),
                                 language="en" if n == 0 else "zh-hans")
        except (RuleViolation, RecordLocked):
            continue
    ctx.progress("self-entry: the schedule issues the links of the open windows")
    services.issue_due()


def notes(users=None) -> list[str]:
    """The lines ``annulus demo`` prints with the logins: one participant link that works and its
    card code. The saved one while it still works; else, on a filled database, a new one (a new
    card code by the coordinator and a link for a questionnaire waiting today); none when no
    questionnaire waits today."""
    note = None
    path = _note_path()
    if path.exists():
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = None
    if note is not None:
        link = selectors.link_by_token(note.get("token", ""))
        if link is None or not selectors.usable(link) or link.locks >= services.MAX_LOCKS:
            note = None
    if note is None:
        note = _renew(users)
    if note is None:
        return []
    # the address as the demo serves it now (``ANNULUS_SITE_URL``), not as it was at the fill
    url = services.link_url(note["token"])
    return [f"Participant questionnaire (open it on a phone): {url}  (card code {note['code']})"]


def _renew(users) -> dict | None:
    """On a filled database whose shown link no longer works: a new card code and a link for a
    participant with a questionnaire waiting today and no link out for it."""
    coord = (users or {}).get("coordinator") or get_user_model().objects.filter(username="coordinator").first()
    if coord is None:
        return None
    rows = [r for r in selectors.open_questionnaires() if r["status"] == selectors.NOT_ISSUED]
    for row in rows:
        p, key = row["participant"], row["slot"].key
        try:
            issued = services.issue_link(actor=coord, participant_id=p.pk, visit_key=key)
            code = issued.card_code or services.reset_card_code(
                actor=coord, participant_id=p.pk, reason="demo: a new card code to try the participant pages")
        except (RuleViolation, RecordLocked):
            continue
        note = {"token": issued.token, "code": code, "participant": p.pk, "visit": key}
        _note_path().write_text(json.dumps(note), encoding="utf-8")
        return note
    return None


STEPS = [(105, self_entry_all)]
