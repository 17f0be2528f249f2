"""Error pages (400, 403, 404, 500 and a refused form token) in the page's language."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.utils import translation

from annulus.trial import views

pytestmark = pytest.mark.django_db

TEXT = {
    "en": {400: "The request could not be read; nothing was saved.", 403: "You do not have access to this page.",
           404: "Page not found.", 500: "Something went wrong; nothing was saved.",
           "csrf": "The form could not be accepted"},
    "zh-hans": {400: "无法读取该请求；未保存任何内容。", 403: "您无权访问此页面。", 404: "找不到该页面。",
                500: "出现错误；未保存任何内容。", "csrf": "无法接受该表单"},
}
TITLE = {"en": {404: "404 Page not found", 403: "403 Access denied"}, "zh-hans": {404: "404 页面不存在", 403: "403 无权访问"}}


def client(users, language, role="ethics"):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users[role])
    return c


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_404_and_403(users, language):
    r = client(users, language).get("/no-such-page/")
    assert r.status_code == 404
    html = r.content.decode()
    assert TEXT[language][404] in html and TITLE[language][404] in html
    r = client(users, language).get("/pharmacy/")
    assert r.status_code == 403
    html = r.content.decode()
    assert TEXT[language][403] in html and TITLE[language][403] in html
    if language == "zh-hans":
        assert "Page not found" not in html and "do not have access" not in html


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_refused_form_token(users, language):
    c = client(users, language, role="coordinator")
    r = c.post("/participants/new/", {"initials": "AB"})  # no token sent
    assert r.status_code == 403
    assert TEXT[language]["csrf"] in r.content.decode()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_400_and_500(users, language):
    for code, view in ((400, views.error_400), (500, views.error_500)):
        request = RequestFactory().get("/")
        request.user = users["coordinator"]
        with translation.override(language):
            response = view(request) if code == 500 else view(request, None)
        assert response.status_code == code
        assert TEXT[language][code] in response.content.decode()
