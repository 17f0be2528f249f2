"""Tamper evidence beyond the database (X-7.3): someone with write access to the database (its
owner, who can lift the append-only triggers) truncates the trail, re-hashes it after changing a
value, appends a made-up event, or restores an older backup. The plain hash chain misses each of
these; the audit key (a MAC on every event) and the signed checkpoints kept outside the database
catch each one, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.utils import timezone as dj_timezone

from annulus.audit import keys
from annulus.audit.models import AuditEvent, AuditHead
from annulus.audit.selectors import verify_chain
from annulus.audit.services import canonical, chain_hash
from annulus.cli import main
from annulus.participants import services as ps

from .test_visits_support import GOOD, aware, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("X-7.3")


@pytest.fixture
def key_file(tmp_path, settings):
    path = keys.generate(tmp_path / "audit.key")
    settings.AUDIT_KEY_FILE = str(path)
    return path


@pytest.fixture
def trail(key_file, make_participant, users, tmp_path, capsys):
    """A keyed trail with a checkpoint of its head in ``tmp_path / "checkpoints"``."""
    p = make_participant("enrolled")
    ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=dj_timezone.localdate(),
                category="participant_request", details="moved to another city")
    folder = tmp_path / "checkpoints"
    assert main(["audit", "checkpoint", "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint of event {AuditEvent.objects.count()} written" in out
    return folder


@contextmanager
def owner():
    """The database owner at work: on PostgreSQL the append-only triggers are lifted first."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's pending key checks first: then ALTER may run
            cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        yield cur
        if connection.vendor == "postgresql":
            cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")


def _set_head(cur) -> None:
    last = AuditEvent.objects.order_by("-id").first()
    cur.execute("UPDATE audit_audithead SET last_hash = %s, count = %s WHERE id = 1",
                [last.hash, AuditEvent.objects.count()])


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["audit", "verify", *args])
    return code, capsys.readouterr().out.strip()


def test_a_keyed_trail_and_its_checkpoints_verify(trail, capsys):
    assert all(e.mac for e in AuditEvent.objects.all())
    assert AuditHead.objects.get(id=1).keyed_from == 1
    code, out = _verify(capsys, "--checkpoints", str(trail))
    assert code == 0, out
    assert out == f"audit trail intact: {AuditEvent.objects.count()} events checked, MACs checked, " \
                  "1 checkpoints matched"


def test_truncation_is_caught_by_the_checkpoint(trail, capsys):
    with owner() as cur:
        last_ids = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True)[:3])
        cur.execute(f"DELETE FROM audit_auditevent WHERE id IN ({', '.join(['%s'] * 3)})", last_ids)
        _set_head(cur)
    assert verify_chain().ok  # the chain and its head agree: the plain check is fooled
    code, out = _verify(capsys)
    assert code == 0, out  # so are the MACs: each remaining event is genuine
    code, out = _verify(capsys, "--checkpoints", str(trail))
    assert code == 1
    assert re.search(r"BROKEN: the trail has \d+ events but checkpoint checkpoint-\d+\.json recorded \d+ .*"
                     r"removed at the end, or an older backup was restored \(rollback\)", out), out


def _rehash_from(cur, start_id: int, change) -> None:
    """Change event ``start_id``'s payload with ``change`` and recompute every hash from there, as
    someone without the key can (the MACs stay as they were, or are blanked)."""
    rows = list(AuditEvent.objects.filter(id__gte=start_id).order_by("id"))
    prev = rows[0].prev_hash
    for i, e in enumerate(rows):
        payload = change(e.payload) if i == 0 else e.payload
        digest = chain_hash(prev, payload)
        cur.execute("UPDATE audit_auditevent SET payload = %s, prev_hash = %s, hash = %s, reason = %s WHERE id = %s",
                    [payload, prev, digest, json.loads(payload)["reason"], e.pk])
        prev = digest
    _set_head(cur)


