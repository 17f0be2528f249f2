"""A database connection cut while a request uses it (a restart, a failover, ``pg_terminate_backend``)
gives no server error: a read is run again on a new connection, a write is answered 503 with
Retry-After and is not run twice; a failure on a working connection is still a 500.

The connection is cut for real: the view ends its own PostgreSQL backend, which fails the very
statement as a restart would. (SQLite is a file in the process: it has no connection to lose.)"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

pytestmark = [pytest.mark.req("P-7.2")]

CALLS: list[str] = []


def _cut_own_connection() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def _cut_from_outside() -> None:
    """Another session ends this one, as a restart does: the next statement finds the socket closed
    ("server closed the connection unexpectedly", no SQLSTATE)."""
    import time

    import psycopg

    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                         password=settings["PASSWORD"] or None, dbname="postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)


@csrf_exempt
def write_cut_from_outside_view(request):
    CALLS.append("write")
    with transaction.atomic():
        Group.objects.create(name=f"written {len(CALLS)}")
        _cut_from_outside()
        Group.objects.count()
    return HttpResponse("saved")


def read_view(request):
    CALLS.append("read")
    if len(CALLS) == 1:
        _cut_own_connection()
    return HttpResponse(f"groups: {Group.objects.count()}")


def always_lost_view(request):
    CALLS.append("read")
    _cut_own_connection()
    return HttpResponse("never")


@csrf_exempt
def write_view(request):
    CALLS.append("write")
    with transaction.atomic():
        Group.objects.create(name=f"written {len(CALLS)}")
        _cut_own_connection()
    return HttpResponse("saved")


@csrf_exempt
def api_write_view(request):
    CALLS.append("write")
    _cut_own_connection()
    return JsonResponse({"saved": True})


def defect_view(request):
    CALLS.append("defect")
    Group.objects.create(name="twice")
    with transaction.atomic():
        Group.objects.create(name="twice")  # unique name: a defect on a working connection
    return HttpResponse("never")


def failing_error_page(request):
    """An error page that needs the database, reached after the connection went: it fails too."""
    from annulus.participants.models import Participant

    Participant.objects.count()
    return HttpResponse("error page", status=500)


@csrf_exempt
def write_then_error_page_view(request):
    CALLS.append("write")
    with connection.cursor() as cur:
        try:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except Exception:  # noqa: BLE001 - the connection is gone; Django keeps the broken one
            pass
    raise RuntimeError("the view fails after its connection went")


handler500 = failing_error_page

@csrf_exempt
def write_cut_at_savepoint_view(request):
    CALLS.append("write")
    with transaction.atomic():
        Group.objects.create(name=f"written {len(CALLS)}")
        with transaction.atomic():  # its RELEASE SAVEPOINT is the statement that finds the socket closed
            Group.objects.count()
            _cut_from_outside()
    return HttpResponse("saved")


urlpatterns = [
    path("api/write-cut-at-savepoint/", write_cut_at_savepoint_view),
    path("api/write-cut-from-outside/", write_cut_from_outside_view),
    path("write-then-error-page/", write_then_error_page_view),
    path("read/", read_view),
    path("always-lost/", always_lost_view),
    path("write/", write_view),
    path("api/write/", api_write_view),
    path("defect/", defect_view),
]


@pytest.fixture
def client(committed_db):
    from tests.conftest import make_users

    from annulus.trial.services import load_default_protocol

    if connection.vendor != "postgresql":
        pytest.skip("SQLite is a file in the process: there is no connection to lose")
    load_default_protocol()
    user = make_users()["coordinator"]
    c = Client(raise_request_exception=False)
    c.force_login(user)
    CALLS.clear()
    with override_settings(ROOT_URLCONF=__name__):
        yield c


def test_a_read_whose_connection_is_cut_is_run_again_and_answered(client):
    groups = Group.objects.count()
    response = client.get("/read/")
    assert response.status_code == 200, response.content[:300]
    assert response.content == f"groups: {groups}".encode()
    assert CALLS == ["read", "read"]


def test_a_read_that_loses_the_connection_twice_is_503_not_500(client):
    response = client.get("/always-lost/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "数据库" in response.content.decode()
    assert CALLS == ["read", "read"]  # tried once more, not again and again


def test_a_write_whose_connection_is_cut_is_503_not_run_twice_and_not_half_saved(client):
    response = client.post("/write/", {"x": "1"})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    text = response.content.decode()
    assert "may not have been saved" in text and "Traceback" not in text
    assert CALLS == ["write"]
    assert not Group.objects.filter(name__startswith="written").exists()  # the transaction went with the connection


def test_an_api_write_whose_connection_is_cut_is_503_json(client):
    response = client.post("/api/write/", data="{}", content_type="application/json")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert "may not have been saved" in response.json()["detail"][0]["message"]
    assert CALLS == ["write"]


def test_a_failure_on_a_working_connection_is_still_a_server_error(client):
    response = client.get("/defect/")
    assert response.status_code == 500
    assert CALLS == ["defect"]  # not run again: it is a defect, not a lost connection


def test_a_write_whose_error_page_also_loses_the_connection_is_503(client):
    """The error page reads the database too: when it fails on the lost connection, the exception
    leaves Django's handling altogether (a WSGI server would answer its own 500)."""
    response = client.post("/write-then-error-page/", {"x": "1"})
    assert response.status_code == 503
    assert CALLS == ["write"]


def test_an_api_write_cut_from_outside_mid_transaction_is_503(client):
    response = client.post("/api/write-cut-from-outside/", data="{}", content_type="application/json")
    assert response.status_code == 503, response.content[:300]
    assert CALLS == ["write"]
    assert not Group.objects.filter(name__startswith="written").exists()


def test_an_api_write_cut_at_a_savepoint_is_503(client):
    response = client.post("/api/write-cut-at-savepoint/", data="{}", content_type="application/json")
    assert response.status_code == 503, response.content[:300]
    assert CALLS == ["write"]


def test_what_counts_as_a_lost_connection():
    """The driver's own error without a SQLSTATE (the socket closed under it) is a lost connection
    even when the connection Django holds by then is a new, working one; a server's error on a
    working connection (a deadlock, a timeout) and SQLite's "database is locked" are not."""
    import sqlite3

    import psycopg
    from django.db import OperationalError as DjangoOperationalError

    from annulus.site.dblost import _lost

    def wrapped(cause):
        try:
            try:
                raise cause
            except Exception as exc:
                raise DjangoOperationalError(str(exc)) from exc
        except DjangoOperationalError as outer:
            return outer

    assert _lost(wrapped(psycopg.OperationalError("consuming input failed: server closed the connection "
                                                  "unexpectedly")))
    assert _lost(wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command")))
    assert not _lost(wrapped(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert not _lost(wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")))
    assert not _lost(wrapped(sqlite3.OperationalError("database is locked")))
