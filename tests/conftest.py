"""Shared test configuration.

Every test that covers a requirement names it: ``@pytest.mark.req("P-2.1")`` (several IDs may be
given). ``annulus trace`` reads these markers to write docs/traceability.md.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


SHARED_SCOPES = ("module", "class", "package")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # A module whose tests share rows or results built once (a module- or class-scoped fixture
    # of this directory)
    # runs on one worker under `--dist loadgroup` (make test), so that they are built once; the
    # other tests are spread one by one. (tryfirst: before xdist reads the groups.)
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d and d[-1].scope in SHARED_SCOPES and d[-1].baseid.startswith("tests") for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    # Benchmarks and load runs are opt-in: `pytest -m slow` (make bench) runs them.
    if "slow" in (config.getoption("-m") or ""):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with `make bench` / `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def pytest_collection_finish(session):
    """Under `--dist loadgroup` a worker's tests carry their group in their node ids (``...@group``),
    which is how the controller keeps a group on one worker. A pytest that xdist cannot tag that
    way would silently spread every group over the workers and build its shared rows on each:
    the run stops instead."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"--dist loadgroup: {len(lost)} grouped tests lost their group (e.g. {lost[0]}); "
                                "this pytest and pytest-xdist do not work together (see pyproject.toml)")


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


NONCE = re.compile(r'nonce="[^"]*"')


def without_nonce(html: str) -> str:
    """A page with its Content-Security-Policy nonce masked: the nonce is random per response and
    says nothing about the data, so pages that must not differ (by arm, say) are compared without it."""
    return NONCE.sub('nonce="NONCE"', html)


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


# ---- Django fixtures ------------------------------------------------------------------------

