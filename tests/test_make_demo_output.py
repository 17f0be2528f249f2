"""`make demo` is quiet and installs only what the demo needs: its mail goes to files (the output
says where), the output states the real fill time and a participant link to try with its card
code, the demo's audit trail verifies, the demo's install step brings no test tools
(those come with `make test`), and the package metadata raises no setuptools deprecation."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _recipe(makefile: str, target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of a Makefile target."""
    m = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)
    assert m, target
    return m.group(1), m.group(2)


def test_demo_installs_no_test_tools():
    makefile = (ROOT / "Makefile").read_text()
    _, install = _recipe(makefile, "$(STAMP)")
    assert "pip install" in install and "[test]" not in install
    demo_needs, _ = _recipe(makefile, "demo")
    assert "$(STAMP)" in demo_needs and "TEST_STAMP" not in demo_needs
    test_needs, _ = _recipe(makefile, "test")
    assert "$(TEST_STAMP)" in test_needs
    _, test_install = _recipe(makefile, "$(TEST_STAMP)")
    assert ".[test]" in test_install


def test_package_metadata_has_no_deprecated_license_table():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # an SPDX expression, not {text = ...}
    setuptools_req = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=(\d+)", setuptools_req).group(1)) >= 77  # the first that reads SPDX strings


def test_demo_output_is_short_says_where_mail_goes_and_the_fill_time(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ANNULUS_EMAIL_BACKEND",
                                                             "ANNULUS_SECRET_KEY", "ANNULUS_EMAIL_FILE_PATH")}
    env["ANNULUS_VAR_DIR"] = str(tmp_path)
    # the smallest demo trial the command fills (20 people pre-screened, not `make demo`'s 130): the
    # same output, with participants in follow-up, mail and a questionnaire link
    r = subprocess.run([sys.executable, "-m", "annulus", "demo", "--no-serve", "--port", "8765", "--candidates", "20"],
                       capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "Content-Type:" not in out and "Subject:" not in out  # no raw e-mail in the output
    assert len(out.strip().splitlines()) < 30, out
    assert re.search(r"Demo trial filled in \d+ s", out), out
    mail = tmp_path / "mail"
    assert f"{mail}" in out
    assert any(mail.iterdir())  # the e-mails are in the files it names
    # one participant link to try, with its card code; the schedule's links are in the outbox
    assert re.search(r"^Participant questionnaire \(open it on a phone\): http://127\.0\.0\.1:8765/p/[\w-]{40,}/"
                     r"  \(card code \d{6}\)$", out, re.M), out
    assert any((tmp_path / "selfentry-outbox").iterdir())
    # the trail of the whole fill verifies
    audit = subprocess.run([sys.executable, "-m", "annulus", "audit", "verify"], capture_output=True, text=True,
                           env=env, timeout=600, cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_demo_refuses_a_number_of_candidates_it_cannot_fill(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ANNULUS_SECRET_KEY")}
    env["ANNULUS_VAR_DIR"] = str(tmp_path)
    for bad in ("5", "100000"):
        r = subprocess.run([sys.executable, "-m", "annulus", "demo", "--no-serve", "--candidates", bad],
                           capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
        assert r.returncode != 0 and "--candidates: give 20 to 1000" in r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "annulus.sqlite3").exists()  # refused before anything is written
