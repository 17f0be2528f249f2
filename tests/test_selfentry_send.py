"""Participants answer their own questionnaires (issue 18): links issued by the schedule when a
visit window opens and sent through the configured sender, answers that record the visit, the
questionnaire's status on the dashboard and the call list, revoking a link, a new card code, and
the limit on guessed links from one address."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.cli import main
from annulus.selfentry import selectors, services
from annulus.selfentry.models import CardCode, Contact, SelfEntryLink
from annulus.visits.models import FormRecord, Visit

from .test_selfentry import _answers, _browser, _normal, _post
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401 (fixtures)


@pytest.fixture
def outbox(settings, tmp_path) -> Path:
    """The file sender writes under a folder of the test's own."""
    settings.VAR_DIR = tmp_path
    settings.ANNULUS_SELFENTRY_SENDER = "annulus.selfentry.senders.FileSender"
    return tmp_path / "selfentry-outbox"


@pytest.fixture
def in_m1_window(trial_participant, users):
    """A participant whose 1-month window is open today (transplanted 30 days ago), the visit not
    recorded; with a card code handed out in clinic unless ``card=False``."""
    def make(card: bool = True):
        p = trial_participant(lipo_days_ago=51, transplant_days_ago=30)
        if card:
            services.reset_card_code(actor=users["coordinator"], participant_id=p.pk, reason="card handed out")
        return p
    return make


def _messages(outbox: Path) -> list[str]:
    return [f.read_text(encoding="utf-8") for f in sorted(outbox.glob("*.txt"))] if outbox.exists() else []


def _path_in(text: str) -> str:
    return re.search(r"https?://[^/\s]+(/p/[^/\s]+/)", text).group(1)


def _code_for(p, users) -> str:
    return services.reset_card_code(actor=users["coordinator"], participant_id=p.pk, reason="test: known code")


def _answer(path: str, code: str, language: str = "en", **extra):
    phone = _browser(language)
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    return _post(phone, path, {"action": "submit", "proof": proof, **_answers(["vas", "odi", "joa", "sf36"]),
                               **extra})


@pytest.mark.req("P-4.5", "P-4.6")
def test_the_schedule_issues_and_sends_a_link_when_the_window_opens(in_m1_window, outbox, users, capsys):
    p = in_m1_window()
    no_card = in_m1_window(card=False)
    assert main(["selfentry", "issue-due", "--site-url", "https://trial.example.org"]) == 0
    out = capsys.readouterr().out
    link = SelfEntryLink.objects.get(participant=p)
    assert link.visit is None and link.visit_key == "m1" and link.issued_by is None
    assert link.instruments == ["vas", "odi", "joa", "sf36"] and link.sent_via == "file"
    # the link works to the end of the window (target + 7 days), and no longer
    assert timezone.localdate(link.expires_at) == timezone.localdate() + timedelta(days=7)
    # one message, to the participant's phone, with the link and no name or number in the link
    (text,) = _messages(outbox)
    path = _path_in(text)
    assert "To: 13800000000" in text and "https://trial.example.org/p/" in text
    assert p.screening_number not in path and "Test" not in path and "card" in text
    # the participant without a card code gets no link: the code is handed out in clinic
    assert not SelfEntryLink.objects.filter(participant=no_card).exists()
    assert "card code" in out and "1 link(s) issued and sent" in out
    # audited as the schedule's, with the channel, never the token
    token = path.split("/")[2]
    events = AuditEvent.objects.filter(object_type="selfentry_link", participant_id=p.pk).order_by("id")
    assert [e.actor_username for e in events] == ["system", "system"]
    sent = json.loads(events[1].payload)["changes"]
    assert sent["sent_via"] == [None, "file"] and sent["visit"] == "m1"
    assert not any(token in e.payload for e in AuditEvent.objects.all())
    # running it again issues nothing new
    assert main(["selfentry", "issue-due"]) == 0
    assert SelfEntryLink.objects.filter(participant=p).count() == 1 and len(_messages(outbox)) == 1


