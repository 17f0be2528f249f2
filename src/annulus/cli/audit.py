"""``annulus audit``: verify the trail (its hash chain; with the audit key its MACs and the
checkpoints kept outside the database), write a checkpoint, make a key.

``verify --data`` replays the trail's changes of the trial data and compares them with the tables
(each app's ``audit_mismatches`` selector, a fixed number of queries per chunk of participants;
the records of the trial as a whole once): what is compared and what is not is listed in
``data_mismatches``."""

from __future__ import annotations

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="audit-trail tools")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    v = sub.add_parser("verify", help="check every audit event's hash (and MAC, with the audit key); exit 1 naming "
                                      "the first problem")
    v.add_argument("--checkpoints", metavar="DIR", default="",
                   help="also check the trail against the signed checkpoints in DIR (needs ANNULUS_AUDIT_KEY_FILE)")
    v.add_argument("--data", action="store_true",
                   help="also check that the trial data in the database (participants and their screening, "
                        "consents, status history, withdrawals, randomisation, product release and dispensing, "
                        "procedures, visits, eCRF forms, appointments, reminder calls, adverse events, SAE reports, "
                        "adverse-event tasks, queries, record locks, SDV marks, review findings, casebook "
                        "signatures, emergency unblinding, lock waivers, unblinding steps, DSMB records) hold the "
                        "last values the trail records for them (catches direct edits of clinical tables)")
    v.set_defaults(func=verify)
    c = sub.add_parser("checkpoint", help="write a signed checkpoint of the trail's head into DIR (after checking "
                                          "the trail since the previous one)")
    c.add_argument("--out", metavar="DIR", required=True)
    c.set_defaults(func=checkpoint)
    k = sub.add_parser("keygen", help="write a new audit key into FILE (readable by its owner only)")
    k.add_argument("--out", metavar="FILE", required=True)
    k.set_defaults(func=keygen)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _key() -> bytes:
    from annulus.audit import keys

    key = keys.current()
    if key is None:
        raise CliError("no audit key: set ANNULUS_AUDIT_KEY_FILE to the key file (annulus audit keygen --out FILE "
                       "makes one)")
    return key


def _checkpoints(folder: str) -> list:
    from annulus.audit.checkpoints import CheckpointError, read

    try:
        return read(folder)
    except CheckpointError as exc:
        raise CliError(str(exc)) from None


def verify(args) -> int:
    setup_django()
    from annulus.audit import keys
    from annulus.audit.selectors import verify_chain

    key = _key() if args.checkpoints else keys.current()
    marks = _checkpoints(args.checkpoints) if args.checkpoints else []
    result = verify_chain(key=key, checkpoints=marks)
    if result.ok and args.data:
        problems, participants = data_mismatches()
        if problems:
            for line in problems[:SHOWN]:
                print(f"data differs from the audit trail: {line}")
            more = f" (the first {SHOWN} shown)" if len(problems) > SHOWN else ""
            print(f"audit trail intact ({result.checked} events checked) but the data of the database differ from it "
                  f"in {len(problems)} places{more}")
            return 1
    if result.ok:
        extra = ""
        if args.data:
            extra += f", the data of {participants} participants match it"
        if key is not None:
            extra += ", MACs checked"
        if args.checkpoints:
            extra += f", {len(marks)} checkpoints matched"
        print(f"audit trail intact: {result.checked} events checked{extra}")
        return 0
    print(f"audit trail BROKEN{result.where}: {result.problem} ({result.checked} events checked)")
    return 1


SHOWN = 20
CHUNK = 500  # participants read at a time


