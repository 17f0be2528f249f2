"""X-7.5: the whole-visit entry page of a locked visit (opened by its URL) shows the answers read-only
with the padlock and its message, as the single-form page does for a locked form: no input a
coordinator could type into, no save buttons; a post is refused with nothing written. Both languages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from annulus.participants import services as ps

from .test_record_locks import followed  # noqa: F401 (fixture)
from .test_visits_support import GOOD, trial_participant, transplant_dates  # noqa: F401 (fixtures)

pytestmark = pytest.mark.req("X-7.5")

WORDS = {"en": ("is locked", "Save drafts", "Complete and submit all"),
         "zh-hans": ("已锁定", "保存草稿", "全部完成并提交")}


def _enabled_inputs(html: str) -> list[str]:
    tags = re.findall(r"<(?:input|select|textarea)\b[^>]*>", html)
    return [t for t in tags if "disabled" not in t and 'type="hidden"' not in t
            and "csrfmiddlewaretoken" not in t and 'name="q"' not in t and 'type="search"' not in t]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_locked_visit_entry_page_is_read_only(followed, users, language):  # noqa: F811
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p = followed
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items=GOOD["odi"], complete=True)
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["coordinator"])
    url = f"/participants/{p.pk}/visits/w1/entry/"
    before = c.get(url).content.decode()
    pending = _enabled_inputs(before[before.index("<main") if "<main" in before else 0:])
    assert pending, "the 1-week visit has forms left to enter (JOA, SF-36 ...)"
    locked_word, draft_word, complete_word = WORDS[language]
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="w1")
    html = c.get(url).content.decode()
    body = html[html.index("<h1"):]
    assert _enabled_inputs(body) == [], _enabled_inputs(body)[:3]
    assert draft_word not in body and complete_word not in body
    assert 'svg class="padlock"' in body and locked_word in body
    # a post by the URL is refused, nothing saved
    forms = FormRecord.objects.filter(participant=p).count()
    token = c.cookies["csrftoken"].value
    r = c.post(url, {"csrfmiddlewaretoken": token, "complete": "1", "joa-q1": "1"})
    assert r.status_code in (200, 403, 409, 423)
    assert FormRecord.objects.filter(participant=p).count() == forms
