"""The lock guard against PostgreSQL (P-3.7): a write and the lock signature cannot cross. A write
in progress holds the trial-state row FOR SHARE, so the signature (FOR UPDATE) waits for it;
writes do not wait for each other; a write that starts while the signature is being made waits
for it and is then refused.

ANNULUS_TEST_DB_NAME=test_lock DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    .venv/bin/pytest tests/test_lock_race.py
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from annulus.trial.lock import TrialLocked, assert_writable
from annulus.trial.models import TrialState
from tests.conftest import postgres_url

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")]


@pytest.fixture
def committed(committed_db, protocol_version):
    """Committed rows the threads can see (``committed_db``)."""
    TrialState.objects.update_or_create(id=1, defaults={"state": "recruiting"})
    yield


def _thread(fn, out, key):
    def run():
        try:
            out[key] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects every outcome
            out[key] = exc
        finally:
            out[f"{key}_at"] = time.monotonic()
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    return t


def _sign():
    with transaction.atomic():
        ts = TrialState.objects.select_for_update().get(id=1)
        ts.state = "locked"
        ts.save()
    return "locked"


def test_the_signature_waits_for_a_write_in_progress_and_writes_do_not_wait_for_each_other(committed):
    holding, release = threading.Event(), threading.Event()
    out = {}

    def write():
        with transaction.atomic():
            assert_writable("a long write")
            holding.set()
            release.wait(10)
        return "written"

    w = _thread(write, out, "write")
    assert holding.wait(10)
    s = _thread(_sign, out, "sign")
    other = _thread(lambda: transaction.atomic()(lambda: assert_writable("another write").state)(), out, "other")
    other.join(10)
    assert out["other"] == "recruiting"  # a second write passed while the first holds the row
    time.sleep(0.5)
    assert "sign" not in out  # the signature waits for the write in progress
    released_at = time.monotonic()
    release.set()
    for t in (w, s):
        t.join(10)
    assert out["write"] == "written" and out["sign"] == "locked" and out["sign_at"] >= released_at


def test_a_write_that_starts_during_the_signature_waits_and_is_refused(committed):
    holding, release = threading.Event(), threading.Event()
    out = {}

    def sign_slowly():
        with transaction.atomic():
            ts = TrialState.objects.select_for_update().get(id=1)
            holding.set()
            release.wait(10)
            ts.state = "locked"
            ts.save()
        return "locked"

    s = _thread(sign_slowly, out, "sign")
    assert holding.wait(10)
    w = _thread(lambda: transaction.atomic()(lambda: assert_writable("a write").state)(), out, "write")
    time.sleep(0.5)
    assert "write" not in out  # waits for the signature's transaction
    release.set()
    for t in (s, w):
        t.join(10)
    assert out["sign"] == "locked"
    assert isinstance(out["write"], TrialLocked) and out["write"].field == "trial"
