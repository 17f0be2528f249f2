"""``annulus audit``: verify the trail (its hash chain; with the audit key its MACs and the
checkpoints kept outside the database), write a checkpoint, make a key.

``verify --data`` replays the trail's changes of the trial data and compares them with the tables
(each app's ``audit_mismatches`` selector, a fixed number of queries per chunk of participants):

- participants: the pre-screening fields, case number, enrolment time and status of the row, the
  status history, consents, screening evidence (every entry, superseded or not), eligibility
  decisions (outcome, failing criteria, superseded), withdrawals, record locks; participants the
  trail saw created that are gone (``participants.selectors``);
- allocation: the envelope opened for each participant and the transplantation record;
- visits: the liposuction records (with their corrections), the visits, the eCRF forms;
- safety: the adverse events; queries: each query and its thread; monitoring: the SDV marks and
  the review findings.

Not compared, because the trail does not record them: the participant's name and phone number;
an eligibility decision's criteria snapshot and decision time; a withdrawal's previous status; the
transplantation's notes; an envelope's group label (the blind keeps it out of the trail;
``annulus randomisation verify`` checks the list); the times and authors of rows (the events'
own). Not replayed here: the product's release checks and dispensing, appointments and reminder
calls, adverse-event tasks, SAE reports, DSMB records, casebook signatures, emergency unblinding
and lock waivers."""

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
                        "consents, status history, withdrawals, randomisation, procedures, visits, eCRF forms, "
                        "adverse events, queries, record locks, SDV marks, review findings) hold the last values "
                        "the trail records for them (catches direct edits of clinical tables)")
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
    (``audit_mismatches`` in its selectors) for the participants a chunk at a time."""
    from annulus.participants.models import Participant
    from annulus.participants.selectors import missing_participants

    replays = [replay for replay in _replays() if replay is not None]
    ids = list(Participant.objects.order_by("pk").values_list("pk", flat=True))
    out = missing_participants(ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for replay in replays:
            out += replay(chunk)
    return out, len(ids)


def _replays() -> list:
    """The apps' replays, in the order of a participant's journey."""
    from annulus.allocation.selectors import audit_mismatches as allocation
    from annulus.monitoring.selectors import audit_mismatches as monitoring
    from annulus.participants.selectors import audit_mismatches as screening
    from annulus.queries.selectors import audit_mismatches as queries
    from annulus.safety.selectors import audit_mismatches as adverse_events
    from annulus.visits.selectors import audit_mismatches as visits

    return [screening, allocation, visits, adverse_events, queries, monitoring]


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
