"""A participant's page reads each of the participant's records once: the timeline, the panels,
the padlocks and the casebook signature check share one read per GET request
(``annulus.trial.selectors.read_once``). The casebook built from those shared reads is the casebook
built in bulk (so its hash, and the signature state the page shows, are the same); in any other
request, and outside requests, every read is fresh, so a write is always followed by a fresh read.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection

from annulus.casebooks import selectors as casebooks
from annulus.trial.selectors import per_request, read_once

from .test_audit_data import trial  # noqa: F401 - the fixture: a small trial through the services
from .test_visits_support import transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("X-7.5")


def _people(t):  # noqa: F811
    return [t["treated"], t["withdrawn"], t["screened"], t["transplanted"]]


def test_one_casebook_from_the_page_reads_is_the_casebook_built_in_bulk(trial):  # noqa: F811
    ids = [p.pk for p in _people(trial)]
    bulk = casebooks.contents(ids)
    # the fixture's records are really there, so the comparison covers every section
    treated, transplanted = bulk[trial["treated"].pk], bulk[trial["transplanted"].pk]
    assert treated["adverse_events"] and treated["sae_reports"] and treated["visits"] and treated["liposuction"]
    assert treated["consent"] and treated["screening_evidence"] and treated["eligibility"]
    assert transplanted["transplant"] and transplanted["emergency_unblindings"]
    assert bulk[trial["withdrawn"].pk]["end_of_study"]["withdrawal"]["category"] == "participant_request"
    for pid in ids:
        assert casebooks.contents([pid])[pid] == bulk[pid]
        with per_request(reads=True):
            first = casebooks.contents([pid])[pid]
            again = casebooks.contents([pid])[pid]  # from the reads kept for the request
        assert first == again == bulk[pid]
        assert casebooks.hash_of(first) == casebooks.hash_of(bulk[pid])


def test_reads_are_kept_only_for_a_get_or_head_request():
    calls = []

    def read():
        calls.append(1)
        return len(calls)

    assert read_once(("x", 1), read) == 1 and read_once(("x", 1), read) == 2  # outside a request
    with per_request(reads=False):  # a POST, PUT, PATCH or DELETE
        assert read_once(("x", 1), read) == 3 and read_once(("x", 1), read) == 4
    with per_request(reads=True):  # a GET or HEAD
        assert read_once(("x", 1), read) == 5 and read_once(("x", 1), read) == 5
        assert read_once(("x", 2), read) == 6  # another participant is another read
    with per_request(reads=True):  # the next request reads again
        assert read_once(("x", 1), read) == 7


def test_the_page_shows_the_signature_state_of_the_current_data(trial, client_for):  # noqa: F811
    """The treated participant's casebook was signed last: the page says so. A later edit made
    around the services (straight in the table) shows on the next page at once: nothing read
    for one request is kept for the next."""
    p = trial["treated"]
    c = client_for("pi")
    page = c.get(f"/participants/{p.pk}/").content.decode()
    assert "Casebook signed" in page and "Signature invalidated" not in page
    form = trial["visit"]
    with connection.cursor() as cur:
        cur.execute("UPDATE visits_visit SET reason = %s WHERE id = %s", ["edited in the table", form.pk])
    page = c.get(f"/participants/{p.pk}/").content.decode()
    assert "Signature invalidated by a change after signing" in page
    assert casebooks.signature_status([p.pk]) == {p.pk: "invalidated"}
