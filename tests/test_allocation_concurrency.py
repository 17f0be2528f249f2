"""X-3.9 against PostgreSQL: concurrent randomisations never share or skip an envelope.

Run with, for example:
ANNULUS_TEST_DB_NAME=test_alloc DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    .venv/bin/pytest tests/test_allocation_concurrency.py
"""


import pytest

from annulus.allocation import services, testing
from annulus.allocation.models import Envelope
from annulus.errors import RuleViolation
from annulus.participants.models import Participant
from tests.conftest import postgres_url, race

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")]


@pytest.fixture
def committed(committed_db, users, make_participant):
    """Committed data that the racing threads can see (``committed_db``)."""


@pytest.mark.req("X-3.9", "P-3.2")
def test_fifty_concurrent_allocations(committed, users, make_participant):
    testing.generate(users)
    people = [make_participant("enrolled") for _ in range(50)]
    actors = [users["investigator"], users["coordinator"]]
    results = race([lambda p=p, i=i: services.randomise(actor=actors[i % 2], participant_id=p.pk)
                     for i, p in enumerate(people)])
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    opened = list(Envelope.objects.filter(participant__isnull=False).values_list("random_number", "participant_id"))
    numbers = [n for n, _ in opened]
    assert len(numbers) == len(set(numbers)) == 50  # 0 duplicates
    assert sorted(numbers) == [f"{i:03d}" for i in range(1, 51)]  # 0 gaps
    assert len({pid for _, pid in opened}) == 50
    case = dict(Participant.objects.values_list("pk", "case_number"))
    assert all(case[pid] == n for n, pid in opened)
    assert Participant.objects.filter(status="randomised").count() == 50


@pytest.mark.req("X-3.9")
def test_two_browsers_randomise_the_same_participant_at_once(committed, users, make_participant):
    testing.generate(users)
    p = make_participant("enrolled")
    results = race([lambda: services.randomise(actor=users["investigator"], participant_id=p.pk),
                     lambda: services.randomise(actor=users["coordinator"], participant_id=p.pk)] * 4)
    ok = [r for r in results if isinstance(r, Envelope)]
    refused = [r for r in results if isinstance(r, RuleViolation)]
    assert len(ok) == 1 and len(refused) == 7, results
    assert all("already randomised" in r.message or "at the same moment" in r.message for r in refused)
    assert Envelope.objects.filter(participant__isnull=False).count() == 1
