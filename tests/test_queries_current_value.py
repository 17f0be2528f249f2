"""X-7.4: a query's page shows the data point's current value beside it, readable (a coded answer by
its words, a number as typed, with its unit, from the data dictionary), and the dashboard row too;
the value follows a correction. Both languages."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from annulus.queries import services
from annulus.visits import services as vs

from .test_visits_support import aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("X-7.4")

LABEL = {"en": "current value", "zh-hans": "当前值"}


def _value(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", v).strip() for v in re.findall(r'class="current-value">(.*?)</', html, re.S)]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_current_value_on_thread_and_dashboard(at_w1, users, make_participant, language):  # noqa: F811
    p, _v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 40}, complete=True, collected_at=aware(day))
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Please check against the diary", assigned_to="site")
    other = make_participant("enrolled")
    coded = services.raise_query(actor=users["monitor"], participant_id=other.pk, visit="screening", form="screening",
                                 item="hbsag", text="Please attach the laboratory report", assigned_to="site")
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["monitor"])
    html = c.get(f"/queries/{q.pk}/").content.decode()
    assert LABEL[language] in html and _value(html) == ["40 mm"]
    html = c.get(f"/queries/{coded.pk}/").content.decode()
    assert _value(html) == [{"en": "negative", "zh-hans": "阴性"}[language]]
    # a correction: the page shows the new value, as typed
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 52.0}, complete=True, reason="read from the source again")
    assert _value(c.get(f"/queries/{q.pk}/").content.decode()) == ["52 mm"]
    dash = c.get("/queries/?status=").content.decode()
    assert sorted(_value(dash)) == sorted(["52 mm", {"en": "negative", "zh-hans": "阴性"}[language]])
