"""Production settings: no start without ANNULUS_SECRET_KEY (one line naming it, no traceback),
``check --deploy`` finds nothing to warn about, and development keeps its own key, plain cookies
and uncollected static files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.production_support import SITE_URL, base_env

pytestmark = pytest.mark.req("P-7.2")


def _run(argv, env, timeout=120):
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("how", ["flag", "env", "empty key"])
def test_production_refuses_to_start_without_the_secret_key(tmp_path, how):
    env = base_env(tmp_path)
    argv = ["-m", "annulus", "serve", "--port", "8999"]
    if how == "flag":
        del env["ANNULUS_SECRET_KEY"]
        argv.append("--production")
    elif how == "env":
        del env["ANNULUS_SECRET_KEY"]
        env["ANNULUS_PRODUCTION"] = "1"
    else:
        env["ANNULUS_SECRET_KEY"] = ""
    r = _run(argv, env)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "ANNULUS_SECRET_KEY must be set" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "annulus.sqlite3").exists()  # refused before touching a database


def test_debug_is_refused_in_production(tmp_path):
    r = _run(["-m", "annulus", "serve", "--production"], base_env(tmp_path, ANNULUS_DEBUG="1"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "ANNULUS_DEBUG" in r.stderr


def test_the_demo_refuses_a_production_installation(tmp_path):
    r = _run(["-m", "annulus", "demo", "--no-serve"], base_env(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "use annulus serve" in r.stderr
    assert not (tmp_path / "annulus.sqlite3").exists()


def test_check_deploy_has_no_warnings(tmp_path):
    env = base_env(tmp_path, DJANGO_SETTINGS_MODULE="annulus.site.settings",
                   DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    r = _run(["-m", "django", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues (0 silenced)." in r.stdout, r.stdout + r.stderr
    # and it does warn when a production safeguard is turned off
    off = _run(["-m", "django", "check", "--deploy", "--fail-level", "WARNING"], {**env, "ANNULUS_SSL_REDIRECT": "0"})
    assert off.returncode != 0 and "security.W008" in off.stdout + off.stderr


SHOW = ("import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'key': s.SECRET_KEY, 'secure': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE], "
        "'httponly': s.SESSION_COOKIE_HTTPONLY, 'hsts': s.SECURE_HSTS_SECONDS, 'redirect': s.SECURE_SSL_REDIRECT, "
        "'static': s.STORAGES['staticfiles']['BACKEND'], 'health': s.DATABASES['default']['CONN_HEALTH_CHECKS'], "
        "'proxy': getattr(s, 'SECURE_PROXY_SSL_HEADER', None), 'origins': s.CSRF_TRUSTED_ORIGINS}))")


def test_production_and_development_settings(tmp_path):
    prod_env = base_env(tmp_path, DJANGO_SETTINGS_MODULE="annulus.site.settings")
    prod = json.loads(_run(["-c", SHOW], prod_env).stdout)
    assert prod["key"] == prod_env["ANNULUS_SECRET_KEY"]
    assert prod["secure"] == [True, True] and prod["httponly"] is True
    assert prod["hsts"] >= 365 * 24 * 3600 and prod["redirect"] is True
    assert prod["static"].endswith("ManifestStaticFilesStorage") and prod["health"] is True
    assert prod["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"] and prod["origins"] == [SITE_URL]
    dev_env = {k: v for k, v in prod_env.items() if not k.startswith("ANNULUS_") or k == "ANNULUS_VAR_DIR"}
    dev = json.loads(_run(["-c", SHOW], dev_env).stdout)
    assert dev["key"].startswith("annulus-development-key")
    assert dev["secure"] == [False, False] and dev["hsts"] == 0 and dev["redirect"] is False
    assert dev["static"] == "django.contrib.staticfiles.storage.StaticFilesStorage"  # nothing to collect
    assert dev["proxy"] is None and dev["origins"] == []
    bad = _run(["-c", SHOW], {**prod_env, "ANNULUS_SSL_REDIRECT": "perhaps"})
    assert bad.returncode != 0 and "ANNULUS_SSL_REDIRECT='perhaps' is not a yes/no value" in bad.stderr
