"""X-7.5: the casebook page (content read-only, signature block, sign form) as a browser uses it,
with CSRF enforced, in English and Chinese; and the token API (GET casebook, POST sign)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annulus.casebooks import selectors
from annulus.casebooks.models import CasebookSignature
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("X-7.5")


def _browser(user, language="en"):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


def _post(c, url, data):
    c.get(url)
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


@pytest.mark.parametrize("language,meaning,signed_word", [
    ("en", "I approve the data in this casebook as complete and accurate", "Signed"),
    ("zh-hans", "我批准本病例报告册中的数据完整、准确", "已签署"),
])
def test_the_pi_signs_on_the_page(language, meaning, signed_word, users, make_participant):
    p = make_participant("enrolled")
    c = _browser(users["pi"], language)
    url = f"/participants/{p.pk}/casebook/"
    page = c.get(url).content.decode()
    assert meaning in page and 'name="password"' in page and 'name="confirm"' in page
    assert p.screening_number in page
    # without "I confirm": refused, nothing written, the problem named
    r = _post(c, url, {"username": "t_pi", "password": TEST_PASSWORD})
    assert r.status_code == 400 and "confirm" in r.content.decode()
    # a wrong password: named on its field
    r = _post(c, url, {"username": "t_pi", "password": "wrong", "confirm": "yes"})
    assert r.status_code == 400 and not CasebookSignature.objects.exists()
    # signed
    r = _post(c, url, {"username": "t_pi", "password": TEST_PASSWORD, "confirm": "yes"})
    assert r.status_code == 302
    s = CasebookSignature.objects.get()
    page = c.get(url).content.decode()
    assert signed_word in page and s.content_hash in page and "t_pi" in page
    assert s.signed_at.astimezone().strftime("%Y") in page
    assert 'name="password"' not in page  # nothing left to sign
    # the participant page manifests it too
    detail = c.get(f"/participants/{p.pk}/").content.decode()
    assert f"/participants/{p.pk}/casebook/" in detail and meaning in detail


def test_post_without_csrf_is_refused(users, make_participant):
    p = make_participant("enrolled")
    c = _browser(users["pi"])
    r = c.post(f"/participants/{p.pk}/casebook/", {"username": "t_pi", "password": TEST_PASSWORD, "confirm": "yes"})
    assert r.status_code == 403 and not CasebookSignature.objects.exists()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_someone_elses_name_is_refused_on_the_page(language, users, make_participant):
    p = make_participant("enrolled")
    c = _browser(users["pi"], language)
    r = _post(c, f"/participants/{p.pk}/casebook/", {"username": "t_investigator", "password": TEST_PASSWORD,
                                                     "confirm": "yes"})
    assert r.status_code == 400 and not CasebookSignature.objects.exists()
    assert 'name="username"' in r.content.decode()


def test_only_the_pi_sees_the_sign_form(users, make_participant):
    p = make_participant("enrolled")
    for role in ("investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics"):
        page = _browser(users[role]).get(f"/participants/{p.pk}/casebook/")
        assert page.status_code == 200, role
        assert 'name="password"' not in page.content.decode(), role
    assert _post(_browser(users["coordinator"]), f"/participants/{p.pk}/casebook/",
                 {"username": "t_coordinator", "password": TEST_PASSWORD, "confirm": "yes"}).status_code == 403
    for role in ("pharmacist", "designer", "statistician", "admin"):
        assert _browser(users[role]).get(f"/participants/{p.pk}/casebook/").status_code == 403, role


def test_an_invalidated_signature_is_shown_with_what_changed(users, make_participant):
    from django.utils import timezone

    from annulus.casebooks import services
    from annulus.participants import services as ps

    p = make_participant("enrolled")
    services.sign_casebook(actor=users["pi"], participant_id=p.pk, username="t_pi", password=TEST_PASSWORD)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="other", details="Stopped coming")
    en = _browser(users["monitor"]).get(f"/participants/{p.pk}/casebook/").content.decode()
    assert "Signature invalidated by a change after signing" in en and "End of study › Status: enrolled → withdrawn" in en
    zh = _browser(users["monitor"], "zh-hans").get(f"/participants/{p.pk}/casebook/").content.decode()
    assert "签名因签署后的更改而失效" in zh


def _token(user):
    from annulus.accounts.services import issue_token

    return issue_token(user=user, name="casebook test")


def test_api_get_and_sign_with_a_token(users, make_participant):
    p = make_participant("enrolled")
    key = _token(users["pi"])
    c = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    got = c.get(f"/api/v1/casebooks/participants/{p.pk}", **auth).json()
    assert got["state"] == "unsigned" and got["content_hash"] == selectors.content_hash(p)
    assert got["content"]["participant"]["screening_number"] == p.screening_number
    assert got["meaning"] == "I approve the data in this casebook as complete and accurate"
    # wrong password: 400 naming the field, nothing written
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign", json.dumps({"username": "t_pi", "password": "x"}),
               content_type="application/json", **auth)
    assert r.status_code == 400 and r.json()["detail"] == [{"field": "password", "message": "is not correct"}]
    # another user's name: 400 naming the field (bad input; the role may sign)
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign",
               json.dumps({"username": "t_investigator", "password": TEST_PASSWORD}),
               content_type="application/json", **auth)
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "username"
    # missing fields: 422 naming them
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign", json.dumps({}), content_type="application/json", **auth)
    assert r.status_code == 422 and {d["field"] for d in r.json()["detail"]} == {"username", "password"}
    assert not CasebookSignature.objects.exists()
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign",
               json.dumps({"username": "t_pi", "password": TEST_PASSWORD, "content_hash": got["content_hash"]}),
               content_type="application/json", **auth)
    assert r.status_code == 201, r.content
    assert r.json()["content_hash"] == got["content_hash"] and r.json()["signer"] == "t_pi"
    got = c.get(f"/api/v1/casebooks/participants/{p.pk}", **auth).json()
    assert got["state"] == "signed" and got["signature"]["signer_name"] == "t_pi"
    # signing again, unchanged: 409
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign", json.dumps({"username": "t_pi", "password": TEST_PASSWORD}),
               content_type="application/json", **auth)
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "casebook"


def test_api_refuses_a_coordinator_and_an_unknown_participant(users, make_participant):
    p = make_participant("enrolled")
    c = Client(enforce_csrf_checks=True)
    coord = {"HTTP_AUTHORIZATION": f"Bearer {_token(users['coordinator'])}"}
    assert c.get(f"/api/v1/casebooks/participants/{p.pk}", **coord).status_code == 200
    r = c.post(f"/api/v1/casebooks/participants/{p.pk}/sign",
               json.dumps({"username": "t_coordinator", "password": TEST_PASSWORD}),
               content_type="application/json", **coord)
    assert r.status_code == 403 and not CasebookSignature.objects.exists()
    pi = {"HTTP_AUTHORIZATION": f"Bearer {_token(users['pi'])}"}
    assert c.get("/api/v1/casebooks/participants/987654", **pi).status_code == 404
    designer = {"HTTP_AUTHORIZATION": f"Bearer {_token(users['designer'])}"}
    assert c.get(f"/api/v1/casebooks/participants/{p.pk}", **designer).status_code == 403


def test_every_problem_of_the_sign_form_is_shown_at_once(users, make_participant):
    from annulus.accounts.models import LoginAttempt

    p = make_participant("enrolled")
    c = _browser(users["pi"])
    r = _post(c, f"/participants/{p.pk}/casebook/", {"username": "t_investigator", "password": "wrong"})
    html = r.content.decode()
    assert r.status_code == 400
    assert "confirm: tick" in html and "is not the signed-in user" in html
    # the password was not checked while "I confirm" was missing: no failure counted
    assert not LoginAttempt.objects.filter(username="t_pi", success=False).exists()
    r = _post(c, f"/participants/{p.pk}/casebook/", {"username": "", "password": ""})
    html = r.content.decode()
    assert "confirm: tick" in html and "re-enter your user name" in html and "re-enter your password" in html
    assert not CasebookSignature.objects.exists()


def test_api_shows_an_invalidated_signature_with_what_changed(users, make_participant):
    from django.utils import timezone

    from annulus.casebooks import services
    from annulus.participants import services as ps

    p = make_participant("enrolled")
    signed = services.sign_casebook(actor=users["pi"], participant_id=p.pk, username="t_pi", password=TEST_PASSWORD)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="other", details="Stopped coming")
    c = Client(enforce_csrf_checks=True)
    got = c.get(f"/api/v1/casebooks/participants/{p.pk}",
                HTTP_AUTHORIZATION=f"Bearer {_token(users['monitor'])}").json()
    assert got["state"] == "invalidated" and got["signature"]["content_hash"] == signed.content_hash
    assert got["content_hash"] != signed.content_hash
    changes = {tuple(ch["path"]): (ch["old"], ch["new"]) for ch in got["changes"]}
    assert changes[("end_of_study", "status")] == ("enrolled", "withdrawn")
    assert changes[("end_of_study", "withdrawal")][0] is None
    assert changes[("end_of_study", "withdrawal")][1]["details"] == "Stopped coming"