@pytest.mark.req("P-4.5", "X-5.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_answers_through_a_link_of_the_schedule_record_the_visit(in_m1_window, outbox, users, language):
    p = in_m1_window()
    services.issue_due()
    path = _path_in(_messages(outbox)[0])
    code = _code_for(p, users)
    # an answer out of range saves nothing: neither the visit nor a form
    bad = _answer(path, code, language, **{"vas-vas_mm": "150"})
    assert bad.status_code == 400
    assert not Visit.objects.filter(participant=p).exists() and not FormRecord.objects.filter(participant=p).exists()
    done = _answer(path, code, language)
    assert done.status_code == 200 and "data-selfentry-clear" in done.content.decode()
    visit = Visit.objects.get(participant=p, visit_id="m1")
    assert visit.visit_date == timezone.localdate() and visit.created_by.username == services.PARTICIPANT_USERNAME
    link = SelfEntryLink.objects.get(participant=p)
    assert link.visit == visit and link.used_at is not None
    assert {r.form_id: r.state for r in FormRecord.objects.filter(visit=visit)} == {
        "vas": "complete", "odi": "complete", "sf36": "complete", "joa": "draft"}
    opened = AuditEvent.objects.get(object_type="visit", object_id=str(visit.pk), action="create")
    assert opened.reason == "entered by participant"
    assert json.loads(opened.payload)["changes"]["source"] == "participant"
    # the link is used up; the same page as a link that never existed
    assert _browser(language).get(path).status_code == 404
    # nothing more to issue for this visit
    assert services.issue_due().issued == []


@pytest.mark.req("P-4.7")
def test_no_link_for_participants_who_left_the_trial_or_a_locked_record(in_m1_window, outbox, users):
    from annulus.participants import services as ps

    gone, locked = in_m1_window(), in_m1_window()
    ps.withdraw(actor=users["investigator"], participant_id=gone.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Moved away")
    ps.lock_record(actor=users["data_manager"], participant_id=locked.pk, visit="m1")
    report = services.issue_due()
    assert report.issued == [] and not SelfEntryLink.objects.exists() and _messages(outbox) == []
    assert [(p.pk, reason) for p, _key, reason in report.skipped] == [(locked.pk, "the record is locked")]


@pytest.mark.req("P-3.7")
def test_the_locked_trial_stops_the_schedule(in_m1_window, outbox, capsys):
    from annulus.trial.models import TrialState

    in_m1_window()
    TrialState.objects.filter(id=1).update(state="locked")  # set-up: the signatures are tested elsewhere
    assert main(["selfentry", "issue-due"]) == 2
    assert "locked" in capsys.readouterr().err
    assert not SelfEntryLink.objects.exists() and _messages(outbox) == []


@pytest.mark.req("P-4.5")
@pytest.mark.parametrize("language, subject, words", [
    ("en", "Your questionnaire for the study", "1 month"),
    ("zh-hans", "您的研究问卷", "1个月")])
def test_the_coordinator_sends_a_link_by_e_mail_in_the_participants_language(in_m1_window, client_for, settings,
                                                                           users, language, subject, words):
    settings.ANNULUS_SELFENTRY_SENDER = "annulus.selfentry.senders.EmailSender"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    p = in_m1_window()
    coordinator = client_for("coordinator")
    page = coordinator.get(f"/participants/{p.pk}/self-entry/m1/").content.decode()
    assert 'value="send"' not in page  # no e-mail address yet: nothing to send to
    refused = coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "send"})
    assert refused.status_code == 400 and "contact: the participant has no e-mail address" in \
        refused.content.decode()
    assert not SelfEntryLink.objects.exists()  # issued and sent, or neither
    bad = coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                           {"action": "contact", "email": "not an address", "language": language})
    assert bad.status_code == 400 and "email:" in bad.content.decode() and not Contact.objects.exists()
    saved = coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                             {"action": "contact", "email": "tp@example.org", "language": language})
    assert saved.status_code == 200 and 'value="send"' in saved.content.decode()
    sent = coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "send"})
    assert sent.status_code == 200 and 'data-testid="sent"' in sent.content.decode()
    (message,) = mail.outbox
    link = SelfEntryLink.objects.get()
    assert message.to == ["tp@example.org"] and message.subject == subject and words in message.body
    assert "/p/" in message.body and "Test Person" not in message.body and p.screening_number not in message.body
    assert link.sent_via == "email"
    event = AuditEvent.objects.filter(object_type="selfentry_link", reason="link sent to the participant").get()
    assert event.actor_username == users["coordinator"].username
    assert "tp@example.org" not in event.payload and link.token_hash not in event.payload
    # a change of the contact needs a reason and is kept beside the first
    again = coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                             {"action": "contact", "email": "new@example.org", "language": language})
    assert again.status_code == 400 and "reason" in again.content.decode()
    coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "contact", "email": "new@example.org",
                                                              "language": language, "reason": "new address"})
    assert list(Contact.objects.values_list("email", flat=True)) == ["tp@example.org", "new@example.org"]
    assert AuditEvent.objects.filter(object_type="selfentry_contact", reason="new address").exists()


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("language, revoked_word", [("en", "revoked"), ("zh-hans", "已撤销")])
def test_a_revoked_link_gets_the_page_of_a_link_that_never_existed(in_m1_window, outbox, client_for, users,
                                                                   language, revoked_word):
    p = in_m1_window()
    services.issue_due()
    path = _path_in(_messages(outbox)[0])
    link = SelfEntryLink.objects.get()
    coordinator = client_for("coordinator")
    coordinator.cookies["django_language"] = language
    no_reason = coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "revoke", "link": link.pk})
    assert no_reason.status_code == 400 and "reason" in no_reason.content.decode()
    assert _browser().get(path).status_code == 200
    done = coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                            {"action": "revoke", "link": link.pk, "reason": "slip lost"})
    assert done.status_code == 200 and revoked_word in done.content.decode()
    unknown = _browser().get("/p/" + "B" * 43 + "/")
    got = _browser().get(path)
    assert got.status_code == unknown.status_code == 404
    assert _normal(got.content.decode()) == _normal(unknown.content.decode())
    link.refresh_from_db()
    assert link.revoked_by == users["coordinator"] and link.revoke_reason == "slip lost"
    assert AuditEvent.objects.filter(object_type="selfentry_link", reason="slip lost").count() == 1
    # a revoked link is not revoked twice, and the schedule issues a new one
    assert coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                            {"action": "revoke", "link": link.pk, "reason": "again"}).status_code == 400
    assert len(services.issue_due().issued) == 1


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("language, heading", [("en", "New card code"), ("zh-hans", "新卡片代码")])
def test_a_new_card_code_replaces_the_old_one(in_m1_window, client_for, users, language, heading):
    p = in_m1_window(card=False)
    coordinator = client_for("coordinator")
    coordinator.cookies["django_language"] = language
    first = coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "issue"}).content.decode()
    old_code = re.search(r'data-testid="card-code">(\d+)<', first).group(1)
    path = re.search(r'data-testid="link">[^<]*?(/p/[^/<]+/)<', first).group(1)
    assert coordinator.post(f"/participants/{p.pk}/self-entry/m1/",
                            {"action": "reset_code", "reason": ""}).status_code == 400
    resp = coordinator.post(f"/participants/{p.pk}/self-entry/m1/", {"action": "reset_code", "reason": "card lost"})
    html = resp.content.decode()
    assert resp.status_code == 200 and heading in html
    new_code = re.search(r'data-testid="new-card-code">(\d+)<', html).group(1)
    cards = list(CardCode.objects.filter(participant=p).order_by("id"))
    assert len(cards) == 2 and cards[0].replaced_at is not None and cards[0].replace_reason == "card lost"
    assert cards[1].replaced_at is None and new_code not in cards[1].code_hash
    event = AuditEvent.objects.get(object_type="card_code", reason="card lost")
    assert new_code not in event.payload and old_code not in event.payload
    # the shown code is not on the next page
    assert new_code not in coordinator.get(f"/participants/{p.pk}/self-entry/m1/").content.decode()
    phone = _browser(language)
    if old_code != new_code:
        assert 'name="proof"' not in _post(phone, path, {"action": "code", "code": old_code}).content.decode()
    assert 'name="proof"' in _post(phone, path, {"action": "code", "code": new_code}).content.decode()