def test_a_re_hashed_chain_is_caught_by_the_macs_and_the_checkpoint(trail, capsys):
    target = AuditEvent.objects.get(object_type="withdrawal")
    with owner() as cur:
        _rehash_from(cur, target.pk, lambda text: text.replace("moved to another city", "moved"))
    assert verify_chain().ok  # recomputed by hand: the plain check is fooled
    code, out = _verify(capsys)
    assert code == 1 and f"BROKEN at event #{target.pk}: its MAC does not match" in out, out
    with owner() as cur:  # the MACs blanked as well: the checkpoint still knows the trail was keyed
        cur.execute("UPDATE audit_auditevent SET mac = ''")
        cur.execute("UPDATE audit_audithead SET keyed_from = NULL")
    assert verify_chain(key=keys.current()).ok  # no MAC anywhere, no record of one: fooled without checkpoints
    code, out = _verify(capsys, "--checkpoints", str(trail))
    assert code == 1 and "it has no MAC where the trail is keyed" in out, out


def test_a_forged_append_is_caught_by_its_missing_mac(trail, capsys):
    last = AuditEvent.objects.order_by("-id").first()
    now = datetime.now(timezone.utc)
    body = {"seq": AuditEvent.objects.count() + 1, "timestamp": now.isoformat(), "actor": "t_investigator",
            "action": "change", "object_type": "participant", "object_id": "1", "participant_id": None,
            "changes": {"status": ["withdrawn", "enrolled"]}, "reason": "data entry error", "protocol_version": "1.0"}
    payload = canonical(body)
    with owner() as cur:
        for mac in ("", "0" * 64):
            cur.execute("DELETE FROM audit_auditevent WHERE id > %s", [last.pk])
            cur.execute(
                "INSERT INTO audit_auditevent (timestamp, actor_username, action, object_type, object_id, "
                "participant_id, reason, protocol_version, payload, prev_hash, hash, mac) "
                "VALUES (%s, 't_investigator', 'change', 'participant', '1', NULL, 'data entry error', '1.0', %s, %s, "
                "%s, %s)", [now, payload, last.hash, chain_hash(last.hash, payload), mac])
            _set_head(cur)
            assert verify_chain().ok  # a valid link: the plain check is fooled
            code, out = _verify(capsys)
            forged = AuditEvent.objects.order_by("-id").first().pk
            assert code == 1 and f"BROKEN at event #{forged}:" in out, out
            assert ("no MAC where the trail is keyed" if not mac else "its MAC does not match") in out


def test_a_restored_older_backup_is_caught_as_a_rollback(trail, make_participant, capsys):
    kept = AuditEvent.objects.count()
    make_participant("consented")  # the trail goes on after the backup ...
    assert main(["audit", "checkpoint", "--out", str(trail)]) == 0
    capsys.readouterr()
    with owner() as cur:  # ... and the older backup comes back
        cur.execute("DELETE FROM audit_auditevent WHERE id > %s",
                    [AuditEvent.objects.order_by("id").values_list("id", flat=True)[kept - 1]])
        _set_head(cur)
    code, out = _verify(capsys)
    assert code == 0, out  # everything in the restored database is genuine ...
    code, out = _verify(capsys, "--checkpoints", str(trail))
    assert code == 1 and "(rollback)" in out and f"the trail has {kept} events" in out, out  # ... but it is old


def test_an_altered_checkpoint_is_refused(trail, capsys):
    path = next(trail.glob("checkpoint-*.json"))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "seq": data["seq"] - 2}))
    code, out = _verify(capsys, "--checkpoints", str(trail))
    assert code == 1 and f"checkpoint {path.name} has a wrong signature" in out, out


