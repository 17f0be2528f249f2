"""After the database lock the lock page (/unblinding/) still shows the pre-lock checklist,
read-only: every group, and each waived line with who waived it, when and the reason, also a
line whose work was closed after it was waived; no waiver form while nothing is open (P-3.7)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors
from annulus.allocation.models import LockWaiver

from .lock_support import WAIVE_REASON, sign_lock
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

pytestmark = pytest.mark.req("P-3.7")

EVENT = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
             causality_injection="not_related", causality_product="not_related", expectedness="expected",
             action_taken="none", outcome="recovering")
CLOSED_REASON = "Answered on paper at the site visit; entered before the lock."
WORDS = {"en": ("read-only, as kept after the lock", "waived by {who} on {when}"),
         "zh-hans": ("只读，锁库后保存的记录", None)}


@pytest.fixture
def locked(trial_participant, users):
    from annulus.allocation import services
    from annulus.queries import services as qs
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
    ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                            onset_at=timezone.now() - timedelta(hours=6), **EVENT)
    q = qs.raise_query(actor=users["monitor"], participant_id=p.pk, text="Please check the date of birth",
                       assigned_to="site")
    # a line waived, then closed before the lock: the live checklist no longer lists it
    services.waive_lock_item(actor=users["pi"], item=f"query:{q.pk}", reason=CLOSED_REASON)
    qs.close_query(actor=users["monitor"], query_id=q.pk, text="Checked against the source, correct")
    assert f"query:{q.pk}" not in selectors.lock_checklist()["items"]
    groups = [str(g["title"]) for g in selectors.lock_checklist()["groups"]]
    sign_lock(users)
    return p, q, groups


def _page(user, language):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    r = c.get("/unblinding/")
    assert r.status_code == 200
    return r.content.decode()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("role", ["pi", "statistician", "monitor"])
def test_the_locked_page_keeps_the_checklist_read_only(locked, users, language, role):
    from annulus.trial.selectors import trial_state

    p, q, _ = locked
    assert trial_state() == "locked"
    from django.utils import translation

    with translation.override(language):
        live = selectors.lock_checklist()
        groups = [str(g["title"]) for g in live["groups"]]
        labels = {k: str(i["label"]) for k, i in live["items"].items()}
    html = _page(users[role], language)
    heading, when_text = WORDS[language]
    assert 'id="checklist"' in html and heading in html
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    for title in groups:
        assert title in text, title
    waivers = list(LockWaiver.objects.select_related("waived_by"))
    assert len(waivers) > 2
    for w in waivers:
        # a line still listed by its label in the page's language; one closed since, as it was waived
        assert " ".join(labels.get(w.item, w.label).split()) in text, w.item
        when = timezone.localtime(w.waived_at).strftime("%Y-%m-%d %H:%M")
        assert w.waived_by.username in text and when in text
        if when_text:
            assert when_text.format(who=w.waived_by.username, when=when) in text
    assert CLOSED_REASON in text and WAIVE_REASON in text
    # read-only: nothing is open, so nothing to waive and no sign form for the lock
    assert 'value="waive"' not in html and 'value="waive_group"' not in html
    assert 'value="lock"' not in html
