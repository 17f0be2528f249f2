"""The audit trail (X-7.3): every write of the journey leaves who, when (UTC), old and new value
and reason; the hash chain catches a row edited by hand; PostgreSQL refuses UPDATE/DELETE."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection, transaction
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.audit.selectors import verify_chain
from annulus.cli import main
from annulus.participants import services as ps

from .conftest import postgres_url

pytestmark = pytest.mark.req("X-7.3")


def journey(make_participant, users):
    p = make_participant("enrolled")
    ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="moved to another city")
    return p


def test_every_journey_write_is_audited_with_who_when_old_new_reason(make_participant, users):
    start = datetime.now(dt_timezone.utc)
    p = journey(make_participant, users)
    events = list(AuditEvent.objects.filter(participant_id=p.pk).order_by("id"))
    kinds = [(e.action, e.object_type) for e in events]
    for expected in [("create", "participant"), ("create", "consent"), ("create", "screening_evidence"),
                     ("create", "eligibility_decision"), ("change", "participant"), ("create", "withdrawal")]:
        assert expected in kinds, expected
    statuses = [json.loads(e.payload)["changes"]["status"] for e in events
                if e.object_type == "participant" and "status" in json.loads(e.payload)["changes"]]
    assert statuses == [[None, "pre_screened"], ["pre_screened", "consented"], ["consented", "screening"],
                        ["screening", "eligible"], ["eligible", "enrolled"], ["enrolled", "withdrawn"]]
    for e in events:
        body = json.loads(e.payload)
        assert e.actor_username in (users["coordinator"].username, users["investigator"].username)
        assert e.actor_id is not None
        assert body["timestamp"].endswith("+00:00"), body["timestamp"]  # stored in UTC
        assert start - timedelta(seconds=1) <= e.timestamp <= datetime.now(dt_timezone.utc)
        assert e.protocol_version == "1.0"
        for field, pair in body["changes"].items():
            assert isinstance(pair, list) and len(pair) == 2, (field, pair)
        if e.action in ("change", "void"):
            assert e.reason.strip(), f"change without a reason: {body}"
    case = [json.loads(e.payload)["changes"]["case_number"] for e in events if "case_number" in json.loads(e.payload)["changes"]]
    assert case == [[None, "001"]]


def test_verify_passes_and_prints_the_count(make_participant, users, capsys):
    journey(make_participant, users)
    n = AuditEvent.objects.count()
    assert verify_chain().ok
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == f"audit trail intact: {n} events checked"


def _verify_names(capsys, event_id: int, problem: str) -> None:
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"BROKEN at event #{event_id}: .*{re.escape(problem)}", out), out


@pytest.mark.skipif(postgres_url() is not None, reason="PostgreSQL refuses the UPDATE; see the postgres tests")
@pytest.mark.parametrize(
    "sql, problem",
    [
        ("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE id = %s", "column 'reason' differs"),
        ("UPDATE audit_auditevent SET actor_username = 'someone_else' WHERE id = %s", "column 'actor' differs"),
        ("UPDATE audit_auditevent SET payload = replace(payload, 'moved to another city', 'moved') WHERE id = %s",
         "payload does not match its hash"),
    ],
)
def test_row_edited_by_hand_is_caught_on_sqlite(make_participant, users, capsys, sql, problem):
    journey(make_participant, users)
    target = AuditEvent.objects.get(object_type="withdrawal").pk
    with connection.cursor() as cur:
        cur.execute(sql, [target])
        assert cur.rowcount == 1
    _verify_names(capsys, target, problem)


@pytest.mark.skipif(postgres_url() is not None, reason="PostgreSQL refuses the DELETE; see the postgres tests")
def test_removed_or_rehashed_rows_are_caught_on_sqlite(make_participant, users, capsys):
    journey(make_participant, users)
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    middle = ids[len(ids) // 2]
    # rewrite one event and recompute its own hash: the next event's link no longer matches
    from annulus.audit.services import chain_hash

    e = AuditEvent.objects.get(pk=middle)
    payload = e.payload.replace(e.actor_username, "forger")
    with connection.cursor() as cur:
        cur.execute("UPDATE audit_auditevent SET payload = %s, hash = %s, actor_username = 'forger' WHERE id = %s",
                    [payload, chain_hash(e.prev_hash, payload), middle])
    _verify_names(capsys, ids[ids.index(middle) + 1], "previous-hash link broken")
    with connection.cursor() as cur:
        cur.execute("DELETE FROM audit_auditevent WHERE id = %s", [ids[-1]])
    result = verify_chain()
    assert not result.ok


@pytest.mark.skipif(postgres_url() is not None, reason="PostgreSQL refuses the DELETE")
def test_removed_last_event_is_caught(make_participant, users, capsys):
    journey(make_participant, users)
    last = AuditEvent.objects.order_by("-id").first()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    assert main(["audit", "verify"]) == 1
    assert "chain is shorter than recorded" in capsys.readouterr().out


def test_record_outside_a_transaction_is_refused(users):
    from annulus.audit.services import record

    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        # pytest-django wraps every test in a transaction; pretend to be outside it for this call
        conn = transaction.get_connection()
        saved = conn.in_atomic_block
        conn.in_atomic_block = False
        try:
            record(actor=users["admin"], action="create", obj_type="x", obj_id=1)
        finally:
            conn.in_atomic_block = saved


@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")
def test_postgres_trigger_refuses_update_and_delete_and_verify_catches_a_hand_edit(make_participant, users, capsys):
    from django.db import DatabaseError

    journey(make_participant, users)
    target = AuditEvent.objects.get(object_type="withdrawal")
    for sql in ("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(sql, [target.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            AuditEvent.objects.filter(pk=target.pk).update(reason="x")
    assert AuditEvent.objects.get(pk=target.pk).reason == target.reason
    # a superuser can switch the trigger off; the chain still shows the edit
    with connection.cursor() as cur:
        # the test runs in one transaction: settle the deferred foreign-key checks first, or
        # PostgreSQL will not alter a table with pending trigger events
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cur.execute("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE id = %s", [target.pk])
        cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    _verify_names(capsys, target.pk, "column 'reason' differs")


def test_audit_page_filters(make_participant, users, client_for):
    p = journey(make_participant, users)
    other = make_participant("consented")
    c = client_for("auditor")
    url = f"/participants/{p.pk}/audit/"

    # a blinded reader sees each event's place in the trail (1 = first), not its global id
    trail = list(AuditEvent.objects.filter(participant_id=p.pk).order_by("id").values_list("id", flat=True))

    def ids(query=""):
        html = c.get(url + query).content.decode()
        return [trail[int(x) - 1] for x in re.findall(r"<tr><td>(\d+)</td>", html)]

    everything = ids()
    expected = list(AuditEvent.objects.filter(participant_id=p.pk).order_by("-id").values_list("id", flat=True))
    assert everything == expected and len(everything) > 5
    assert not set(everything) & set(AuditEvent.objects.filter(participant_id=other.pk).values_list("id", flat=True))
    assert ids("?action=create") == list(AuditEvent.objects.filter(participant_id=p.pk, action="create")
                                         .order_by("-id").values_list("id", flat=True))
    consent = ids("?type=consent")
    assert consent == list(AuditEvent.objects.filter(participant_id=p.pk, object_type="consent").values_list("id", flat=True))
    assert len(consent) == 1
    inv = users["investigator"].username
    assert ids(f"?actor={inv}") == list(AuditEvent.objects.filter(participant_id=p.pk, actor_username=inv)
                                        .order_by("-id").values_list("id", flat=True))
    assert ids("?actor=nobody") == []
    assert ids("?action=<script>&type=';--") == []  # nonsense filters match nothing, no error


def test_audit_page_is_for_audit_roles_only(make_participant, client_for):
    p = make_participant("consented")
    assert client_for("auditor").get(f"/participants/{p.pk}/audit/").status_code == 200
    assert client_for("coordinator").get(f"/participants/{p.pk}/audit/").status_code == 200
    for role in ("pharmacist", "designer", "statistician", "dsmb", "ethics", "admin"):
        assert client_for(role).get(f"/participants/{p.pk}/audit/").status_code == 403, role
