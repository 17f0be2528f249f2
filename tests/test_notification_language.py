"""Notifications and their e-mails are written in English, whatever language the person whose action
sends them has chosen for their pages: they go to other people, and they are kept (notification
and audit trail). A page request in Chinese must not put Chinese words into them."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from annulus.trial.models import Notification

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.mark.req("P-6.4")
def test_a_dsmb_recommendation_made_on_the_chinese_page_is_notified_in_english(
        users, settings, django_capture_on_commit_callbacks):
    for u in users.values():
        u.email = f"{u.username}@example.org"
        u.save(update_fields=["email"])
    mail.outbox.clear()
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="zh-hans")
    c.force_login(users["dsmb"])
    url = "/safety/dsmb/recommendations/new/"
    page = c.get(url)
    assert "建议" in page.content.decode()  # the page itself is in Chinese
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(url, {"csrfmiddlewaretoken": c.cookies["csrftoken"].value,
                         "meeting_on": timezone.localdate().isoformat(), "decision": "continue",
                         "summary": "Continue the trial as planned."})
    assert r.status_code == 302, r.content.decode()[-2000:]
    sent = Notification.objects.filter(kind="dsmb_recommendation")
    assert sent.filter(user=users["investigator"]).exists()
    for n in sent:
        assert "continue unchanged" in n.subject
        assert not CJK.search(n.subject + n.body), n.subject
    mails = [m for m in mail.outbox if "DSMB recommendation" in m.subject]
    assert mails
    for m in mails:
        assert not CJK.search(m.subject + m.body), m.subject
