"""The lock and unblinding page in the page's language: the trial's state and every step's name."""

from __future__ import annotations

import pytest
from django.test import Client

from annulus.trial.models import TrialState

pytestmark = pytest.mark.django_db

STEPS = {
    "en": ["database lock signed by the principal investigator", "database lock signed by the statistician",
           "first-level unblinding (group labels released for analysis)", "analysis signed off",
           "second-level unblinding (label → treatment released)"],
    "zh-hans": ["主要研究者签署数据库锁定", "统计师签署数据库锁定", "一级揭盲（公布组别代码以供统计分析）", "分析已签核",
                "二级揭盲（公布组别代码 → 治疗的对应关系）"],
}
STATE = {"en": '<span class="status">recruiting</span>', "zh-hans": '<span class="status">招募中</span>'}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_states_and_steps_in_the_page_language(users, language):
    TrialState.objects.update_or_create(id=1, defaults={"state": "recruiting"})
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["monitor"])
    html = c.get("/unblinding/").content.decode()
    assert STATE[language] in html
    for step in STEPS[language]:
        assert step in html, step
    if language == "zh-hans":
        assert "recruiting" not in html and "database lock signed" not in html and "analysis signed off" not in html


@pytest.mark.parametrize("language,state", [("en", "recruiting"), ("zh-hans", "招募中")])
def test_dashboard_names_the_trial_state_in_the_page_language(users, make_participant, client_for, language, state):
    make_participant("enrolled")  # the first enrolment opens recruitment
    html = client_for("coordinator").get("/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert f'<span class="status">{state}</span>' in html
