"""SAE and SUSAR reporting clocks in the page's language: recipients (from the protocol file's
English and Chinese names), the deadline's rule, the calendar warning and the clock's text on the
SAE clocks page, the SAE report form and the adverse-event page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone, translation

from annulus.safety import clock_text, services
from annulus.safety.models import SaeReport

pytestmark = pytest.mark.django_db

EN_NAMES = ["Head of the research centre", "Ethics committee", "Team leader", "Expedited SUSAR report"]
ZH_NAMES = ["研究中心负责人", "伦理委员会", "课题组长", "SUSAR快速报告（药品监管部门）"]


@pytest.fixture
def susar(users, make_participant):
    p = make_participant("enrolled")
    now = timezone.now()
    return services.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Discitis", grade=3, onset_at=now - timedelta(hours=5),
        serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=2),
        causality_liposuction="not_related", causality_injection="possible", causality_product="possible",
        expectedness="unexpected", action_taken="hospitalised", outcome="recovering")


def get(users, language: str, url: str) -> str:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["investigator"])
    response = c.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.req("P-6.2")
@pytest.mark.parametrize("url", ["/safety/sae/?show=all", "/safety/adverse-events/{ae}/"])
def test_clock_lists_in_both_languages(susar, users, url):
    url = url.format(ae=susar.pk)
    en = get(users, "en", url)
    zh = get(users, "zh-hans", url)
    for name in EN_NAMES[:3]:
        assert name in en and name not in zh
    for name in ZH_NAMES[:3]:
        assert name in zh
    assert " left" in en and " h " in en
    assert "剩余" in zh and " left" not in zh and "小时" in zh and " min<" not in zh


@pytest.mark.req("P-6.2")
def test_report_forms_in_both_languages(susar, users):
    team = SaeReport.objects.get(adverse_event=susar, recipient="team_leader")
    en = get(users, "en", f"/safety/sae/reports/{team.pk}/")
    zh = get(users, "zh-hans", f"/safety/sae/reports/{team.pk}/")
    assert "Team leader" in en and "later of 24 h after first knowledge and the end of working day 2" in en
    assert "课题组长" in zh and "Team leader" not in zh
    assert "获知后 24 小时与第 2 个工作日结束" in zh and "later of" not in zh and "limit applies" not in zh
    assert "剩余" in zh and " left" not in zh
    assert " · 女</td>" in zh and " · female</td>" in en  # the participant's sex in the page's language

    expedited = SaeReport.objects.get(adverse_event=susar, expedited=True)
    en = get(users, "en", f"/safety/sae/reports/{expedited.pk}/")
    zh = get(users, "zh-hans", f"/safety/sae/reports/{expedited.pk}/")
    assert "Expedited SUSAR report (regulatory authority)" in en and "15 calendar days after first knowledge" in en
    assert "SUSAR快速报告（药品监管部门）" in zh and "快速报告</span>" in zh
    assert "SUSAR，非致死且未危及生命：获知后 15 个自然日内" in zh and "calendar days" not in zh

    head = SaeReport.objects.get(adverse_event=susar, recipient="head_of_centre")
    zh = get(users, "zh-hans", f"/safety/sae/reports/{head.pk}/")
    assert "研究中心负责人" in zh and "获知后 12 小时内" in zh and "12 h after" not in zh


def test_kept_rules_and_warnings_read_in_chinese():
    rules = {
        "later of 24 h after first knowledge and the end of working day 2 (2031-01-03 Asia/Shanghai, weekends only); "
        "the hours limit applies":
            "获知后 24 小时与第 2 个工作日结束（2031-01-03 Asia/Shanghai，仅按周末计）两者中较晚者；以小时时限为准",
        "SUSAR, fatal or life-threatening: 7 calendar days after first knowledge (by the end of 2026-03-08 "
        "Asia/Shanghai; ICH E2A); the event became a SUSAR at the follow-up of 2026-03-01 10:00":
            "SUSAR，致死或危及生命：获知后 7 个自然日内（2026-03-08 Asia/Shanghai 当日结束前；ICH E2A）；"
            "该事件于 2026-03-01 10:00 的随访时成为 SUSAR",
        "an older wording": "an older wording",
    }
    with translation.override("zh-hans"):
        for kept, shown in rules.items():
            assert clock_text.rule(kept) == shown
        assert clock_text.warning("holiday calendar for 2031 not available; weekends only") == \
            "2031 年节假日安排尚未公布；仅按周末计算"
    with translation.override("en"):
        for kept in rules:
            assert clock_text.rule(kept) == kept


@pytest.mark.req("P-6.1")
def test_the_first_revision_reads_as_the_first_report_in_both_languages(susar, users):
    """The first revision has no reason of its own (it is the report): the page says so in its language."""
    url = f"/safety/adverse-events/{susar.pk}/"
    en, zh = get(users, "en", url), get(users, "zh-hans", url)
    assert "(first report)" in en
    assert "（首次报告）" in zh and "(first report)" not in zh
