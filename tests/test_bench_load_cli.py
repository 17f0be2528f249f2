"""``annulus bench load`` and ``bench faults`` (X-7.3 harness): bad arguments and a missing
PostgreSQL get one line and exit 2, before anything is filled or served."""

from __future__ import annotations

import pytest

from annulus.cli import main

pytestmark = pytest.mark.req("X-7.3")


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "load", "--clients", "0"], "--clients must be between 1 and 256"),
    (["bench", "load", "--seconds", "0"], "--seconds must be between 1 and 3600"),
    (["bench", "load", "--think", "-1"], "--think must be between 0 and 60 seconds"),
    (["bench", "faults", "--every", "0"], "--every must be between 0.2 and 600 seconds"),
    (["bench", "faults", "--clients", "100"], "--clients must be between 1 and 64"),
])
def test_bad_arguments_get_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_harness_needs_postgresql(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/not-postgres.sqlite3")
    assert main(["bench", "load", "--clients", "2", "--seconds", "1"]) == 2
    assert "runs on PostgreSQL" in capsys.readouterr().err
