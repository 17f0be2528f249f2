"""Nothing acknowledged is lost when server workers are killed and database connections cut.

The trial of ``annulus bench load`` (the demo trial on a scratch PostgreSQL database) is served by
``annulus serve --production``; ``--clients`` API clients each save, again and again, the VAS form
of one participant's 1-week visit with a new value, and keep a log of every save the server
acknowledged (200, with the revision it got). Meanwhile, every ``--every`` seconds, a gunicorn
worker is killed with SIGKILL, or every connection of the server to PostgreSQL is terminated
(``pg_terminate_backend``), by turns. Afterwards each acknowledged save is looked up: its revision
must hold its value (found) or it is lost; every revision saved must have its audit event
(otherwise half-written); ``annulus audit verify --data`` must pass. Prints acknowledged, found,
lost, half-written, the 5xx answers, the requests left unanswered (a killed worker's) and the audit
result. Target: 0 lost, 0 half-written, audit trail intact.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from annulus.bench import load
from annulus.cli import CliError


def add_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the writes run (default 30)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two faults (default 2)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")


CHECK = r"""
import json, sys
from annulus.cli import setup_django
setup_django()
from annulus.audit.selectors import replayed
from annulus.visits.models import FormRevision
acks = json.load(open(sys.argv[1]))
people = sorted({a[0] for a in acks} | set(json.load(open(sys.argv[2]))))
revisions = {}
for pid, number, items in FormRevision.objects.filter(form__participant_id__in=people, form__form_id="vas",
        form__visit__visit_id="w1").values_list("form__participant_id", "number", "items"):
    revisions[(pid, number)] = items.get("vas_mm")
found = sum(1 for pid, number, value in acks if revisions.get((pid, number)) == value)
# each revision saved has its audit event (the trail records the revision number of each save)
events = set()
from annulus.audit.models import AuditEvent
for payload, pid in AuditEvent.objects.filter(object_type="crf_form", participant_id__in=people).values_list(
        "payload", "participant_id"):
    changes = json.loads(payload)["changes"]
    if changes.get("form") == "vas" and changes.get("visit") == "w1":
        events.add((pid, changes.get("revision")))
half = sum(1 for key in revisions if key not in events)
print(json.dumps({"found": found, "revisions": len(revisions), "half_written": half}))
"""


def _workers(master: int) -> list[int]:
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _terminate_connections(database_url: str) -> int:
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                            "AND pid <> pg_backend_pid()", [name]).fetchall()
    return len(rows)


messages: set[str] = set()  # the distinct refusals and failures seen


def _writer(index: int, port: int, token: str, participant: int, deadline: float, acks: list, answers: list):
    rng = random.Random(1000 + index)
    client = load.Client(port, token)
    path = f"/api/v1/visits/participants/{participant}/visits/w1/forms/vas"
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    while time.monotonic() < deadline:
        value = rng.randint(0, 100)
        body = json.dumps({"items": {"vas_mm": value}, "complete": True, "reason": "fault benchmark"}).encode()
        try:
            status, data = client.request("PUT", path, body, headers)
        except Exception:  # noqa: BLE001 - a killed worker's request: no answer, nothing acknowledged
            answers.append(0)
            continue
        answers.append(status)
        if status >= 400:
            messages.add(f"HTTP {status}: {data[:160].decode(errors='replace')}")
        if status == 200:
            acks.append((participant, json.loads(data)["revision"], value))


def run(args) -> int:
    if not 1 <= args.clients <= 64:
        raise CliError("--clients must be between 1 and 64")
    if not 0.2 <= args.every <= 600:
        raise CliError("--every must be between 0.2 and 600 seconds")
    database_url = load.scratch_database()
    var = Path(tempfile.mkdtemp(prefix="annulus-bench-faults-"))
    print(f"annulus bench faults: PostgreSQL {database_url.rsplit('/', 1)[1]}, filling the demo trial ...", flush=True)
    setup = load.prepare(database_url, var)
    people = setup["participants"][:args.clients]
    if len(people) < args.clients:
        raise CliError(f"the demo trial has only {len(people)} participants to write to: use --clients {len(people)}")
    port = load._free_port()
    env = load.serve_env(database_url, var, port)
    server = load.start_server(env, port, args.workers)
    acks: list = []
    answers: list = []
    faults = {"killed": 0, "cut": 0}
    try:
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=_writer, args=(i, port, setup["tokens"][i], people[i], deadline, acks,
                                                          answers)) for i in range(args.clients)]
        for t in threads:
            t.start()
        turn = 0
        while time.monotonic() < deadline:
            time.sleep(args.every)
            if turn % 2 == 0:
                workers = _workers(server.pid)
                if workers:
                    os.kill(random.choice(workers), signal.SIGKILL)
                    faults["killed"] += 1
            else:
                faults["cut"] += _terminate_connections(database_url)
            turn += 1
        for t in threads:
            t.join(120)
    finally:
        load.stop_server(server)
    plain = {**os.environ, "DATABASE_URL": database_url, "ANNULUS_VAR_DIR": str(var)}
    acks_file, people_file = var / "acks.json", var / "people.json"
    acks_file.write_text(json.dumps(acks))
    people_file.write_text(json.dumps(people))
    done = subprocess.run([sys.executable, "-c", CHECK, str(acks_file), str(people_file)], env=plain,
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise CliError(f"checking the writes failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    check = json.loads(done.stdout.strip().splitlines()[-1])
    verdict = load.audit_verify(plain)
    lost = len(acks) - check["found"]
    print()
    print(f"{args.clients} writers, {args.seconds:.0f} s, {faults['killed']} workers killed, "
          f"{faults['cut']} database connections terminated")
    print(f"acknowledged {len(acks)}, found {check['found']}, lost {lost}, half-written {check['half_written']} "
          f"(of {check['revisions']} revisions saved)")
    print(f"answers: {sum(1 for a in answers if a == 200)} ok, "
          f"{sum(1 for a in answers if a == 503)} 503 (connection lost mid-save: 'may not have been saved'), "
          f"{sum(1 for a in answers if a >= 500 and a != 503)} other 5xx, "
          f"{sum(1 for a in answers if 400 <= a < 500)} 4xx, {sum(1 for a in answers if a == 0)} unanswered")
    for message in sorted(messages)[:8]:
        print(f"  {message}")
    print(f"audit: {verdict}")
    errors = sum(1 for a in answers if a >= 500 and a != 503)
    met = lost == 0 and check["half_written"] == 0 and errors == 0 and verdict.startswith("audit trail intact")
    print(f"target (0 lost, 0 half-written, no server error, audit trail intact): {'met' if met else 'NOT MET'}")
    return 0