@pytest.mark.req("X-3.8")
def test_many_links_that_do_not_work_from_one_address_are_refused(in_m1_window, outbox, settings):
    settings.ANNULUS_SELFENTRY_GUESSES = 5
    in_m1_window()
    services.issue_due()
    real = _path_in(_messages(outbox)[0])
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    pages = [guesser.get(f"/p/{'G' * 40}{n:03d}/") for n in range(5)]
    assert [r.status_code for r in pages] == [404] * 5
    # from now on every link gets the same words with 429, a working one too
    refused = [guesser.get(f"/p/{'G' * 40}999/"), guesser.get(real), guesser.post(real, {"action": "code"})]
    assert [r.status_code for r in refused] == [429, 429, 429]
    text = {_normal(r.content.decode()) for r in refused + pages[:1]}
    assert len(text) == 1 and "This link does not work" in text.pop()
    assert refused[1]["Retry-After"]
    # another address is not affected
    assert Client(REMOTE_ADDR="198.51.100.7").get(real).status_code == 200
    # the same link asked for again and again is one guess
    again = Client(REMOTE_ADDR="192.0.2.1")
    assert {again.get(f"/p/{'H' * 43}/").status_code for _ in range(10)} == {404}
    assert again.get(real).status_code == 200
    assert AuditEvent.objects.filter(object_type="selfentry_guard").count() == 1


