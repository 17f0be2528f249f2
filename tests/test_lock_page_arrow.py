"""The lock page writes "label → treatment" with the same arrow in its introduction, the steps
table and the second-level form, in English and in Chinese (never an ASCII "->")."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_one_arrow_on_the_lock_page(users, language):
    from annulus.allocation.models import UnblindingStep
    from django.utils import translation

    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["pi"])
    html = c.get("/unblinding/").content.decode()
    main = html[html.index("<main"):]
    assert "-&gt;" not in main and "->" not in main
    with translation.override(language):
        step = str(dict(UnblindingStep.KINDS)["level2"])
    assert "→" in step and step in main
    if language == "en":
        assert "label → treatment released" in main and "releases label → treatment" in main