TEST_PASSWORD = "Test-Password-2026!"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language():
    """Every test starts and ends in the default language. A page request made in Chinese leaves
    zh-hans active in its thread (LocaleMiddleware activates per request and restores nothing), so
    a later test of a service in the same worker would get its messages in Chinese."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


_TRUNCATE_PAUSED: list = []  # the database blocker of a test that paused the audit table's TRUNCATE guard


@pytest.fixture
def committed_db(transactional_db, django_db_blocker):
    """A transactional test: its rows are committed, so that other threads (other connections, a
    live server) see them. The audit table refuses TRUNCATE on PostgreSQL, which the flush after
    such a test needs: that one trigger is paused for the flush only, and restored once every
    fixture of the test is torn down (``pytest_runtest_teardown``), whatever their order."""
    from django.db import connection

    yield
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_truncate")
        _TRUNCATE_PAUSED.append(django_db_blocker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if nextitem is None:  # the last test: the test database is gone with the session's fixtures
        _TRUNCATE_PAUSED.clear()
    while _TRUNCATE_PAUSED:
        from django.db import connection

        with _TRUNCATE_PAUSED.pop().unblock(), connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_truncate")


# ---- rows built once for a module or a class ---------------------------------------------------

TRANSACTIONAL = ("transactional_db", "committed_db", "live_server", "django_db_reset_sequences")


@contextmanager
def shared_rows(request, django_db_blocker):
    """For tests that read the same expensive rows: build them once, not once per test. In a
    module- or class-scoped fixture (which also requests ``django_db_setup``)::

        with shared_rows(request, django_db_blocker) as shared:
            with shared.build():
                rows = ...  # through the services, as a test would
            yield rows

    The rows are written inside one transaction that stays open while the module's (the
    class's) tests run and is rolled back after the last one. Each test still runs in its own
    savepoint inside it (pytest-django's ``db``), so whatever a test writes is undone before the
    next test, as when every test built its own rows. Model instances built here are shared:
    hand tests fresh copies (``fresh``). ``shared.patch`` is a MonkeyPatch undone at the end,
    for patches the rows need (a date); passwords are hashed as in every test (``_fast_hashing``).

    A transactional test among those tests would commit inside that transaction: refused."""
    from django.db import transaction
    from django.test.utils import override_settings

    under = request.node.nodeid + "::"
    mixed = [item.nodeid for item in request.session.items
             if item.nodeid.startswith(under) and set(TRANSACTIONAL) & set(getattr(item, "fixturenames", ()))]
    if mixed:
        pytest.fail(f"rows shared with transactional tests: {mixed}")

    class Shared:
        patch = pytest.MonkeyPatch()

        @staticmethod
        @contextmanager
        def build():
            with django_db_blocker.unblock():
                yield

    hashing = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    hashing.enable()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        outer._from_testcase = True  # a service's durable atomic block may run inside it, as in a test
    try:
        yield Shared
    finally:
        Shared.patch.undo()
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
        hashing.disable()


def fresh(obj):
    """A copy of a shared model instance read again from the database, so that what one test
    does to an instance (a refresh, a changed field) never reaches the next test."""
    return type(obj)._default_manager.get(pk=obj.pk)


@pytest.fixture
def protocol_version(db):
    from annulus.trial.services import load_default_protocol

    return load_default_protocol()


def make_users() -> dict:
    """One user per protocol role, keyed by role id (plus 'pi', the principal investigator)."""
    from annulus.accounts.services import create_user
    from annulus.trial.selectors import active_protocol

    roles = {r.id for r in active_protocol().roles}
    out = {}
    for role in sorted(roles):
        out[role] = create_user(actor=None, username=f"t_{role}", password=TEST_PASSWORD, role=role,
                                known_roles=roles, check_password=False)
    out["pi"] = create_user(actor=None, username="t_pi", password=TEST_PASSWORD, role="investigator",
                            known_roles=roles, is_pi=True, check_password=False)
    return out


@pytest.fixture
def users(protocol_version):
    """One user per protocol role, keyed by role id (plus 'pi', the principal investigator)."""
    return make_users()


@pytest.fixture
def client_for(client, users):
    """``client_for("coordinator")`` -> a test client logged in with that role."""
    from django.test import Client

    def make(role: str) -> Client:
        c = Client()
        c.force_login(users[role])
        return c

    return make


ELIGIBLE_EVIDENCE = {
    "date_of_birth": "1980-05-01", "lbp_cough_sneeze": True, "lbp_sitting_bending": True,
    "lbp_posture": False, "lbp_relief_lying": True, "lbp_duration_months": 24, "vas_mm": 65,
    "odi_percent": 42, "modic_type": "II", "pfirrmann_grade": 4, "discography_l45_only_concordant": True,
    "disc_height_loss_percent": 30, "hbsag": "negative", "hiv": "negative", "cmv": "negative",
    "rubella": "negative", "spondylitis_or_fracture": False, "surgery_required": False,
    "intradiscal_injection_last_year": False, "slip_mm": 1.0, "angulation_deg": 6, "bmd_t_score": -0.5,
    "pregnancy_or_lactation": False, "mental_or_addiction": False, "systemic_disease_history": False,
    "allergy_ha_contrast_anaesthetic": False, "previous_cell_product": False,
}


@pytest.fixture
def make_participant(users):
    """Create a participant and take it to a status through the services:
    ``make_participant("enrolled")`` (also pre_screened, consented, screening, eligible, screen_failed)."""
    return participant_maker(users)


def participant_maker(users):
    """The ``make_participant`` function for these users (also for rows built once per module)."""
    from datetime import timedelta

    from django.utils import timezone

    from annulus.participants import services as ps

    def make(stage: str = "enrolled", **evidence_overrides):
        coord, inv = users["coordinator"], users["investigator"]
        today = timezone.localdate()
        p = ps.prescreen(actor=coord, initials="TP", sex="F", recruitment_source="inpatient_referral",
                         prescreened_on=today - timedelta(days=10), full_name="Test Person", phone="13800000000")
        if stage == "pre_screened":
            return p
        ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                          consented_at=timezone.now() - timedelta(days=9), taken_by=inv)
        if stage == "consented":
            return p.__class__.objects.get(pk=p.pk)
        values = {**ELIGIBLE_EVIDENCE, **evidence_overrides}
        if stage == "screen_failed" and not evidence_overrides:
            values["vas_mm"] = 20
        ps.enter_evidence(actor=coord, participant_id=p.pk, values=values, collected_on=today - timedelta(days=8))
        if stage == "screening":
            return p.__class__.objects.get(pk=p.pk)
        ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD)
        if stage in ("eligible", "screen_failed"):
            return p.__class__.objects.get(pk=p.pk)
        ps.enrol(actor=inv, participant_id=p.pk)
        return p.__class__.objects.get(pk=p.pk)

    return make


@pytest.fixture
def arms(monkeypatch):
    """participant id -> arm id, served to the safety module through stand-ins for the two
    allocation selectors it may use, so a test can put events in any arm without a list."""
    import annulus.allocation.selectors as mod
    from annulus.errors import NotPermitted

    mapping: dict[int, str] = {}

    def arms_for_closed_report(user):
        if not mod.may_read_closed_report(user):  # the real gate of the blind (DSMB only)
            raise NotPermitted("allocation.closed_report")
        return dict(mapping)

    monkeypatch.setattr(mod, "arms_for_closed_report", arms_for_closed_report)
    monkeypatch.setattr(mod, "arm_of_for_system", lambda pid: mapping.get(pid))
    return mapping


def race(calls) -> list:
    """Run the calls at the same moment, each in its own thread on its own database connection;
    return each one's result or the exception it raised (the concurrency tests on PostgreSQL)."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, fn):
        try:
            barrier.wait(timeout=30)
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects every outcome
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results
