"""X-7.5: the casebook page and its PDF show every coded answer by the data dictionary's words in
the page's language (serology "negative" reads 阴性 on the Chinese casebook, as on the participant
page), never the stored code."""

from __future__ import annotations

import pytest
from django.test import Client

from .test_casebook_pdf import pdf_pages

pytestmark = pytest.mark.req("X-7.5")

WORDS = {"en": "negative", "zh-hans": "阴性"}


def _words(form: str, item: str, language: str) -> dict:
    from annulus.trial.selectors import data_dictionary

    entry = data_dictionary().entry(form, item)
    zh = language.startswith("zh")
    return {c[0]: (c[2] if zh else c[1]) for c in entry.codelist}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_serology_by_its_words_on_page_and_pdf(language, users, make_participant, tmp_path):
    from annulus.participants.models import Evidence

    p = make_participant("enrolled")
    assert Evidence.objects.filter(participant=p, field="hbsag", superseded=False).get().value == "negative"
    word = _words("screening", "hbsag", language)["negative"]
    assert word == WORDS[language]
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["monitor"])
    html = c.get(f"/participants/{p.pk}/casebook/").content.decode()
    label = {"en": "HBsAg", "zh-hans": "乙肝表面抗原"}[language]
    row = html[html.index(label):][:400]
    assert word in row, row
    if language != "en":
        assert "negative" not in html
    r = c.get(f"/participants/{p.pk}/casebook/?format=pdf")
    text = "\n".join(pdf_pages(r.content, tmp_path))
    line = next(ln for ln in text.splitlines() if label in ln)
    assert word in line, line
    if language != "en":
        assert "negative" not in text
