"""The production server as an operator starts it: ``annulus serve --production`` (gunicorn,
WhiteNoise, production settings) in a subprocess on a free port, against a database of its own (a
SQLite file, or a scratch PostgreSQL database when DATABASE_URL is postgres), and a small HTTP
client that keeps cookies by hand (the session and CSRF cookies are Secure, which
``http.cookiejar`` would withhold over plain HTTP) and says it came through a TLS proxy."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

from tests.conftest import postgres_url

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "opsadmin"
ADMIN_PASSWORD = "Serve-Admin-Pass-2026!"
SITE_URL = "https://annulus.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(var_dir: Path, **extra) -> dict:
    """The environment of a production installation: no ANNULUS_* of the test run leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANNULUS_", "DJANGO_", "DATABASE_URL"))}
    env.update({
        "PYTHONPATH": str(ROOT / "src"),
        "ANNULUS_VAR_DIR": str(var_dir),
        "ANNULUS_SECRET_KEY": secrets.token_urlsafe(50),
        "ANNULUS_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "ANNULUS_SITE_URL": SITE_URL,
        "ANNULUS_BEHIND_TLS_PROXY": "1",
    })
    env.update(extra)
    return env


def _pg_admin():
    import psycopg

    url = urllib.parse.urlsplit(postgres_url())
    return psycopg.connect(host=url.hostname, port=url.port or 5432, user=url.username or "postgres",
                           password=url.password or None, dbname="postgres", autocommit=True)


def terminate_backends(dbname: str) -> int:
    """Ends every connection to ``dbname`` (as a PostgreSQL restart or failover would); how many."""
    with _pg_admin() as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", [dbname]).fetchall()
    return sum(1 for (ok,) in rows if ok)


def backends(dbname: str) -> int:
    with _pg_admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchone()[0]


class ProductionServer:
    """Starts in ``__enter__`` (database, first administrator, ``annulus serve --production``),
    stops its whole process group and drops its database in ``__exit__``."""

    def __init__(self, var_dir: Path, *, workers: int = 2, threads: int = 2, tag: str = "srv", **env):
        self.var_dir = Path(var_dir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.var_dir / "server.log"
        self.dbname = None
        database_url = f"sqlite:///{self.var_dir / 'production.sqlite3'}"
        if postgres_url():
            prefix = os.environ.get("ANNULUS_TEST_DB_NAME", "test_annulus")
            self.dbname = f"{prefix}_{tag}_{os.getpid()}"[:63]
            parts = urllib.parse.urlsplit(postgres_url())
            database_url = urllib.parse.urlunsplit(parts._replace(path="/" + self.dbname))
        self.env = base_env(self.var_dir, DATABASE_URL=database_url, **env)
        self.argv = [sys.executable, "-m", "annulus", "serve", "--production", "--host", "127.0.0.1",
                     "--port", str(self.port), "--workers", str(workers), "--threads", str(threads)]
        self.process = None

    def __enter__(self):
        if self.dbname:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{self.dbname}"')
        made = subprocess.run([sys.executable, "-m", "annulus", "user", "create", ADMIN, "--role", "admin"],
                              env={**self.env, "ANNULUS_PASSWORD": ADMIN_PASSWORD}, capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr
        self._out = open(self.log, "w")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self._out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server stopped (exit {self.process.returncode}):\n{self.log.read_text()}")
            try:
                if Client(self.base).get("/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise AssertionError(f"the server did not answer within 120 s:\n{self.log.read_text()}")

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)  # gunicorn: quick shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if getattr(self, "_out", None):
            self._out.close()
        if self.dbname:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


class Response:
    def __init__(self, raw: http.client.HTTPResponse):
        self.status = raw.status
        self.headers = raw.headers
        self.body = raw.read()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Client:
    """HTTP/1.1 with cookies kept by hand; every request says it came through the TLS proxy
    (``X-Forwarded-Proto: https``) and a POST carries the site's Origin and Referer, as a
    browser's would."""

    def __init__(self, base: str, *, via_proxy: bool = True):
        self.base = base
        self.netloc = urllib.parse.urlsplit(base).netloc
        self.via_proxy = via_proxy
        self.cookies: dict[str, str] = {}
        self.set_cookies: dict[str, str] = {}  # name -> the raw Set-Cookie line last seen

    def request(self, method: str, path: str, form: dict | None = None) -> Response:
        host, port = self.netloc.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {}
        if self.via_proxy:
            headers["X-Forwarded-Proto"] = "https"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers.update({"Content-Type": "application/x-www-form-urlencoded",
                            "Origin": f"https://{self.netloc}", "Referer": f"https://{self.netloc}{path}"})
        try:
            conn.request(method, path, body=body, headers=headers)
            response = Response(conn.getresponse())
        finally:
            conn.close()
        for line in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                self.set_cookies[name] = line
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: dict) -> Response:
        return self.request("POST", path, form)

    def log_in(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> Response:
        page = self.get("/accounts/login/")
        assert page.status == 200, page.status
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return self.post("/accounts/login/", {"csrfmiddlewaretoken": token, "username": username,
                                              "password": password})
