"""Page latency at 100 and 10,000 participants (dashboard, list, participant page, API list).

Fills a scratch database through the simulator and the services - screening, then the whole
journey of everyone enrolled (randomised, treated, visits, adverse events; see
``annulus.bench._journey``) under an amendment with room for the largest size - then requests each page
repeatedly in-process and prints p50/p95 in ms, the number of SQL queries per page (a page
whose query count grows with the trial has an N+1 problem) and the large/small ratio.
On PostgreSQL (DATABASE_URL=postgres://...) the scratch database is ``annulus_bench`` (or
``$ANNULUS_BENCH_DB``);
on SQLite a temporary file.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from annulus.cli import CliError


def add_arguments(parser) -> None:
    parser.add_argument("--subjects", default="100,10000", help="comma-separated trial sizes (default 100,10000)")
    parser.add_argument("--repeat", type=int, default=40, help="requests per page and size (default 40)")
    parser.add_argument("--seed", type=int, default=7)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--subjects must be whole numbers separated by commas, got {text!r}") from None
    if not sizes or any(n < 1 or n > 200_000 for n in sizes):
        raise CliError("--subjects: each size must be between 1 and 200000")
    return sizes


def _scratch_database() -> str:
    """Point Django at a scratch database before it is set up; returns a description."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        base, _, _name = url.rpartition("/")
        name = os.environ.get("ANNULUS_BENCH_DB", "annulus_bench")
        if not name.replace("_", "").isalnum():
            raise CliError(f"ANNULUS_BENCH_DB must be a plain database name, got {name!r}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
        return f"PostgreSQL database {name}"
    tmp = tempfile.mkdtemp(prefix="annulus-bench-")
    os.environ["ANNULUS_VAR_DIR"] = tmp
    os.environ.pop("DATABASE_URL", None)
    return f"SQLite {tmp}/annulus.sqlite3"


def _fill(target: int, seed: int, coord, inv, progress) -> None:
    """Grow the trial to ``target`` participants through the screening services."""
    from datetime import timedelta

    from django.utils import timezone

    from annulus.errors import RuleViolation
    from annulus.participants import services as ps
    from annulus.participants.models import Participant
    from annulus.simulator import generate_candidates
    from annulus.trial.demo import _aware

    have = Participant.objects.count()
    need = target - have
    if need <= 0:
        return
    today = timezone.localdate()
    people = generate_candidates(need, seed=seed + have, start=today - timedelta(days=700), days=690)
    from annulus.accounts.services import sign
    from annulus.trial.demo import DEMO_PASSWORD

    signature = sign(user=inv, password=DEMO_PASSWORD, meaning=ps.ELIGIBILITY_SIGNATURE)
    for i, c in enumerate(people, 1):
        p = ps.prescreen(actor=coord, initials=c.initials, sex=c.sex, recruitment_source=c.source,
                         prescreened_on=c.prescreened_on, full_name=c.full_name, phone=c.phone)
        if c.consents:
            ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                              consented_at=_aware(c.prescreened_on, 9), taken_by=inv)
            ps.enter_evidence(actor=coord, participant_id=p.pk, values=c.evidence, collected_on=c.prescreened_on)
            try:
                d = ps.decide_eligibility(actor=inv, participant_id=p.pk, signature=signature)
                if d.outcome == "eligible":
                    ps.enrol(actor=inv, participant_id=p.pk, enrolled_at=_aware(c.prescreened_on, 11))
            except RuleViolation:
                pass  # the 100 case numbers are used up: the person stays eligible
        if i % 50 == 0 or i == need:
            progress(have + i, target)


def _measure(client, url: str, repeat: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches and templates
    times = []
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise CliError(f"{url} answered {response.status_code}")
        queries = len(ctx.captured_queries)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, queries


def run(args) -> int:
    sizes = sorted(_sizes(args.subjects))
    if args.repeat < 5:
        raise CliError("--repeat must be at least 5")
    where = _scratch_database()
    from annulus.cli import setup_django

    setup_django()
    from django.core.management import call_command
    from django.test import Client

    from rich.progress import Progress

    call_command("migrate", interactive=False, verbosity=0)
    from annulus.trial.demo import create_demo_users
    from annulus.trial.services import load_default_protocol

    load_default_protocol()
    from annulus.bench import _journey
    from annulus.trial.services import load_protocol_version

    # an amendment of the shipped protocol with room for the largest size (sample size and
    # case-number width), so that every eligible person is enrolled and followed up
    load_protocol_version(actor=None, text=_journey.sized_protocol_text(max(sizes)))
    users = create_demo_users()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    print(f"annulus bench pages on {where}; {args.repeat} requests per page")
    results: dict[int, dict[str, tuple]] = {}
    for size in sizes:
        with Progress(transient=True) as bar:
            task = bar.add_task(f"filling to {size} participants", total=size)
            _fill(size, args.seed, users["coordinator"], users["investigator"],
                  lambda done, total: bar.update(task, completed=done))
            bar.update(task, description=f"journey of the enrolled ({size} participants)")
            started = time.perf_counter()
            taken = _journey.advance(users, seed=args.seed,
                                     progress=lambda msg: bar.update(task, description=msg))
        from django.db.models import Count

        from annulus.participants.models import Participant

        statuses = dict(Participant.objects.values_list("status").annotate(n=Count("id")).order_by())
        print(f"\n{size} participants filled ({taken} taken through the journey in "
              f"{time.perf_counter() - started:.0f} s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
        followed = Participant.objects.filter(status="in_follow_up").order_by("id")
        sample = (followed[followed.count() // 2] if followed.exists()
                  else Participant.objects.order_by("id")[Participant.objects.count() // 2])
        client = Client()
        client.force_login(users["coordinator"])
        pages = {
            "dashboard": "/",
            "participant list": "/participants/?sort=-updated",
            "participant page": f"/participants/{sample.pk}/",
            "API list": "/api/v1/participants?page=2",
        }
        results[size] = {name: _measure(client, url, args.repeat) for name, url in pages.items()}
        print(f"  {'page':<18}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}")
        for name, (p50, p95, q) in results[size].items():
            print(f"  {name:<18}{p50:>9.1f}{p95:>9.1f}{q:>9}")
        sys.stdout.flush()
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print(f"\nratio p95 {large}/{small} (target <= 1.3; same query count means no N+1):")
        for name in results[small]:
            a, b = results[small][name], results[large][name]
            print(f"  {name:<18}{b[1] / a[1]:>6.2f}   queries {a[2]} -> {b[2]}")
    return 0
