"""After PostgreSQL drops the server's connections (a restart or failover), the next request is
answered, not a 500: connections are health-checked before reuse (CONN_HEALTH_CHECKS). One worker
with one thread, so that the second request reuses the very connection that was terminated."""

from __future__ import annotations

import pytest

from tests.conftest import postgres_url
from tests.production_support import ADMIN, Client, ProductionServer, backends, terminate_backends

pytestmark = [
    pytest.mark.req("P-7.2"),
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_url(), reason="PostgreSQL only (DATABASE_URL=postgres://...)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ProductionServer(tmp_path_factory.mktemp("production-pg"), workers=1, threads=1, tag="rec") as running:
        yield running


def test_a_request_after_the_connections_are_terminated_is_answered(server):
    client = Client(server.base)
    assert client.log_in().status == 302
    first = client.get("/")
    assert first.status == 200 and ADMIN in first.text
    assert backends(server.dbname) >= 1  # the worker keeps its connection (CONN_MAX_AGE)
    for _ in range(2):
        assert terminate_backends(server.dbname) >= 1
        again = client.get("/")
        assert again.status == 200 and ADMIN in again.text, again.text[:500]
    assert "Internal Server Error" not in server.log.read_text() and '" 500 ' not in server.log.read_text()
