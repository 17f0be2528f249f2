"""The audit trail as people read it: a real eCRF save and a change with a reason show the item
labels, the real old and new values and times in the trial's zone (never ``form: v → a``); a
blinded reader sees each event's place in the participant's trail, never the chain's global
sequence number, whose gaps would count events hidden from him (page and API)."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from .test_visits_support import GOOD, at_w1, aware, transplant_dates, trial_participant  # noqa: F401

pytestmark = pytest.mark.req("X-7.3")


def _client(user):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c


def _rows(html: str) -> list[str]:
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    rows = [unescape(re.sub(r"<[^>]+>", " ", r)) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    return [re.sub(r"\s+:", ":", r) for r in rows]


@pytest.fixture
def saved(at_w1, users):
    """The urinalysis of the 1-week visit saved complete, then changed with a reason."""
    from annulus.visits import services as vs

    p, v = at_w1
    collected = aware(v.visit_date)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="urinalysis",
                 items={**GOOD["urinalysis"], "u_rbc__unit": "/uL"}, complete=True, collected_at=collected)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="urinalysis",
                 items={**GOOD["urinalysis"], "u_rbc__unit": "/uL", "u_rbc": 30, "u_rbc__cs": "no",
                        "u_protein": "trace", "u_protein__cs": "no"},
                 complete=True, reason="transcription error: the report says 30")
    return p, collected


def test_crf_change_shows_labels_values_and_local_times(saved, users):
    p, collected = saved
    rows = _rows(_client(users["auditor"]).get(f"/participants/{p.pk}/audit/?type=crf_form").content.decode())
    assert len(rows) == 2
    change, create = rows  # newest first
    text = " ".join(change.split())
    # the record by name, the items by their labels, old and new values as entered
    assert "Urinalysis" in text and "1 week" in text.lower()
    assert "Urine red cells: 3 → 30" in text
    assert "Urine red cells · Clinically significant?: ∅ → not clinically significant" in text
    assert "Urine protein: negative → trace" in text
    assert "transcription error: the report says 30" in text
    assert "Revision: 2" in text
    first = " ".join(create.split())
    assert "Urine red cells · unit: ∅ → /uL" in first
    # no raw keys, no string read as a pair
    for raw in ("u_rbc", "u_rbc__unit", "form: u", "visit: w", "→ r"):
        assert raw not in text and raw not in first, raw
    # times in Asia/Shanghai, like every other page (the form's collection time and the event's)
    local = timezone.localtime(collected).strftime("%Y-%m-%d %H:%M")
    assert f"Collected at: ∅ → {local}" in first
    from annulus.audit.models import AuditEvent

    e = AuditEvent.objects.filter(participant_id=p.pk, object_type="crf_form").order_by("-id").first()
    assert timezone.localtime(e.timestamp).strftime("%Y-%m-%d %H:%M:%S") in text


def test_crf_change_in_the_api_is_readable(saved, users):
    p, _ = saved
    events = _client(users["auditor"]).get(f"/api/v1/participants/{p.pk}/audit?object_type=crf_form").json()
    change = events[0]
    assert change["record"].startswith("Urinalysis")
    readable = {c["field"]: c for c in change["readable"]}
    assert readable["u_rbc"]["label"] == "Urine red cells"
    assert (readable["u_rbc"]["old"], readable["u_rbc"]["new"]) == ("3", "30")
    assert "visit" not in readable and "form" not in readable  # context, not changes
    assert change["changes"]["u_rbc"] == [3, 30]  # the stored record stays as it is


def test_chinese_labels(saved, users):
    p, _ = saved
    c = _client(users["auditor"])
    c.cookies["django_language"] = "zh-hans"
    html = c.get(f"/participants/{p.pk}/audit/?type=crf_form").content.decode()
    text = " ".join(" ".join(_rows(html)).split())
    assert "尿红细胞: 3 → 30" in text


def _hidden_events(n: int):
    """Events of the chain a blinded reader does not see (another scope, e.g. the pharmacy)."""
    from django.db import transaction

    from annulus.audit import services as audit

    with transaction.atomic():
        for i in range(n):
            audit.record(actor=None, action="create", obj_type="hidden_thing", obj_id=i, changes={"x": [None, i]})


def test_blinded_reader_sees_no_global_sequence_numbers(make_participant, users):
    from annulus.audit.models import AuditEvent
    from annulus.participants import services as ps

    p = make_participant("consented")
    before = AuditEvent.objects.filter(participant_id=p.pk).count()
    _hidden_events(7)
    ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 60},
                      collected_on=timezone.localdate() - timedelta(days=1))
    ids = list(AuditEvent.objects.filter(participant_id=p.pk).order_by("id").values_list("id", flat=True))
    assert ids[before] - ids[before - 1] > 7  # the global numbers have a gap that counts the hidden events
    c = _client(users["auditor"])
    html = c.get(f"/participants/{p.pk}/audit/").content.decode()
    numbers = [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", html)]
    assert numbers == list(range(len(ids), 0, -1))  # newest first, 1 = the participant's first event
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert "Event id" not in header
    events = c.get(f"/api/v1/participants/{p.pk}/audit").json()
    assert [e["number"] for e in events] == list(range(len(ids), 0, -1))
    assert all(e["id"] is None for e in events)
    # a filter keeps each event's place in the whole trail
    consent = c.get(f"/api/v1/participants/{p.pk}/audit?object_type=consent").json()
    assert [e["number"] for e in consent] == [ids.index(AuditEvent.objects.get(
        participant_id=p.pk, object_type="consent").pk) + 1]
