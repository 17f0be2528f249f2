"""The monitor's status grid keeps what matters in view on a 1280 px screen: the participant column
stays put (sticky) and the summary columns (queries, SDV left, signature, casebook locked) come right
after it, before the visit columns; the legend shows the drawn padlock, not the 🔒 emoji that needs
an emoji font. Both languages."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from .test_visits_support import at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")

HEADS = {"en": ["Participant", "Queries", "SDV left", "Signature", "Casebook locked"],
         "zh-hans": None}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_summary_columns_follow_the_participant(at_w1, users, language):  # noqa: F811
    from django.utils import translation

    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["monitor"])
    html = c.get("/monitoring/").content.decode()
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", h).strip().rstrip("↑↓▲▼ ").strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]
    with translation.override(language):
        want = [translation.gettext(w) for w in HEADS["en"]]
    assert [c_.split()[0] if c_ else c_ for c_ in cells[:5]] == [w.split()[0] for w in want], cells
    assert 'class="who"' in head
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", html, re.S).group(1)
    tds = re.findall(r'<td class="([^"]*)"', row)
    assert tds[:5] == ["who", "sum queries", "sum sdv-left", "sum signature", "sum last locked"], tds
    # the legend: the drawn padlock, no emoji
    assert "🔒" not in html
    legend = html[html.index('class="lock-key"'):][:800]
    assert 'svg class="padlock"' in legend


def test_participant_column_is_sticky():
    css = open(finders.find("annulus/monitoring.css"), encoding="utf-8").read()
    rule = re.search(r"table\.mgrid th\.who, table\.mgrid td\.who \{([^}]*)\}", css).group(1)
    assert "position:sticky" in rule and "left:0" in rule and "background" in rule
