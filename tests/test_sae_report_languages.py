"""The printable SAE report form reads in the page's language: the trial title, the labels and an
ongoing event's end, in English and in Simplified Chinese."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.safety import services

pytestmark = pytest.mark.django_db


@pytest.mark.req("P-6.2")
@pytest.mark.parametrize("language,expected,absent", [
    ("en", ["Serious adverse event report", "Autologous cultured adipose-derived", "ongoing"], ["自体培养", "持续中"]),
    ("zh-hans", ["严重不良事件", "自体培养脂肪间充质干细胞", "持续中"], ["Autologous cultured", ">ongoing<"]),
])
def test_sae_report_form_in_both_languages(users, make_participant, client_for, language, expected, absent):
    p = make_participant("enrolled")
    now = timezone.now()
    ae = services.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Discitis", onset_at=now - timedelta(days=1),
        serious=True, serious_criteria=["hospitalisation"], grade=3, causality_liposuction="not_related",
        causality_injection="possible", causality_product="possible", expectedness="expected",
        action_taken="treatment", outcome="not_recovered", first_knowledge_at=now - timedelta(hours=1))
    report = ae.sae_reports.first()
    html = client_for("investigator").get(f"/safety/sae/reports/{report.pk}/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    for text in expected:
        assert text in html, text
    for text in absent:
        assert text not in html, text
