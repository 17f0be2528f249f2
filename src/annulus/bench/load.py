"""Throughput and latency under concurrent users, with the production server on PostgreSQL.

A scratch PostgreSQL database (``annulus_bench_load``, or ``$ANNULUS_BENCH_DB``) is filled with the
demo trial (``annulus demo --no-serve``: 130 participants screened, randomised, treated, in
follow-up with visits and adverse events); ``annulus serve --production`` then serves it with
gunicorn as behind a TLS proxy (``X-Forwarded-Proto: https``). ``--clients`` threads, half with a
browser session (logged in through the login form, CSRF token sent back) and half with an API
token, each keep one connection and run for ``--seconds`` a mix of page reads (dashboard,
participant list, a participant's page), API reads (the participant list, a schedule) and eCRF
saves (the VAS form of a 1-week visit, one participant per client, saved complete with a reason).
The session clients log in one at a time before the clock starts. ``--think S`` makes each client
pause S seconds on average (exponentially distributed) between two requests, as a person reading
the page; without it every client sends its next request at once, which measures the server
saturated rather than people using it.
It prints requests per second, p50/p95/p99 per kind, the errors (any status of 400 or more, or no
answer) and ``annulus audit verify --data`` on the database afterwards. Target on the 2-core
machine at 16 clients: 0 errors, p95 of reads under 300 ms, the audit trail intact.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from annulus.cli import CliError

READ_P95_TARGET_MS = 300.0
KINDS = ("page", "api", "save")
DEMO_PASSWORD = "Annulus-Demo-2026!"


def add_arguments(parser) -> None:
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: annulus serve's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: annulus serve's)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a client pauses between two requests, as a person reading the answer "
                             "(exponentially distributed; default 0: each client sends its next request at once)")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_database() -> str:
    """A new, empty PostgreSQL database for the run; returns its URL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise CliError("the load benchmark runs on PostgreSQL: set DATABASE_URL=postgres://... (the server to use)")
    import psycopg

    base, _, _name = url.rpartition("/")
    name = os.environ.get("ANNULUS_BENCH_DB", "annulus_bench_load")
    if not name.replace("_", "").isalnum():
        raise CliError(f"ANNULUS_BENCH_DB must be a plain database name, got {name!r}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _annulus(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "annulus", *args], env=env, capture_output=True, text=True, **kwargs)


SETUP = r"""
import json
from annulus.cli import setup_django
setup_django()
from django.contrib.auth import get_user_model
from annulus.accounts.services import issue_token
from annulus.visits.models import FormRecord
User = get_user_model()
users = {role: User.objects.get(username=role).username for role in ("coordinator", "investigator")}
targets = list(FormRecord.objects.filter(form_id="vas", visit__visit_id="w1", state__in=["complete", "changed"],
                                         participant__status__in=["treated", "in_follow_up"])
               .order_by("participant_id").values_list("participant_id", flat=True))
from django.db.models import Q
from annulus.participants.models import RecordLock
locked = set(RecordLock.objects.filter(unlocked_at__isnull=True).filter(
    Q(visit="", form="") | Q(visit="w1", form__in=["", "vas"])).values_list("participant_id", flat=True))
targets = [t for t in targets if t not in locked]
print(json.dumps({"tokens": [issue_token(user=User.objects.get(username="coordinator"), name="bench load %d" % i)
                             for i in range(64)],
                  "participants": sorted(set(targets))}))
"""


class Client:
    """One user on one keep-alive connection, cookies kept by hand (they are Secure: a client of
    the TLS proxy's plain-HTTP back end would otherwise drop them)."""

    def __init__(self, port: int, token: str | None = None):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        h = {"X-Forwarded-Proto": "https", "Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        for header, value in resp.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, data

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/accounts/login/")
        m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or not m:
            raise RuntimeError(f"login page answered {status}")
        form = f"csrfmiddlewaretoken={m.group(1).decode()}&username={username}&password={password}"
        status, _ = self.request("POST", "/accounts/login/", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "Referer": "https://127.0.0.1/accounts/login/"})
        if status != 302:
            raise RuntimeError(f"login answered {status}")


def _worker(index: int, port: int, token: str, participant: int, clock: dict, out: list, stop: threading.Event,
            ready: threading.Barrier, login_lock: threading.Lock, think: float):
    rng = random.Random(index)
    session = index % 2 == 0
    client = Client(port, None if session else token)
    failed = None
    try:
        if session:
            # one at a time, before the clock starts: the lockout takes a check per login in flight from
            # one address, and the figures are those of logged-in users
            with login_lock:
                client.login("coordinator", DEMO_PASSWORD)
    except Exception as exc:  # noqa: BLE001 - counted as an error of the run
        failed = f"login failed: {exc}"
    try:
        ready.wait(300)
    except threading.BrokenBarrierError:
        return
    if failed:
        out.append(("page", 0.0, 0, failed, "/accounts/login/"))
        return
    api = {"Accept": "application/json"}
    deadline = clock["deadline"]
    while time.monotonic() < deadline and not stop.is_set():
        if think:
            stop.wait(rng.expovariate(1 / think))  # a person reading the answer before the next click
            if time.monotonic() >= deadline or stop.is_set():
                break
        roll = rng.random()
        if roll < 0.45 and not session:  # a token opens no page: its reads are the API's
            roll = 0.45 + roll * 0.4 / 0.45
        if roll < 0.45:
            kind, method, path, body, headers = "page", "GET", rng.choice(
                ["/", "/participants/", f"/participants/{participant}/"]), None, {}
        elif roll < 0.85:
            kind, method, path, body, headers = "api", "GET", rng.choice(
                ["/api/v1/participants?page=1", f"/api/v1/visits/participants/{participant}/schedule"]), None, api
        else:
            kind, method = "save", "PUT"
            path = f"/api/v1/visits/participants/{participant}/visits/w1/forms/vas"
            body = json.dumps({"items": {"vas_mm": rng.randint(0, 100)}, "complete": True,
                               "reason": "load benchmark"}).encode()
            headers = {**api, "Content-Type": "application/json"}
            if session:
                headers["X-CSRFToken"] = client.cookies.get("csrftoken", "")
                headers["Referer"] = "https://127.0.0.1/"
        started = time.perf_counter()
        try:
            status, answer = client.request(method, path, body, headers)
            error = "" if status < 400 else f"HTTP {status} {method} {path}: {answer[:160].decode(errors='replace')}"
        except Exception as exc:  # noqa: BLE001
            status, error = 0, f"{type(exc).__name__} {method} {path}"
        out.append((kind, (time.perf_counter() - started) * 1000, status, error, path))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def serve_env(database_url: str, var: Path, port: int) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url, "ANNULUS_VAR_DIR": str(var),
                "ANNULUS_SECRET_KEY": secrets.token_urlsafe(48), "ANNULUS_SITE_URL": f"https://127.0.0.1:{port}",
                "ANNULUS_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "ANNULUS_ALLOWED_HOSTS": "127.0.0.1", "ANNULUS_BEHIND_TLS_PROXY": "1", "ANNULUS_SSL_REDIRECT": "0"})
    return env


def prepare(database_url: str, var: Path) -> dict:
    """Fill the scratch database with the demo trial; returns tokens and target participants."""
    env = {**os.environ, "DATABASE_URL": database_url, "ANNULUS_VAR_DIR": str(var)}
    for k in ("ANNULUS_SECRET_KEY", "ANNULUS_PRODUCTION"):
        env.pop(k, None)
    done = _annulus(["demo", "--no-serve"], env, timeout=1800)
    if done.returncode:
        raise CliError(f"filling the demo trial failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    done = subprocess.run([sys.executable, "-c", SETUP], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise CliError(f"preparing the clients failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_server(env: dict, port: int, workers: int | None, threads: int | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "annulus", "serve", "--production", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    if threads:
        args += ["--threads", str(threads)]
    log = open(Path(env["ANNULUS_VAR_DIR"]) / "server.log", "w")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if server.poll() is not None:
            raise CliError(f"the server stopped at start (see {log.name})")
        try:
            status, _ = Client(port).request("GET", "/accounts/login/")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise CliError(f"the server did not answer within 120 s (see {log.name})")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def audit_verify(env: dict) -> str:
    done = _annulus(["audit", "verify", "--data"], env, timeout=600)
    return (done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr) else "no answer"


def run(args) -> int:
    if not 1 <= args.clients <= 256:
        raise CliError("--clients must be between 1 and 256")
    if not 1 <= args.seconds <= 3600:
        raise CliError("--seconds must be between 1 and 3600")
    if not 0 <= args.think <= 60:
        raise CliError("--think must be between 0 and 60 seconds")
    database_url = scratch_database()
    var = Path(tempfile.mkdtemp(prefix="annulus-bench-load-"))
    print(f"annulus bench load: PostgreSQL {database_url.rsplit('/', 1)[1]}, filling the demo trial ...", flush=True)
    started = time.perf_counter()
    setup = prepare(database_url, var)
    people = setup["participants"]
    if not people:
        raise CliError("the demo trial has no participant with a 1-week VAS form to save")
    print(f"  filled in {time.perf_counter() - started:.0f} s; {len(people)} participants in follow-up with a 1-week "
          "visit",
          flush=True)
    port = args.port or _free_port()
    env = serve_env(database_url, var, port)
    server = start_server(env, port, args.workers, args.threads)
    results: list = []
    stop = threading.Event()
    clock: dict = {}
    began = [0.0]

    def start_clock():  # once every client is logged in (the barrier's action)
        clock["deadline"] = time.monotonic() + args.seconds
        began[0] = time.perf_counter()

    ready = threading.Barrier(args.clients, action=start_clock)
    login_lock = threading.Lock()
    try:
        threads = [threading.Thread(target=_worker, args=(i, port, setup["tokens"][i % len(setup["tokens"])],
                                                          people[i % len(people)], clock, results, stop, ready,
                                                          login_lock, args.think))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 420)
        elapsed = time.perf_counter() - began[0]
    finally:
        stop.set()
        stop_server(server)
    verdict = audit_verify({**os.environ, "DATABASE_URL": database_url, "ANNULUS_VAR_DIR": str(var)})
    return report(results, elapsed, args.clients, verdict, args.think)


def report(results: list, elapsed: float, clients: int, verdict: str, think: float = 0.0) -> int:
    errors = [r for r in results if r[3]]
    print()
    pause = f"a pause of {think:g} s on average between a client's requests" if think else "no pause between requests"
    print(f"{clients} clients ({pause}), {elapsed:.1f} s, {len(results)} requests, "
          f"{len(results) / elapsed:.1f} requests/s")
    print(f"{'kind':<6}{'count':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>8}")
    p95 = {}
    for kind in KINDS:
        times = [r[1] for r in results if r[0] == kind and not r[3]]
        p95[kind] = _percentile(times, 95)
        print(f"{kind:<6}{len([r for r in results if r[0] == kind]):>8}{_percentile(times, 50):>10.0f}"
              f"{p95[kind]:>10.0f}{_percentile(times, 99):>10.0f}{len([r for r in errors if r[0] == kind]):>8}")
    # the pages one by one (a participant's page is named once for all participants)
    named = {}
    for r in results:
        if r[0] == "page" and not r[3]:
            named.setdefault(re.sub(r"/\d+/", "/N/", r[4]), []).append(r[1])
    for path, times in sorted(named.items()):
        print(f"  {path:<22}{len(times):>6}{_percentile(times, 50):>10.0f}{_percentile(times, 95):>10.0f}"
              f"{_percentile(times, 99):>10.0f}")
    for message in sorted({r[3] for r in errors})[:10]:
        print(f"  error: {message}")
    print(f"audit: {verdict}")
    reads = max(p95["page"], p95["api"])
    met = not errors and reads < READ_P95_TARGET_MS and verdict.startswith("audit trail intact")
    print(f"target (0 errors, p95 of reads < {READ_P95_TARGET_MS:.0f} ms, audit trail intact): "
          f"{'met' if met else 'NOT MET'}")
    return 0
