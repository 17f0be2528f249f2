"""Participants answer their own questionnaires (issue 18): a one-time link for a visit, the card
code as a second factor, the questionnaire pages in both languages, and submission through the
eCRF's own validation and scoring, with the participant named as the source in the audit trail."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.instruments.sf36 import FORM as SF36
from annulus.selfentry import services
from annulus.selfentry.models import CardCode, SelfEntryLink
from annulus.visits import services as vs
from annulus.visits.models import FormRecord, FormRevision

from .test_no_preselected_answers import assert_nothing_chosen
from .test_visits_support import GOOD, transplant_dates, trial_participant  # noqa: F401 (fixtures)

ODI_ANSWERS = {f"s{i}": i % 6 for i in range(1, 11)}
SF36_ANSWERS = {i.id: int(i.choices[n % len(i.choices)][0]) for n, i in enumerate(SF36.items)}
JOA_PATIENT = {"low_back_pain": 1, "leg_pain": 2, "gait": 2, "turn_over": 1, "standing": 1, "washing": 2,
               "leaning_forward": 1, "sitting": 1, "lifting": 0, "walking": 1, "bladder": 0}


@pytest.fixture
def at_m1(trial_participant, users):
    """A participant at the 1-month visit (transplanted 30 days ago), the visit recorded today."""
    def make():
        p = trial_participant(lipo_days_ago=51, transplant_days_ago=30)
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", visit_date=timezone.localdate())
        return p
    return make


def _browser(language: str = "en") -> Client:
    """A phone with no account: CSRF checks enforced, the csrftoken cookie from a first page."""
    client = Client(enforce_csrf_checks=True)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.get("/accounts/login/")
    return client


def _post(client, path, data):
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def _issue(client_for, p, key="m1"):
    resp = client_for("coordinator").post(f"/participants/{p.pk}/self-entry/{key}/")
    assert resp.status_code == 200, resp.content.decode()[:2000]
    html = resp.content.decode()
    url = re.search(r'data-testid="link">([^<]+)<', html).group(1)
    code = re.search(r'data-testid="card-code">(\d+)<', html)
    return url.split("testserver", 1)[1], (code.group(1) if code else None), html


def _answers(link_forms) -> dict:
    data = {}
    if "vas" in link_forms:
        data["vas-vas_mm"] = "37"
    if "odi" in link_forms:
        data.update({f"odi-{k}": str(v) for k, v in ODI_ANSWERS.items()})
    if "joa" in link_forms:
        data.update({f"joa-{k}": str(v) for k, v in JOA_PATIENT.items()})
    if "sf36" in link_forms:
        data.update({f"sf36-{k}": str(v) for k, v in SF36_ANSWERS.items()})
    return data


def _normal(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'nonce-[^"\' ;]+', "", html)


@pytest.mark.req("P-4.5", "X-5.7")
def test_issuing_needs_the_entry_right_stores_only_hashes_and_is_audited(at_m1, client_for, users):
    p = at_m1()
    assert client_for("monitor").post(f"/participants/{p.pk}/self-entry/m1/").status_code == 403
    assert not SelfEntryLink.objects.exists()
    path, code, html = _issue(client_for, p)
    token = path.split("/")[2]
    assert len(token) >= 40 and code and len(code) == 6
    assert "<svg" in html and "<script" not in html.split("<main>", 1)[1]  # the QR code, inline, no script
    link = SelfEntryLink.objects.get()
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert link.instruments == ["vas", "odi", "joa", "sf36"]
    stored = json.dumps([str(v) for v in SelfEntryLink.objects.values().get().values()])
    card = CardCode.objects.get(participant=p)
    assert token not in stored and code not in card.code_hash and token not in path.replace(token, "")
    # the link names no one: it is the random token and nothing else (no screening or case
    # number, no initials; two-letter initials may turn up by chance inside a random token)
    assert path == f"/p/{token}/" and p.screening_number not in path
    # it lasts to the end of the 1-month window (target today, 7 days after)
    assert timezone.localdate(link.expires_at) == timezone.localdate() + timedelta(days=7)
    events = AuditEvent.objects.filter(object_type__in=["selfentry_link", "card_code"], participant_id=p.pk)
    assert {e.object_type for e in events} == {"selfentry_link", "card_code"}
    assert all(e.actor_username == users["coordinator"].username for e in events)
    assert not any(token in e.payload or code in e.payload for e in AuditEvent.objects.all())
    # a second link for the same participant makes no new card code
    _path2, code2, html2 = _issue(client_for, p)
    assert code2 is None and "card-code" not in html2
    # the visit page lists the links
    page = client_for("coordinator").get(f"/participants/{p.pk}/visits/m1/").content.decode()
    assert "Issue a link for the participant" in page and "issued, not yet answered" in page


@pytest.mark.req("P-4.5", "P-5.1", "P-5.2", "P-5.3", "P-5.4", "X-5.7")
@pytest.mark.parametrize("language, words", [("en", ("Card code", "Your pain right now", "Lifting", "Send my answers")),
                                             ("zh-hans", ("卡片代码", "您现在的疼痛", "提物", "提交我的回答"))])
def test_the_participant_answers_on_their_own_and_the_scores_equal_the_ecrf(at_m1, client_for, users, language,
                                                                           words):
    p, twin = at_m1(), at_m1()
    path, code, _ = _issue(client_for, p)
    phone = _browser(language)
    first = phone.get(path)
    assert first.status_code == 200 and words[0] in first.content.decode()
    wrong = _post(phone, path, {"action": "code", "code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 200 and 'name="proof"' not in wrong.content.decode()
    page = _post(phone, path, {"action": "code", "code": code})
    html = page.content.decode()
    assert page.status_code == 200 and all(w in html for w in words[1:])
    assert 'type="range"' in html and 'min="0" max="100"' in html
    assert_nothing_chosen(html, "participant questionnaire")
    assert not re.search(r'name="vas-vas_mm"[^>]*value="\d', html)  # no VAS value put in beforehand
    # CSRF is enforced on the participant's pages too
    assert Client(enforce_csrf_checks=True).post(path, {"action": "code", "code": code}).status_code == 403
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    done = phone.post(path, {"action": "submit", "proof": proof, **_answers(["vas", "odi", "joa", "sf36"]),
                             "csrfmiddlewaretoken": phone.cookies["csrftoken"].value},
                      HTTP_USER_AGENT="Mozilla/5.0 (iPhone) test phone")
    assert done.status_code == 200 and "data-selfentry-clear" in done.content.decode(), re.findall(r"role=.alert.>(.*?)</div>", done.content.decode(), re.S)
    link = SelfEntryLink.objects.get(participant=p)
    assert link.used_at is not None and link.device == "Mozilla/5.0 (iPhone) test phone"
    records = {r.form_id: r for r in FormRecord.objects.filter(participant=p)}
    assert {f: records[f].state for f in records} == {"vas": "complete", "odi": "complete", "sf36": "complete",
                                                      "joa": "draft"}
    # the same answers through the eCRF give the same scores
    for form_id, items in (("vas", {"vas_mm": 37}), ("odi", ODI_ANSWERS), ("sf36", SF36_ANSWERS)):
        rec = vs.save_form(actor=users["coordinator"], participant_id=twin.pk, visit_key="m1", form_id=form_id,
                           items=items, complete=True)
        assert records[form_id].computed == rec.computed and records[form_id].items == rec.items
    assert records["joa"].items == JOA_PATIENT
    # the audit trail names the participant as the source
    events = AuditEvent.objects.filter(object_type="crf_form", participant_id=p.pk)
    assert events.count() == 4
    for e in events:
        body = json.loads(e.payload)
        assert e.actor_username == services.PARTICIPANT_USERNAME and e.reason == "entered by participant"
        assert body["changes"]["source"] == "participant"
    assert FormRevision.objects.filter(form__participant=p, saved_by__username=services.PARTICIPANT_USERNAME).count() == 4
    # the coordinator sees it on the visit page
    visit_page = client_for("coordinator").get(f"/participants/{p.pk}/visits/m1/").content.decode()
    assert "entered by participant" in visit_page and "test phone" in visit_page
    # a second submission gets the same page as a link that never existed
    again = phone.post(path, {"action": "submit", "proof": proof, **_answers(["vas"]),
                              "csrfmiddlewaretoken": phone.cookies["csrftoken"].value})
    assert again.status_code == 404
    assert FormRecord.objects.get(participant=p, form_id="vas").revision == 1


@pytest.mark.req("X-5.7")
def test_an_out_of_range_answer_names_the_question_and_saves_nothing(at_m1, client_for):
    p = at_m1()
    path, code, _ = _issue(client_for, p)
    phone = _browser()
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    bad = {**_answers(["vas", "odi", "joa", "sf36"]), "vas-vas_mm": "150", "odi-s3": "9"}
    resp = _post(phone, path, {"action": "submit", "proof": proof, **bad})
    text = resp.content.decode()
    assert resp.status_code == 400
    assert "Question 1, “Your pain right now”: Please mark a point on the line between 0 and 100." in text
    assert "Question 4, “Lifting”: Please choose one of the answers shown." in text
    assert "must be" not in text  # the eCRF's message is the staff's, not the participant's
    assert not FormRecord.objects.filter(participant=p).exists()
    assert SelfEntryLink.objects.get().used_at is None
    # the answers given are kept on the page
    assert 'value="150"' in text


PLAIN_PROBLEMS = {
    "en": ["Some answers need another look:",
           "Question 1, “Your pain right now”: Please mark a point on the line between 0 and 100.",
           "Question 10, “Social life”: Please choose one of the answers shown.",
           "Question 1, “Your pain right now”: Please mark on the line how bad your pain is."],
    "zh-hans": ["以下回答需要再检查一下：",
                "第 1 题“您现在的疼痛”：请在线上 0 到 100 之间标出一点。",
                "第 10 题“社会生活”：请从列出的答案中选择一个。",
                "第 1 题“您现在的疼痛”：请在线上标出您疼痛的程度。"],
}


def _summary(text: str) -> list[str]:
    """The problem summary at the top of the page: its heading and each line, as text."""
    summary = re.search(r'<div class="errorlist error-summary" role="alert" id="error-summary">(.*?)</div>', text,
                        re.S).group(1)
    items = [re.sub(r"<[^>]+>", "", li) for li in re.findall(r"<li>(.*?)</li>", summary, re.S)]
    return [re.sub(r"<[^>]+>", "", summary.split("<ul>")[0])] + items


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_refused_answers_are_explained_to_the_participant_in_plain_words(at_m1, client_for, users, language):
    """An out-of-range value, an answer that is not one of the choices and a missing answer: each
    named by its question's number and short text, in the participant's language, in words a
    patient understands; the eCRF's technical message (the item's label, its unit, the value
    sent) is not shown to them."""
    p = at_m1()
    path, code, _ = _issue(client_for, p)
    phone = _browser(language)
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    plain = PLAIN_PROBLEMS[language]
    bad = {**_answers(["vas", "odi", "joa", "sf36"]), "vas-vas_mm": "150", "odi-s9": "9"}
    resp = _post(phone, path, {"action": "submit", "proof": proof, **bad})
    text = resp.content.decode()
    assert resp.status_code == 400
    assert _summary(text) == plain[:3]
    # each problem also stands at its own question, tied to it for screen readers
    for name, line in (("vas-vas_mm", 1), ("odi-s9", 2)):
        assert f'<p class="errorlist" id="err-{name}">{plain[line]}</p>' in text
    assert 'value="150"' in text  # the answers given are kept
    # the VAS left unmarked
    missing = {k: v for k, v in _answers(["vas", "odi", "joa", "sf36"]).items() if k != "vas-vas_mm"}
    resp2 = _post(phone, path, {"action": "submit", "proof": proof, **missing})
    text2 = resp2.content.decode()
    assert resp2.status_code == 400 and _summary(text2) == [plain[0], plain[3]]
    for page in (text, text2):
        for technical in ("must be", "Pain on the 100 mm line", "got '150'", "100 mm 直线", "is needed", "'9'"):
            assert technical not in page
    assert not FormRecord.objects.filter(participant=p).exists()
    assert SelfEntryLink.objects.get().used_at is None
    # the coordinator's eCRF keeps its own, exact message for the same value
    with pytest.raises(RuleViolation) as staff:
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="m1", form_id="vas",
                     items={"vas_mm": "150"}, complete=True)
    assert "must be 0–100 mm, got '150'" in str(staff.value.message)


@pytest.mark.req("X-3.8")
def test_expired_used_and_unknown_links_look_the_same(at_m1, client_for):
    p = at_m1()
    expired_path, code, _ = _issue(client_for, p)
    SelfEntryLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    used_path, _c, _ = _issue(client_for, p)
    SelfEntryLink.objects.filter(used_at__isnull=True, expires_at__gt=timezone.now()).update(used_at=timezone.now())
    unknown_path = "/p/" + "A" * 43 + "/"
    short_path = "/p/x/"
    pages = []
    for path in (expired_path, used_path, unknown_path, short_path):
        phone = _browser()
        got = phone.get(path)
        posted = _post(phone, path, {"action": "code", "code": code})
        pages += [(got.status_code, _normal(got.content.decode())), (posted.status_code, _normal(posted.content.decode()))]
    assert {s for s, _ in pages} == {404}
    assert len({text for _, text in pages}) == 1
    # nobody logged in is sent to the login page: these pages are open
    assert "This link does not work" in pages[0][1]


@pytest.mark.req("X-3.8")
def test_wrong_card_codes_lock_the_link(at_m1, client_for):
    p = at_m1()
    path, code, _ = _issue(client_for, p)
    wrong = "123456" if code != "123456" else "654321"
    phone = _browser()
    phone.get(path)
    for _ in range(services.FAILURES_PER_LOCK - 1):
        assert "not right" in _post(phone, path, {"action": "code", "code": wrong}).content.decode()
    assert "Too many wrong codes" in _post(phone, path, {"action": "code", "code": wrong}).content.decode()
    # while locked even the right code is refused
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    assert "Too many wrong codes" in html and 'name="proof"' not in html
    SelfEntryLink.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert 'name="proof"' in _post(phone, path, {"action": "code", "code": code}).content.decode()
    # after the last lock the link is gone, like any unknown link
    SelfEntryLink.objects.update(locks=services.MAX_LOCKS, locked_until=None)
    assert _post(phone, path, {"action": "code", "code": code}).status_code == 404
    assert phone.get(path).status_code == 404
    assert AuditEvent.objects.filter(object_type="selfentry_link", reason="wrong card codes").count() == 1


def test_every_answer_to_a_card_code_costs_one_hash_check(at_m1, client_for, monkeypatch):
    """The time of the answer tells nothing: a link that never existed, an expired one, a locked
    one, a wrong code, an empty code and the right code each cost one password-hash check."""
    p = at_m1()
    path, code, _ = _issue(client_for, p)
    token = path.strip("/").split("/")[-1]
    wrong = "123456" if code != "123456" else "654321"
    checks = []
    real = services.check_password

    def counted(raw, encoded, *args, **kwargs):
        checks.append(encoded)
        return real(raw, encoded, *args, **kwargs)

    monkeypatch.setattr(services, "check_password", counted)

    def cost(**kw) -> tuple[str, int]:
        checks.clear()
        result, _link = services.check_code(**kw)
        return result, len(checks)

    assert cost(token="A" * 43, code=code) == (services.CodeResult.GONE, 1)
    assert cost(token=token, code=wrong) == (services.CodeResult.WRONG, 1)
    assert cost(token=token, code="") == (services.CodeResult.WRONG, 1)
    SelfEntryLink.objects.update(locked_until=timezone.now() + timedelta(minutes=5))
    assert cost(token=token, code=code) == (services.CodeResult.LOCKED, 1)
    SelfEntryLink.objects.update(locked_until=None)
    assert cost(token=token, code=code) == (services.CodeResult.OK, 1)
    SelfEntryLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert cost(token=token, code=code) == (services.CodeResult.GONE, 1)


@pytest.mark.req("P-4.7")
def test_a_withdrawn_participants_link_does_not_work(at_m1, client_for, users):
    from annulus.participants import services as ps

    p = at_m1()
    path, code, _ = _issue(client_for, p)
    ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Moved away")
    phone = _browser()
    assert phone.get(path).status_code == 404
    assert _post(phone, path, {"action": "code", "code": code}).status_code == 404
    # and no new link is issued for them
    resp = client_for("coordinator").post(f"/participants/{p.pk}/self-entry/m1/")
    assert resp.status_code == 400 and SelfEntryLink.objects.count() == 1


@pytest.mark.req("P-3.7")
def test_the_locked_trial_refuses_links_and_answers(at_m1, client_for):
    from annulus.trial.models import TrialState

    from .lock_support import audit_head, row_counts

    p = at_m1()
    path, code, _ = _issue(client_for, p)
    phone = _browser()
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    TrialState.objects.filter(id=1).update(state="locked")  # set-up: the signatures are tested elsewhere
    counts, head = row_counts(), audit_head()
    issued = client_for("coordinator").post(f"/participants/{p.pk}/self-entry/m1/")
    assert issued.status_code == 409 and "the database is locked" in issued.content.decode()
    checked = _post(phone, path, {"action": "code", "code": code})
    assert checked.status_code == 409 and "the database is locked" in checked.content.decode()
    sent = _post(phone, path, {"action": "submit", "proof": proof, **_answers(["vas", "odi", "joa", "sf36"])})
    # the answers refused: said to the participant in plain words, not the staff's message
    assert sent.status_code == 409
    assert "The study no longer accepts answers. Please contact the research team." in sent.content.decode()
    assert row_counts() == counts and audit_head() == head


@pytest.mark.req("P-3.3")
def test_the_participant_pages_read_nothing_of_the_allocation():
    """Nothing on these pages can differ by arm: the self-entry app never reaches the allocation
    (group labels, arms, envelopes and drug codes are read only through its selectors), and its
    pages show only the participant's own questions and answers."""
    import ast
    import pathlib

    import annulus.selfentry as app

    folder = pathlib.Path(app.__file__).parent
    reached = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                reached.add(node.module)
            elif isinstance(node, ast.Import):
                reached.update(a.name for a in node.names)
    assert reached, "the scan found no import at all"
    assert not {m for m in reached if m.startswith("annulus.allocation")}, reached
    templates = " ".join(p.read_text(encoding="utf-8") for p in folder.rglob("*.html"))
    for word in ("group_label", "drug_code", "envelope", "arm"):
        assert not re.search(rf"\b{word}\b", templates), word

