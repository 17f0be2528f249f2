"""``annulus queries recheck [--participant ID]`` re-runs every edit check on the data already
entered (as after an amendment that adds checks): it raises a query for a finding that has none,
closes a check query whose finding is gone, prints each and the totals; a second run changes
nothing; a participant that does not exist is one line and exit 2, nothing written; after the
database lock it refuses with one line and writes nothing (P-7.2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.cli import main
from annulus.queries import services as qs
from annulus.queries.models import Query

from .lock_support import audit_head, row_counts, sign_lock
from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.2")
HIGH = {f"s{i}": 5 for i in range(1, 11)}  # ODI 100 %: above the check's 80 %


def _save_unchecked(monkeypatch, users, p, items, **kw):
    """Save the ODI as if the edit check did not exist yet (data entered before the amendment)."""
    from annulus.visits import services as vs

    with monkeypatch.context() as m:
        m.setattr(qs, "run_checks", lambda *a, **k: {"raised": 0, "closed": 0})
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi", items=items,
                     complete=True, **kw)


def test_recheck_raises_and_closes(at_w1, users, monkeypatch, capsys):
    p, v = at_w1
    _save_unchecked(monkeypatch, users, p, HIGH, collected_at=aware(v.visit_date))
    assert not Query.objects.filter(participant=p).exists()

    assert main(["queries", "recheck", "--participant", str(p.pk)]) == 0
    out = capsys.readouterr().out
    q = Query.objects.get(participant=p, origin="check")
    assert q.check_id == "odi_above_80" and q.status == "open" and q.form == "odi"
    assert f"raised  {q.label}  {p.label}" in out and "check odi_above_80" in out
    assert "1 participant(s) checked: 1 query(ies) raised, 0 closed" in out
    assert AuditEvent.objects.filter(object_type="query", object_id=str(q.pk), participant_id=p.pk).exists()

    # a second run: the finding still stands, its query is active: nothing new
    assert main(["queries", "recheck"]) == 0
    assert "0 query(ies) raised, 0 closed" in capsys.readouterr().out
    assert Query.objects.filter(participant=p).count() == 1

    # the value is corrected (without the checks running): the recheck closes the query
    _save_unchecked(monkeypatch, users, p, GOOD["odi"], reason="typing error: every section was 2")
    assert main(["queries", "recheck", "--participant", p.screening_number]) == 0
    out = capsys.readouterr().out
    q.refresh_from_db()
    assert q.status == "closed" and q.closed_by is None
    assert f"closed  {q.label}  {p.label}" in out and "0 query(ies) raised, 1 closed" in out


@pytest.mark.parametrize("given", ["999999", "S9999", "", "abc"])
def test_bad_participant_is_one_line(db, capsys, given):
    before = row_counts()
    assert main(["queries", "recheck", "--participant", given]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("annulus queries: error: --participant") and "no such participant" in err[0]
    assert row_counts() == before


def test_refused_after_the_lock(at_w1, users, monkeypatch, capsys):
    p, v = at_w1
    _save_unchecked(monkeypatch, users, p, HIGH, collected_at=aware(v.visit_date))
    sign_lock(users)
    before, head = row_counts(), audit_head()
    assert main(["queries", "recheck"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the database is locked (signed on " in err[0]
    assert timezone.localdate().isoformat() in err[0]
    assert row_counts() == before and audit_head() == head


def test_argument_errors_are_one_line_without_django():
    annulus = str(Path(sys.executable).parent / "annulus")
    r = subprocess.run([annulus, "queries", "recheck", "--bogus"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "unrecognized arguments" in r.stderr
