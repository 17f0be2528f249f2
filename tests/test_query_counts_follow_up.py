"""The pages' SQL query counts do not grow with the trial (no N+1) once participants are in
follow-up: randomised, treated, with visits, forms and adverse events, filled through the same
journey as the benchmark (``annulus bench pages``). Counts are compared, never times."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def _grow(size: int, users: dict) -> None:
    from annulus.bench import _journey
    from annulus.bench.pages import _fill

    _fill(size, 7, users["coordinator"], users["investigator"], lambda done, total: None)
    _journey.advance(users, seed=7)


def _counts(client: Client, pages: dict) -> dict:
    out = {}
    for name, url in pages.items():
        client.get(url)  # caches (protocol, templates) warm, as in the benchmark
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
        out[name] = len(ctx.captured_queries)
    return out


def _in_follow_up() -> dict:
    from django.db.models import Count

    from annulus.participants.models import Participant

    return dict(Participant.objects.values_list("status").annotate(n=Count("id")).order_by())


def test_query_counts_equal_at_20_and_60_participants(protocol_version, settings):
    from annulus.participants.models import Participant
    from annulus.safety.models import AdverseEvent
    from annulus.trial.demo import create_demo_users
    from annulus.visits.models import FormRecord

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = create_demo_users()
    _grow(20, users)
    small = _in_follow_up()
    assert small.get("in_follow_up", 0) >= 3, small
    followed = Participant.objects.filter(status="in_follow_up").order_by("id").first()
    client = Client()
    client.force_login(users["coordinator"])
    pages = {"dashboard": "/", "participant list": "/participants/?sort=-updated",
             "participant page": f"/participants/{followed.pk}/", "API list": "/api/v1/participants?page=1"}
    before = _counts(client, pages)
    forms_before, aes_before = FormRecord.objects.count(), AdverseEvent.objects.count()

    _grow(60, users)
    large = _in_follow_up()
    assert large["in_follow_up"] >= 2 * small["in_follow_up"], (small, large)
    assert FormRecord.objects.count() > forms_before and AdverseEvent.objects.count() > aes_before
    after = _counts(client, pages)
    assert after == before
