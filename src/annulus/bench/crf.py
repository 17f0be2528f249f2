"""eCRF throughput: complete visit forms saved per second through the service layer, beside
pgbench simple-update TPS on the same PostgreSQL server.

Each saved form is the whole write the eCRF does: items checked, scores computed by the
instruments, the form row, its revision, the audit event (hash chain), the visit's completion
check, committed to the database. One client, like ``pgbench -c 1``. Two ways of saving are
timed, each with N forms:

- per form: one transaction per form (``save_form``, the single form page and the API's form route);
- per visit: one transaction per visit with its eleven forms (``save_visit_forms``, the visit
  entry page and the API's visit route) — one lock of the visit and of the audit chain, the
  rows written in bulk.

The run never touches the trial's own data: it migrates a scratch database on the configured
server (``bench_crf`` on PostgreSQL, a temporary file on SQLite), fills one participant with
unscheduled visits of eleven forms each, and drops the scratch database afterwards
(``--keep`` leaves it). pgbench runs against its own scratch database ``bench_pgbench``
(``pgbench -i``, then ``pgbench -N -c 1`` for half the seconds before and half after the
forms; the TPS is the mean of the two).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, time as dtime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from annulus.cli import CliError

CRF_DB = "bench_crf"
PGBENCH_DB = "bench_pgbench"
FORMS = ["vas", "odi", "joa", "sf36", "imaging", "vitals", "blood_routine", "liver_kidney", "immunology",
         "urinalysis", "adverse_events"]


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--forms", type=int, default=2000, help="complete forms to save (default 2000)")
    parser.add_argument("--seconds", type=int, default=10, help="pgbench run time (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed for the answers")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")


def _pg_env(url) -> dict:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def _pg_args(url) -> list[str]:
    args = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args


def _admin(url, sql: str) -> None:
    import psycopg

    conninfo = dict(host=url.hostname or "127.0.0.1", port=url.port or 5432, user=url.username,
                    password=url.password, dbname=(url.path or "/postgres").lstrip("/") or "postgres")
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute(sql)


def _scratch_url(url, name: str) -> str:
    return url._replace(path=f"/{name}").geturl()


def run(args) -> int:
    if args.forms < 1:
        raise CliError("--forms must be at least 1")
    if args.seconds < 2:
        raise CliError("--seconds must be at least 2")
    configured = os.environ.get("DATABASE_URL", "")
    url = urlparse(configured) if configured.startswith(("postgres://", "postgresql://")) else None
    tmpdir = None
    tps_runs: list[float] = []
    if url is not None:
        if shutil.which("pgbench") is None:
            raise CliError("pgbench is not installed (PostgreSQL client tools)")
        try:
            for name in (CRF_DB, PGBENCH_DB):
                _admin(url, f'DROP DATABASE IF EXISTS "{name}"')
                _admin(url, f'CREATE DATABASE "{name}"')
        except Exception as exc:  # noqa: BLE001 - one line for any connection problem
            raise CliError(f"cannot create the scratch databases: {exc}".splitlines()[0]) from None
        _pgbench_init(url)
        # pgbench runs half before and half after the forms, so that a change in the machine's
        # load during the run weighs on both figures alike
        tps_runs.append(_pgbench(url, args.seconds // 2))
        os.environ["DATABASE_URL"] = _scratch_url(url, CRF_DB)
        where = f"PostgreSQL {url.hostname}:{url.port or 5432}/{CRF_DB}"
    else:
        tmpdir = tempfile.mkdtemp(prefix="annulus-bench-crf-")
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tmpdir) / 'bench.sqlite3'}"
        where = "SQLite (scratch file)"
    try:
        rates = _forms_per_second(args)
    finally:
        os.environ["DATABASE_URL"] = configured
        if tmpdir and not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    for mode, (rate, n) in rates.items():
        print(f"eCRF {mode:9s}: {n} complete forms in {n / rate:.2f} s = {rate:.1f} forms/s  ({where}, 1 client)")
    if url is None:
        print("pgbench: needs PostgreSQL; set DATABASE_URL=postgres://... to compare (no ratio on SQLite)")
        return 0
    tps_runs.append(_pgbench(url, args.seconds - args.seconds // 2))
    if not args.keep:
        from django.db import connections

        connections.close_all()
        for name in (CRF_DB, PGBENCH_DB):
            _admin(url, f'DROP DATABASE IF EXISTS "{name}"')
    tps = sum(tps_runs) / len(tps_runs)
    print(f"pgbench -N (simple update), 1 client, {args.seconds} s: {tps:.1f} TPS "
          f"(before {tps_runs[0]:.1f}, after {tps_runs[1]:.1f})")
    for mode, (rate, _n) in rates.items():
        print(f"ratio {mode:9s}: eCRF forms/s / pgbench TPS = {rate / tps:.3f} ({100 * rate / tps:.1f} %)")
    return 0


def _pgbench_init(url) -> None:
    init = subprocess.run(["pgbench", *_pg_args(url), "-i", "-q", PGBENCH_DB], env=_pg_env(url),
                          capture_output=True, text=True)
    if init.returncode:
        raise CliError(f"pgbench -i failed: {(init.stderr or init.stdout).strip().splitlines()[-1]}")


def _pgbench(url, seconds: int) -> float:
    out = subprocess.run(["pgbench", *_pg_args(url), "-N", "-c", "1", "-T", str(seconds), PGBENCH_DB],
                         env=_pg_env(url), capture_output=True, text=True)
    if out.returncode:
        raise CliError(f"pgbench failed: {(out.stderr or out.stdout).strip().splitlines()[-1]}")
    m = re.search(r"tps = ([0-9.]+) \((?:without|excluding) initial connection", out.stdout) or \
        re.search(r"tps = ([0-9.]+)", out.stdout)
    if m is None:
        raise CliError("could not read the TPS from pgbench's output")
    return float(m.group(1))


def _forms_per_second(args) -> dict[str, tuple[float, int]]:
    from annulus.cli import setup_django

    setup_django()
    from django.core.management import call_command
    from django.utils import timezone

    from annulus.simulator.trajectories import simulate_participant
    from annulus.visits import services

    call_command("migrate", interactive=False, verbosity=0)
    user, pid = _participant()
    day = timezone.localdate()
    collected = min(timezone.make_aware(datetime.combine(day, dtime(8, 0))), timezone.now())
    answers = [simulate_participant(["control", "low", "mid", "high"][i % 4], seed=args.seed, index=i).visits["baseline"]
               for i in range(200)]

    def plan() -> list[tuple[str, dict]]:
        """Fresh unscheduled visits holding N forms: (visit key, form -> answers)."""
        visits = []
        left = args.forms
        while left > 0:
            v = services.add_unscheduled_visit(actor=user, participant_id=pid, visit_date=day,
                                               reason="throughput benchmark", forms=FORMS)
            a = answers[len(visits) % len(answers)]
            visits.append((v.key, {f: a[f] for f in FORMS[:left]}))
            left -= len(FORMS)
        return visits

    rates = {}
    work = plan()
    started = time.perf_counter()
    for key, forms in work:
        for form_id, items in forms.items():
            services.save_form(actor=user, participant_id=pid, visit_key=key, form_id=form_id, items=items,
                               complete=True, collected_at=collected)
    rates["per form"] = (args.forms / (time.perf_counter() - started), args.forms)
    work = plan()
    started = time.perf_counter()
    for key, forms in work:
        services.save_visit_forms(actor=user, participant_id=pid, visit_key=key, forms=forms, complete=True,
                                  collected_at=collected)
    rates["per visit"] = (args.forms / (time.perf_counter() - started), args.forms)
    return rates


def _participant():
    """A randomised participant with liposuction, made through the participant services."""
    from django.utils import timezone

    from annulus.accounts.services import create_user
    from annulus.participants import services as ps
    from annulus.simulator import generate_candidates
    from annulus.trial.selectors import active_protocol
    from annulus.trial.services import load_default_protocol
    from annulus.visits import services as vs

    load_default_protocol()
    roles = {r.id for r in active_protocol().roles}
    user = create_user(actor=None, username="bench", password="Bench-Password-2026!", role="investigator",
                       known_roles=roles, check_password=False)
    today = timezone.localdate()
    for c in generate_candidates(60, seed=7, start=today - timedelta(days=60), days=30):
        if not c.consents:
            continue
        p = ps.prescreen(actor=user, initials=c.initials, sex=c.sex, recruitment_source=c.source,
                         prescreened_on=c.prescreened_on, full_name=c.full_name, phone=c.phone)
        ps.record_consent(actor=user, participant_id=p.pk, consent_version="1.0",
                          consented_at=timezone.now() - timedelta(days=20), taken_by=user)
        ps.enter_evidence(actor=user, participant_id=p.pk, values=c.evidence, collected_on=today - timedelta(days=19))
        if ps.decide_eligibility(actor=user, participant_id=p.pk,
                                 password="Bench-Password-2026!").outcome != "eligible":
            continue
        ps.enrol(actor=user, participant_id=p.pk, enrolled_at=timezone.now() - timedelta(days=18))
        ps.advance(actor=user, participant_id=p.pk, target="randomised", reason="benchmark participant")
        vs.record_liposuction(actor=user, participant_id=p.pk, performed_on=today - timedelta(days=15),
                              fat_volume_ml=150, observation_hours=4)
        return user, p.pk
    print("no eligible candidate among 60", file=sys.stderr)
    raise CliError("could not build the benchmark participant")
