"""Annulus refuses to start on a database that cannot return the keys of bulk inserts, which the
audit chain and the visit saves rely on (X-7.3)."""

import pytest
from django.db import connection

from annulus.audit.apps import bulk_insert_returns_keys


@pytest.mark.req("X-7.3")
def test_bulk_insert_keys_check(monkeypatch):
    assert bulk_insert_returns_keys() == []  # SQLite 3.35+ and PostgreSQL pass
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    errors = bulk_insert_returns_keys()
    assert [e.id for e in errors] == ["annulus.E001"]
