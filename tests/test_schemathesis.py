"""Property-based run of the OpenAPI schema against the app in-process: no input gives a 5xx,
and every response conforms to the schema. Authenticated with a token (no session, so no CSRF
token) of a role that may make the call: a 403 on such a write is a failure."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import make_users, participant_maker, shared_rows

pytestmark = pytest.mark.req("P-7.2")


@pytest.fixture
def in_process_requests():
    # Django's test client keeps the test's database connection across requests; a bare WSGI
    # call would close it at request start (on PostgreSQL that ends the test transaction)
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def _dataset(request, django_db_setup, django_db_blocker):
    """Built once for the module; each test (each operation's examples) runs in its own savepoint,
    so what one operation's calls write is undone before the next operation."""
    from annulus.accounts.services import issue_token
    from annulus.trial.services import load_default_protocol

    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            make_participant = participant_maker(users)
            pks = [make_participant(stage).pk for stage in ("pre_screened", "consented", "screening", "eligible",
                                                            "enrolled", "screen_failed")]
            tokens = {role: issue_token(user=users[role], name="schemathesis")
                      for role in set(WRITERS.values()) | {"investigator"}}
        yield {"tokens": tokens, "pks": pks}


@pytest.fixture
def dataset(_dataset, db, in_process_requests):
    return _dataset


# the role that may make each write (path fragment -> role); every other write: an investigator
WRITERS = {
    "/allocation/list": "designer",
    "/allocation/pharmacy/": "pharmacist",
    "/allocation/unblinding/lock": "pi",
    "/allocation/unblinding/level1": "designer",
    "/allocation/unblinding/analysis-signoff": "statistician",
    "/allocation/unblinding/level2": "pharmacist",
    "/protocol/versions": "admin",
    "/allocation/unblinding/waivers": "pi",
    "/casebooks/participants/": "pi",
    "/monitoring/participants/": "monitor",
    "/monitoring/findings": "auditor",
    "/lock": "data_manager",
    "/unlock": "data_manager",
    "/exports": "statistician",
    "/v1/reports": "statistician",  # the trial report (not the DSMB's reports)
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _writer(case) -> str:
    if case.path.endswith("/dsmb/reports") and isinstance(case.body, dict) and case.body.get("kind") == "closed":
        return "dsmb"
    return next((role for part, role in WRITERS.items() if part in case.path), "investigator")


def _load_schema():
    # the schema document needs a login like every call: it is built in-process, once, at import
    import json

    from annulus.site.api import api
    from annulus.site.wsgi import application

    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(api.get_openapi_schema(path_params={}))))
    loaded.app = application
    return loaded


schema = _load_schema()


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_never_fails_and_matches_its_schema(case, dataset):
    pk = case.path_parameters.get("pk") if case.path_parameters else None
    if isinstance(pk, int) and pk % 2 == 0:
        # half the cases address a participant that exists, at some stage of the journey
        case.path_parameters["pk"] = dataset["pks"][(pk // 2) % len(dataset["pks"])]
    write = case.method.upper() in WRITE_METHODS
    role = _writer(case) if write else "investigator"
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {dataset['tokens'][role]}"},
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
    )
    if write:
        # the token's role may make this call: refusing it (e.g. a CSRF check) is a failure
        assert response.status_code not in (401, 403), (case.method, case.path, role, response.text)
    if response.status_code >= 400:
        body = response.json()
        # every error is JSON naming the field (possibly "" when no single field is at fault)
        assert isinstance(body["detail"], list) and body["detail"]
        assert all("field" in d and d["message"] for d in body["detail"]), body
