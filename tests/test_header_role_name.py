"""The header badge names the signed-in role as the protocol names it, in the page's language,
never by its code ("monitor", "data_manager")."""

import re

import pytest
from django.test import Client


def _badge(html: str) -> str:
    m = re.search(r'<span class="badge (?:blind|unblind)"[^>]*>([^<]*)</span>', html)
    assert m, "no role badge in the header"
    return m.group(1)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
@pytest.mark.parametrize("role", ["monitor", "data_manager", "coordinator", "pharmacist"])
def test_badge_shows_role_name(users, language, role):
    from annulus.trial.selectors import active_protocol

    declared = next(r for r in active_protocol().roles if r.id == role)
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users[role])
    r = c.get("/")
    assert r.status_code == 200
    badge = _badge(r.content.decode())
    name = declared.name.get(language)
    assert badge.startswith(name + " · "), badge
    assert badge.split(" · ")[0] != role
    blind_word = {"en": ("blinded", "unblinded"), "zh-hans": ("盲态", "非盲")}[language]
    assert badge.endswith(blind_word[0] if declared.blinded else blind_word[1]), badge