def test_checkpoints_are_written_as_the_trail_grows(key_file, settings, tmp_path, make_participant, capsys,
                                                    django_capture_on_commit_callbacks):
    folder = tmp_path / "auto"
    settings.AUDIT_CHECKPOINT_DIR = str(folder)
    settings.AUDIT_CHECKPOINT_EVERY = 5
    settings.AUDIT_CHECKPOINT_MINUTES = 0
    start = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        make_participant("enrolled")
    end = AuditEvent.objects.count()
    seqs = [json.loads(f.read_text())["seq"] for f in sorted(folder.glob("checkpoint-*.json"))]
    # one after each transaction that crossed a multiple of 5, of the head it committed
    assert seqs and all(start < s <= end for s in seqs), (start, end, seqs)
    assert len(seqs) >= 2
    files = seqs
    code, out = _verify(capsys, "--checkpoints", str(folder))
    assert code == 0 and f"{len(files)} checkpoints matched" in out, out


def test_bad_requests_get_one_line(tmp_path, settings, capsys, db):
    settings.AUDIT_KEY_FILE = ""
    assert main(["audit", "checkpoint", "--out", str(tmp_path / "c")]) == 2
    assert "no audit key: set ANNULUS_AUDIT_KEY_FILE" in capsys.readouterr().err
    key = keys.generate(tmp_path / "k")
    assert main(["audit", "keygen", "--out", str(key)]) == 2
    assert "is never overwritten" in capsys.readouterr().err
    assert (key.stat().st_mode & 0o777) == 0o600
    settings.AUDIT_KEY_FILE = str(key)
    assert main(["audit", "verify", "--checkpoints", str(tmp_path / "missing")]) == 2
    assert "checkpoint folder" in capsys.readouterr().err
    (tmp_path / "bad.key").write_text("not a key\n")
    with pytest.raises(keys.AuditKeyError, match="does not hold a key"):
        keys.load(tmp_path / "bad.key")


def test_direct_edits_of_clinical_tables_are_caught_by_the_data_check(users, transplant_dates, capsys):
    from annulus.safety import services as safety
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    from .test_audit_data import _treated

    # built through the services only (``at_w1`` moves the enrolment back by hand, which the data
    # check rightly reports)
    p = _treated(users, transplant_dates)
    v = vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1",
                      visit_date=dj_timezone.localdate() - timedelta(days=1))
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="urinalysis",
                 items={**GOOD["urinalysis"], "u_rbc__unit": "/uL"}, complete=True, collected_at=aware(v.visit_date))
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="urinalysis",
                 items={**GOOD["urinalysis"], "u_rbc__unit": "/uL", "u_rbc": 30, "u_rbc__cs": "no"},
                 complete=True, reason="transcription error: the report says 30")
    ae = safety.record_adverse_event(actor=users["investigator"], participant_id=p.pk, term="Headache",
                                     onset_at=dj_timezone.now(), serious=False, grade=1,
                                     causality_liposuction="not_related", causality_injection="not_related",
                                     causality_product="not_related", expectedness="expected",
                                     action_taken="none", outcome="recovering")
    code, out = _verify(capsys, "--data")
    assert code == 0 and "the data of" in out, out
    form = FormRecord.objects.get(participant_id=p.pk, form_id="urinalysis")
    with connection.cursor() as cur:  # clinical tables have no trigger: their owner edits them freely
        cur.execute("UPDATE safety_adverseevent SET term = 'Mild headache', grade = 2 WHERE id = %s", [ae.pk])
        cur.execute("UPDATE visits_formrecord SET items = %s WHERE id = %s",
                    [json.dumps({**form.items, "u_rbc": 3}), form.pk])
    code, out = _verify(capsys, "--data")
    assert code == 1, out
    assert f"participant {p.screening_number}, adverse event {ae.number}: term is 'Mild headache' in the database " \
           "but 'Headache' in the audit trail" in out
    assert "grade is 2 in the database but 1 in the audit trail" in out
    assert f"participant {p.screening_number}, visit w1, form urinalysis: u_rbc is 3 in the database but 30 in " \
           "the audit trail" in out
    assert "differ from it in 3 places" in out