@pytest.mark.req("P-4.6")
@pytest.mark.parametrize("language, words", [
    ("en", ("completed by participant", "link issued, not completed", "no link issued", "Questionnaires to remind")),
    ("zh-hans", ("受试者已完成", "已发链接，未完成", "未发链接", "需提醒填写问卷"))])
def test_dashboard_and_call_list_show_the_questionnaires_and_stop_reminding_once_done(
        in_m1_window, outbox, client_for, users, language, words, capsys):
    answered, waiting = in_m1_window(), in_m1_window()
    services.issue_due()
    silent = in_m1_window()  # window open, no link yet
    by_participant = {}
    for text in _messages(outbox):
        link = SelfEntryLink.objects.get(token_hash=selectors.token_hash(_path_in(text).split("/")[2]))
        by_participant[link.participant_id] = _path_in(text)
    assert _answer(by_participant[answered.pk], _code_for(answered, users)).status_code == 200
    statuses = {r["participant"].pk: r["status"] for r in selectors.open_questionnaires()}
    assert statuses == {answered.pk: "done", waiting.pk: "issued", silent.pk: "not_issued"}
    coordinator = client_for("coordinator")
    coordinator.cookies["django_language"] = language
    dash = coordinator.get("/").content.decode()
    assert all(w in dash for w in words[:3])
    assert re.search(r'data-testid="q-done">1<', dash) and re.search(r'data-testid="q-issued">1<', dash)
    assert re.search(r'data-testid="q-not-issued">1<', dash)
    remind = re.search(r'data-testid="to-remind">(.*?)</ul>', dash, re.S).group(1)
    assert waiting.label in remind and answered.label not in remind
    calls = coordinator.get("/visits/calls/").content.decode()
    assert words[3] in calls
    table = re.search(r'<table data-testid="to-remind">(.*?)</table>', calls, re.S).group(1)
    assert waiting.label in table and answered.label not in table and silent.label not in table
    assert main(["selfentry", "to-remind"]) == 0
    printed = capsys.readouterr().out
    assert waiting.case_number in printed and answered.case_number not in printed
    # the waiting participant answers: nobody is left to remind
    assert _answer(by_participant[waiting.pk], _code_for(waiting, users)).status_code == 200
    assert selectors.to_remind() == []
    assert main(["selfentry", "to-remind"]) == 0 and "Nobody to remind" in capsys.readouterr().out
    assert 'data-testid="to-remind"' not in coordinator.get("/visits/calls/").content.decode()


@pytest.mark.req("P-4.6")
def test_the_reminder_call_list_shows_the_questionnaire_of_tomorrows_visit(trial_participant, outbox, users,
                                                                          client_for):
    from annulus.visits.selectors import call_list

    # transplanted 22 days ago: the 1-month visit (day 30, window from day 23) is booked for tomorrow
    p = trial_participant(lipo_days_ago=43, transplant_days_ago=22)
    from annulus.visits import services as vs

    tomorrow = timezone.localdate() + timedelta(days=1)
    vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", on=tomorrow)
    services.reset_card_code(actor=users["coordinator"], participant_id=p.pk, reason="card handed out")
    (row,) = [r for r in call_list(timezone.localdate()) if r["participant"].pk == p.pk]
    assert row["questionnaire"]["status"] == "not_issued"
    # the window opens tomorrow: the schedule issues nothing today, the coordinator cannot either
    assert services.issue_due().issued == []
    resp = client_for("coordinator").post(f"/participants/{p.pk}/self-entry/m1/", {"action": "issue"})
    assert resp.status_code == 400 and "window of this visit opens on" in resp.content.decode()
