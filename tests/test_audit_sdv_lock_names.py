"""Source-data verification and record-lock events on the participant's audit page read as names
in the page's language (visit, form and the items verified by their labels), never as codes, and
the page shows no revision numbers or value hashes of the items verified (the stored event keeps
them)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from annulus.monitoring import services as ms
from annulus.participants import services as ps
from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("X-7.3")


@pytest.fixture
def verified_and_locked(at_w1, users):  # noqa: F811
    p, v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    for form in ("vas", "odi"):
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id=form,
                     items=GOOD[form], complete=True, collected_at=aware(day))
    ms.verify(actor=users["monitor"], participant_id=p.pk, visit="w1", form="odi")
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="w1", form="vas")
    return p


def _text(user, path: str, language: str) -> str:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies["django_language"] = language
    r = c.get(path)
    assert r.status_code == 200
    html = r.content.decode()
    # the record-type filter names the records too
    for code in ("sdv mark", "record lock", "sdv_mark", "record_lock"):
        assert f">{code}<" not in html, code
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _names(language: str):
    from annulus.trial.selectors import active_protocol, data_dictionary

    d = data_dictionary()
    w1 = next(v for v in active_protocol().schedule.visits if v.id == "w1").name.get(language)
    return d, w1


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_sdv_event_names_visit_form_and_items(verified_and_locked, users, language):
    from annulus.audit.models import AuditEvent

    p = verified_and_locked
    d, w1 = _names(language)
    text = _text(users["auditor"], f"/participants/{p.pk}/audit/?type=sdv_mark", language)
    odi = d.form("odi")
    assert odi.name(language) in text and w1 in text
    event = AuditEvent.objects.get(participant_id=p.pk, object_type="sdv_mark")
    from annulus.audit.selectors import decoded

    stored = decoded(event)["changes"]["items"]
    assert stored and all(len(v["value_hash"]) == 64 for v in stored.values())  # kept in the record
    for item in stored:
        assert d.entry("odi", item).label(language) in text
        assert stored[item]["value_hash"] not in text
    # the items in the order of the form, not of the stored keys (s1, s10, s2 ...)
    shown = [text.index(e.label(language)) for e in odi.items if e.item in stored]
    assert len(shown) > 2 and shown == sorted(shown)
    assert "revision" not in text.lower() and "value_hash" not in text
    for code in ("odi", "w1", "odi_"):
        assert not re.search(rf"(?<![\w/]){code}(?![\w])", text), code


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_record_lock_event_names_visit_and_form(verified_and_locked, users, language):
    p = verified_and_locked
    d, w1 = _names(language)
    text = _text(users["auditor"], f"/participants/{p.pk}/audit/?type=record_lock", language)
    assert d.form("vas").name(language) in text and w1 in text
    for code in ("vas", "w1", "form vas"):
        assert not re.search(rf"(?<![\w/]){code}(?![\w])", text), code