def data_mismatches() -> tuple[list[str], int]:
    """Every place where trial data in the database differ from the audit trail, and the number of
    participants checked: each app that owns trial data replays the trail of its records
    (``audit_mismatches`` in its selectors) for the participants a chunk at a time, and the records
    of the trial as a whole (``trial_audit_mismatches``) once. Compared:

    - participants: the pre-screening fields, case number, enrolment time and status of the row,
      the status history, consents, screening evidence (every entry, superseded or not),
      eligibility decisions (outcome, failing criteria, superseded), withdrawals, record locks;
      participants the trail saw created that are gone;
    - allocation: the envelope opened for each participant (random number, drug code), the
      transplantation record; the product's release checks (drug code, lot, passed, failing
      criteria, QA signer, who checked, a re-test's reason, superseded); dispensing (drug code,
      lot, who dispensed); emergency unblinding forms (number, scope, reason, who unblinded, who
      co-signed); once: pre-lock waivers (item, label, reason, who waived) and unblinding steps
      (kind, statement, signer);
    - visits: the liposuction records (with their corrections), the visits, the eCRF forms; the
      appointments (visit, day, superseded, who booked and when) and reminder calls (visit, day,
      outcome, note, who called and when);
    - safety: the adverse events; SAE reports (recipient, deadline, calendar warning, not required
      since, expedited, sent when/to/how/by whom, acknowledged when/by whom/recorded by whom,
      overdue notice); adverse-event tasks (source, description, state, the event recorded for
      it, a dismissal's reason, who opened and closed it); once: DSMB alerts (threshold, count,
      one arm or all participants), recommendations (meeting date, decision, summary, whether
      closed notes exist, who recorded it) and interim reports (kind, cut-off, scheduled, who);
    - casebooks: each signature's content hash, signer and printed name, meaning and time (within
      ``SIGNED_BEFORE_EVENT`` seconds before its event, written in the same transaction), and the
      signed content must still hash to the content hash;
    - queries: each query and its thread; monitoring: the SDV marks and the review findings.

    Not compared, because the trail does not record them (or records them as something else):
    the participant's name and phone number; an eligibility decision's criteria snapshot and
    decision time; a withdrawal's previous status; the transplantation's notes; an envelope's group
    label and arm (the blind keeps them out of the trail; ``annulus randomisation verify`` checks
    the list); a release's test date, each criterion's result value (only passed and the failing
    criteria are recorded) and a first release's own reason (its event says "release checks
    recorded"); the time of a release check, of dispensing and of an emergency unblinding (taken a
    moment before the event, which does not carry it); a waiver's checklist group; an SAE
    report's rule text, recipient's printed name, SUSAR clock start, and which of the participant's
    adverse events it belongs to (the participant is compared); an adverse-event task's key,
    suggested term and times; a DSMB alert's arm (blinded: shown neither in the trail nor in these
    lines), its events and level; a recommendation's data cut-off and closed notes' text (the trail
    keeps only that they exist); an interim report's content; the signed casebook's content itself
    (only its hash is in the trail); the times and authors of the rows of the participants',
    visits', adverse events', queries' and monitoring tables (the events' own)."""
    from annulus.participants.models import Participant
    from annulus.participants.selectors import missing_participants

    replays = [replay for replay in _replays() if replay is not None]
    ids = list(Participant.objects.order_by("pk").values_list("pk", flat=True))
    out = missing_participants(ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for replay in replays:
            out += replay(chunk)
    for replay in _trial_replays():
        out += replay()
    return out, len(ids)


def _replays() -> list:
    """The apps' replays, in the order of a participant's journey."""
    from annulus.allocation.selectors import audit_mismatches as allocation
    from annulus.casebooks.selectors import audit_mismatches as casebooks
    from annulus.monitoring.selectors import audit_mismatches as monitoring
    from annulus.participants.selectors import audit_mismatches as screening
    from annulus.queries.selectors import audit_mismatches as queries
    from annulus.safety.selectors import audit_mismatches as adverse_events
    from annulus.visits.selectors import audit_mismatches as visits

    return [screening, allocation, visits, adverse_events, queries, monitoring, casebooks]


def _trial_replays() -> list:
    """The replays of records of the trial as a whole (read once, not per chunk)."""
    from annulus.allocation.selectors import trial_audit_mismatches as lock_and_unblinding
    from annulus.safety.selectors import trial_audit_mismatches as dsmb

    return [lock_and_unblinding, dsmb]


def checkpoint(args) -> int:
    setup_django()
    from annulus.audit import checkpoints
    from annulus.audit.models import AuditEvent, AuditHead
    from annulus.audit.selectors import verify_chain

    key = _key()
    from pathlib import Path

    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} is a file, not a folder")
    marks = _checkpoints(folder) if folder.is_dir() else []
    result = verify_chain(key=key, checkpoints=marks)
    if not result.ok:
        print(f"no checkpoint written: audit trail BROKEN{result.where}: {result.problem}")
        return 1
    head = AuditHead.objects.filter(id=1).first()
    # the newest event as one row (an event appended meanwhile moves nothing out of step)
    last = AuditEvent.objects.filter(id__lte=result.last_id).order_by("-id").values_list(
        "hash", "timestamp").first() if result.checked else None
    if head is None or last is None:
        raise CliError("the audit trail is empty: nothing to checkpoint")
    made = checkpoints.make(key, seq=result.checked, hash=last[0], event_time=last[1].isoformat(),
                            keyed_from=head.keyed_from)
    path = checkpoints.write(folder, made)
    print(f"checkpoint of event {made.seq} written: {path}")
    return 0


def keygen(args) -> int:
    from annulus.audit import keys

    try:
        path = keys.generate(args.out)
    except keys.AuditKeyError as exc:
        raise CliError(str(exc)) from None
    print(f"audit key written to {path}: keep it off the database server, set ANNULUS_AUDIT_KEY_FILE to it, and "
          "back it up (without it the trail's MACs cannot be checked)")
    return 0
