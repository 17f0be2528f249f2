"""The audit page names actions and record types in the page's language, in the table and in the
filters; the stored codes (``screening_evidence``, ``create``) stay in the API only."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.req("X-7.3")]


@pytest.mark.parametrize("language,names", [
    ("en", ["Screening evidence", "Eligibility decision", "Consent", "created"]),
    ("zh-hans", ["筛选依据", "入选资格判定", "知情同意", "创建"]),
])
def test_audit_page_shows_names_not_codes(make_participant, client_for, language, names):
    p = make_participant("enrolled")
    html = client_for("monitor").get(f"/participants/{p.pk}/audit/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    for name in names:
        assert name in html, name
    shown = re.sub(r'value="[^"]*"', "", html)  # the filters' option values are the codes the query uses
    for code in ("screening_evidence", "eligibility_decision", ">create<", ">change<"):
        assert code not in shown, code
    assert 'value="screening_evidence"' in html


def test_the_api_keeps_the_stored_codes(make_participant, client_for):
    p = make_participant("enrolled")
    rows = client_for("monitor").get(f"/api/v1/participants/{p.pk}/audit").json()
    assert {"create"} <= {r["action"] for r in rows}
