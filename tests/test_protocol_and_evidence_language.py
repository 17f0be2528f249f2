"""Chinese pages name things distinctly and show no English protocol values: the protocol page's
visit table has its own heading, and the participant page and screening form show the choice
values of the protocol's evidence fields (negative, positive, none) in the page's language."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def get(users, role, language, url):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users[role])
    response = c.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("language, heading, column", [("en", "<h2>Visit schedule</h2>", "<th>Visit</th>"),
                                                       ("zh-hans", "<h2>访视计划</h2>", "<th>访视</th>")])
def test_protocol_visit_table_heading_differs_from_its_column(users, language, heading, column):
    html = get(users, "monitor", language, "/protocol/")
    assert heading in html and column in html


@pytest.mark.req("P-2.1")
def test_evidence_choice_values_in_the_page_language(users, make_participant):
    p = make_participant("screening", modic_type="none")
    en = get(users, "coordinator", "en", f"/participants/{p.pk}/")
    zh = get(users, "coordinator", "zh-hans", f"/participants/{p.pk}/")
    assert "乙肝表面抗原: negative" not in zh
    assert "HBsAg: negative" in en and "乙肝表面抗原: 阴性" in zh and "HIV抗体: 阴性" in zh
    assert "L4-5终板Modic分型: 无" in zh
    form = get(users, "coordinator", "zh-hans", f"/participants/{p.pk}/screening/")
    assert '>阴性</option>' in form and '>阳性</option>' in form and '>negative</option>' not in form
    assert 'value="negative"' in form  # the kept value is still the protocol's
