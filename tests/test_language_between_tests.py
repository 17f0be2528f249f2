"""A page request in Chinese leaves zh-hans active in its thread (LocaleMiddleware activates the
language of each request and restores nothing). The autouse fixture ``_default_language`` in
conftest.py starts and ends every test in the default language, so a test of a service that runs
after a Chinese page in the same worker gets its messages in English. The two tests run in file
order; in one process the second fails without that fixture."""

from __future__ import annotations

from django.conf import settings
from django.test import Client
from django.utils import timezone, translation

from annulus.participants import services as ps

from .test_participants_bad_input import refused


def test_a_page_in_chinese_activates_chinese(users):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="zh-hans")
    c.force_login(users["coordinator"])
    assert "受试者" in c.get("/participants/").content.decode()
    assert translation.get_language() == "zh-hans"  # what the next test must not inherit


def test_the_next_test_starts_in_the_default_language(make_participant, users):
    assert translation.get_language() == settings.LANGUAGE_CODE
    p = make_participant("screen_failed")
    refused(lambda: ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                                category="other", details="x"), "status", "screen failure cannot continue")
