"""The SDV worksheet shows values as the form writes them: a corrected integer answer stored as
52.0 reads "52" like the baseline's "62", and the plan's share reads "20 %", in both languages."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_sdv_values_and_share_as_typed(at_w1, users, language):  # noqa: F811
    from annulus.trial.selectors import active_protocol

    p, _v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 61}, complete=True, collected_at=aware(day))
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 52.0}, complete=True, reason="read from the source again")
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["monitor"])
    html = c.get(f"/monitoring/participants/{p.pk}/sdv/").content.decode()
    assert "52.0" not in html
    assert re.search(r">\s*52\s*<", html), "the corrected VAS is not shown as 52"
    share = active_protocol().sdv.sample_percent
    assert float(share) == int(share)
    assert f"{int(share)} %" in html and f"{float(share)} %" not in html


def test_number_text():
    from annulus.monitoring.values import number_text

    assert [number_text(v) for v in (52.0, 62, 1.5, "7.25", 0.1 + 0.2 - 0.2, 1e-7)] == [
        "52", "62", "1.5", "7.25", "0.10000000000000003", "0.0000001"]
