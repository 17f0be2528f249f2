"""``annulus backup --out FILE`` and ``annulus restore FILE [--checkpoints DIR]`` (see
``annulus.backup``)."""

from __future__ import annotations

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    b = subparsers.add_parser("backup", help="back up the database (pg_dump on PostgreSQL, the online backup API on "
                                             "SQLite) with its checksum and audit head in FILE.json")
    b.add_argument("--out", metavar="FILE", required=True)
    b.set_defaults(func=run_backup)
    r = subparsers.add_parser("restore", help="restore a backup into an empty database, then verify the audit trail")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--checkpoints", metavar="DIR", default="",
                   help="also check the restored trail against these checkpoints (an older backup is a rollback)")
    r.set_defaults(func=run_restore)


def run_backup(args) -> int:
    setup_django()
    from annulus.backup import BackupError, backup

    try:
        m = backup(args.out)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"backup written: {args.out} ({m['size']} bytes, sha256 {m['sha256']}; audit trail of "
          f"{m['audit'].get('count', 0)} events, head {m['audit'].get('hash', '')[:16]}…)")
    return 0


def run_restore(args) -> int:
    setup_django()
    from annulus.audit import keys
    from annulus.audit.checkpoints import CheckpointError, read
    from annulus.audit.selectors import verify_chain
    from annulus.backup import BackupError, restore

    key = keys.current()
    if args.checkpoints and key is None:
        raise CliError("no audit key: set ANNULUS_AUDIT_KEY_FILE to check checkpoints")
    try:
        marks = read(args.checkpoints) if args.checkpoints else []
        m = restore(args.file)
    except (BackupError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    print(f"restored {args.file} (made {m['created_at']})")
    result = verify_chain(key=key, checkpoints=marks)
    if result.ok:
        print(f"audit trail intact: {result.checked} events checked" + (", MACs checked" if key else "")
              + (f", {len(marks)} checkpoints matched" if marks else ""))
        return 0
    print(f"audit trail BROKEN{result.where}: {result.problem} ({result.checked} events checked)")
    return 1
