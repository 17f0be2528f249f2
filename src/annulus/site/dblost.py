"""A request whose database connection is lost while it runs gets an answer, never a server error.

Connections are health-checked before a request reuses them (``CONN_HEALTH_CHECKS``), but a
connection can still be cut while a request is using it: the server restarts, a failover, an
administrator ends the session (``pg_terminate_backend``). The query then fails and, left alone,
the request would end in a 500 page.

Instead, ``LostConnectionMiddleware`` (first in ``MIDDLEWARE``) notices the failure wherever it
was raised (the ``got_request_exception`` signal, for views and middleware alike) when the
connection is no longer usable, closes the broken connections and then:

- a read (GET, HEAD, OPTIONS) is run once more on a new connection: the user sees the page;
- a write is not run again (a write whose commit was under way when the connection went may have
  been saved, and running it again could save it twice). It is answered 503 with
  ``Retry-After``, saying that the change may not have been saved and to look before sending it
  again; under ``/api/`` in the API's JSON error shape naming no field.

A failure on a connection that is still usable (a bad query, a constraint) is left to the usual
handling: it is a defect, not a lost connection.
"""

from __future__ import annotations

import sys

from django.core.signals import got_request_exception
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
RETRY_AFTER_SECONDS = 5
_FLAG = "_annulus_db_lost"


# SQLSTATEs of a connection gone: class 08 (connection exception) and the server shutting down
# (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now)
_GONE_STATES = ("57P01", "57P02", "57P03")
_DRIVER_GONE = ("OperationalError", "InterfaceError")


def _lost(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a database error on a connection that has gone: the
    driver's error says so (its SQLSTATE, or an error of the driver itself without one), or, failing
    that, a connection of this request was closed after the error (Django drops a connection whose
    rollback failed) or is no longer usable. An error on a working connection (a deadlock, a
    timeout, a constraint) is not."""
    seen = 0
    first = exc
    while exc is not None and seen < 5:
        state = getattr(exc, "sqlstate", None)
        if state:  # the server answered: it says whether the connection is gone
            return state.startswith("08") or state in _GONE_STATES
        if not state and type(exc).__module__.startswith("psycopg") and type(exc).__name__ in _DRIVER_GONE:
            # the PostgreSQL driver's own error, with no SQLSTATE from the server: the connection
            # failed ("server closed the connection unexpectedly", "consuming input failed",
            # "the connection is closed")
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    if isinstance(first, (OperationalError, InterfaceError)) or (
            isinstance(first, DatabaseError) and "connection" in str(first).lower()):
        return any(c.connection is None or not _usable(c) for c in connections.all(initialized_only=True))
    return False


def _usable(conn) -> bool:
    if conn.connection is None:
        return True  # not connected: the next query opens a new connection
    try:
        return bool(conn.is_usable())
    except Exception:  # noqa: BLE001 - a broken connection may fail in any way while checked
        return False


def _note(sender, request=None, **kwargs):
    if request is not None and _lost(sys.exc_info()[1]):
        setattr(request, _FLAG, True)


got_request_exception.connect(_note, dispatch_uid="annulus-db-lost")


def _close_broken() -> None:
    for conn in connections.all(initialized_only=True):
        if not _usable(conn):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may itself fail
                conn.connection = None


def plain_page(request, code: int, title: str, message: str) -> str:
    """An error page that needs no database (no context processors: the navigation, the user's
    role and notifications all read it), in the site's style."""
    from django.template.loader import render_to_string

    return render_to_string("error_plain.html", {
        "lang": getattr(request, "LANGUAGE_CODE", "en"), "code": code, "title": title, "message": message,
        "back": request.get_full_path() if request.method in SAFE_METHODS else "/",
        "back_label": _("Try again") if request.method in SAFE_METHODS else _("Back to the dashboard")})


def unavailable(request) -> HttpResponse:
    """The answer to a write whose connection was lost, or to a read that lost it twice."""
    if request.method in SAFE_METHODS:
        message = _("The database cannot be reached at the moment. Try again in a few seconds.")
    else:
        message = _("The connection to the database was lost while your change was being saved, so it may not "
                    "have been saved. Open the record again to see whether it is there before sending it again.")
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": [{"field": "", "message": message}]}, status=503)
    else:
        response = HttpResponse(plain_page(request, 503, _("Service unavailable"), message), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class LostConnectionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self._answer(request)
        if not getattr(request, _FLAG, False):
            return response
        _close_broken()
        if request.method in SAFE_METHODS:
            setattr(request, _FLAG, False)
            response = self._answer(request)  # once, on a new connection
            if not getattr(request, _FLAG, False):
                return response
            _close_broken()
        return unavailable(request)

    def _answer(self, request):
        """The inner answer; a lost connection that escaped even the error page (which reads the
        database too) is noted like the others."""
        try:
            return self.get_response(request)
        except DatabaseError as exc:
            if not _lost(exc):
                raise
            setattr(request, _FLAG, True)
            return None
