"""Headless Chromium, in English and in Chinese: the data of one participant in follow-up is
cleaned, verified, locked and signed, and the database is locked, through the real pages only
(clicks and typing, CSRF enforced as on the site), each user in their own browser:

the monitor opens the status grid, goes to the 1-week VAS form and raises a query on its item;
the coordinator answers it and corrects the value with a reason; the monitor closes it and marks
the forms the SDV plan asks for verified against source; the data manager locks a form, the
visit and the casebook; the principal investigator re-enters user name and password and signs
the casebook; the lock page's checklist no longer lists this participant's queries, verification
or signature; the PI waives what remains with reasons, the PI and the statistician sign the
database lock, and the trial is locked. What each user sees is asserted at each step, and the
audit trail holds every step. Screenshots go to /tmp/walkthrough/ (ANNULUS_WALKTHROUGH_DIR)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone, translation

from .conftest import TEST_PASSWORD
from .test_browser_journey import CHROMIUM, flushable_audit_table  # noqa: F401
from .test_visits_support import complete_visit, transplant_dates, trial_participant  # noqa: F401

SHOTS = Path(os.environ.get("ANNULUS_WALKTHROUGH_DIR", "/tmp/walkthrough"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("X-7.4", "P-7.1", "X-7.5"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

QUESTION = {"en": "The source document says 52 mm, not 62 mm. Please check and correct.",
            "zh-hans": "原始记录为52毫米，而不是62毫米。请核对并更正。"}
ANSWER = {"en": "Transcription error: corrected to 52 mm from the patient diary.",
          "zh-hans": "转录错误：已按患者日记更正为52毫米。"}
CORRECTION = {"en": "Transcription error, source diary says 52 mm (query)",
              "zh-hans": "转录错误，原始日记为52毫米（质疑）"}
LOCKED_QUESTION = {"en": "Was the diary page filed with the source documents?",
                   "zh-hans": "日记页是否已与原始文件一并归档？"}
CLOSE = {"en": "Checked against the diary: resolved.", "zh-hans": "已与日记核对：问题已解决。"}
WAIVE = {"en": "Participant still in follow-up; status recorded at the next data cut.",
         "zh-hans": "受试者仍在随访中；状态将在下次数据截止时记录。"}
STATEMENT = {"en": "All CRFs checked and signed; queries closed.", "zh-hans": "所有病例报告表已核查并签署；质疑均已关闭。"}


class Tr:
    """The page's wording in the test's language, read from the catalogue; in Chinese a msgid
    that has no translation fails the test (the page would show English)."""

    def __init__(self, language: str):
        self.language = language

    def __call__(self, msgid: str, context: str | None = None, **values) -> str:
        with translation.override(self.language):
            text = translation.pgettext(context, msgid) if context else translation.gettext(msgid)
        if self.language != "en":
            assert text != msgid, f"no {self.language} translation of {msgid!r}"
        return text % values if values else text


@pytest.fixture
def browser(monkeypatch):
    """One Chromium; each user gets a browser context (cookies) of their own."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"],
        )
        yield chromium
        from django.db import connections

        connections.close_all()
        chromium.close()


@pytest.fixture
def walkthrough_trial(trial_participant, users, make_participant):  # noqa: F811
    """A participant in follow-up: transplanted 8 days ago, baseline and 1-week visits taken place
    with every form complete; and a second participant still in screening, whose open lines of the
    checklist the PI waives at the lock."""
    from annulus.participants.models import Participant

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    today = timezone.localdate()
    complete_visit(users["coordinator"], p.pk, "baseline", today - timedelta(days=9))
    complete_visit(users["coordinator"], p.pk, "w1", today - timedelta(days=1))
    other = make_participant("screening")
    p = Participant.objects.get(pk=p.pk)
    assert p.status == "in_follow_up"
    return p, other


def _shot(page, language: str, step: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    # a long page (the casebook) is shot down to a readable length
    page.screenshot(path=str(SHOTS / f"{language}-{step}.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 2400)})


def _login(browser, base: str, user, language: str):
    """A user's own browser: log in, then choose the page language in the header."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))
    if language != "en":
        with page.expect_navigation():
            page.select_option("header select[name=language]", language)
        assert page.locator("html").get_attribute("lang") == language
    return page


def _submit(page, target) -> None:
    """Click a submit button and wait for the page the server answers with."""
    with page.expect_navigation():
        (page.locator(target) if isinstance(target, str) else target).click()


def _grid_counts(page) -> dict[str, str]:
    out = {}
    for box in page.locator(".counts .count").all():
        out[box.locator(".muted").inner_text().strip()] = box.locator("strong").inner_text().strip()
    return out


def _grid_row(page, p):
    return page.locator("table.mgrid tbody tr", has=page.locator(f"a[href='/monitoring/participants/{p.pk}/']"))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_monitor_to_database_lock_in_the_browser(language, flushable_audit_table, live_server, browser,  # noqa: F811
                                                  users, walkthrough_trial):
    from annulus.allocation import selectors as allocation_selectors
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import decoded
    from annulus.casebooks.models import CasebookSignature
    from annulus.monitoring import selectors as monitoring_selectors
    from annulus.participants.models import RecordLock
    from annulus.queries.models import Query
    from annulus.trial.selectors import active_protocol, trial_state
    from annulus.visits.models import FormRecord

    t = Tr(language)
    p, other = walkthrough_trial
    base = live_server.url
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    required = sum(s["required"] for s in monitoring_selectors.sdv_status([p.pk]).values())
    everyone = sum(s["required"] for s in monitoring_selectors.sdv_status().values())
    assert 0 < required < everyone  # the other participant's screening evidence is in the plan too

    # ---- 1. the monitor opens the grid and raises a query on the 1-week VAS --------------------
    monitor = _login(browser, base, users["monitor"], language)
    _submit(monitor, f"header nav >> text={t('Monitoring')}")
    monitor.wait_for_url(re.compile(r"/monitoring/$"))
    assert monitor.locator("h1").inner_text() == t("Monitoring: status grid")
    counts = _grid_counts(monitor)
    assert counts[t("Open queries")] == "0"
    assert counts[t("Items verified / required (SDV)")].replace(" ", "") == f"0/{everyone}"
    row = _grid_row(monitor, p)
    assert row.locator("td.sdv-left").inner_text() == str(required)  # SDV left
    w1 = row.locator(f"a[href='/participants/{p.pk}/visits/w1/']")
    w1_sdv = monitoring_selectors.sdv_status([p.pk])
    w1_required = sum(s["required"] for (_pid, v, _f), s in w1_sdv.items() if v == "w1")
    assert w1.inner_text() == f"10/10 · SDV 0/{w1_required}" and w1.get_attribute("class") == "cell-sdv_pending"
    signature = row.locator("span.status")
    assert signature.inner_text() == t("not signed") and "warn" in signature.get_attribute("class")
    _shot(monitor, language, "01-monitor-grid")
    _submit(monitor, w1)
    monitor.wait_for_url(re.compile(rf"/participants/{p.pk}/visits/w1/$"))
    _shot(monitor, language, "02-monitor-visit")
    _submit(monitor, f"a[href='/participants/{p.pk}/visits/w1/vas/']")
    monitor.wait_for_url(re.compile(r"/visits/w1/vas/$"))
    assert monitor.locator("button[name=complete]").count() == 0  # the monitor reads, never edits the form
    _submit(monitor, f".query-badge >> text={t('Raise a query')}")
    monitor.wait_for_url(re.compile(r"/queries/new/\?"))
    _shot(monitor, language, "03-monitor-raise")
    monitor.select_option("select[name=item]", "vas_mm")
    monitor.select_option("select[name=assigned_to]", "coordinator")
    monitor.fill("textarea[name=text]", QUESTION[language])
    _submit(monitor, f"button:has-text('{t('Raise the query')}')")
    monitor.wait_for_url(re.compile(r"/queries/\d+/$"))
    q = Query.objects.get(participant=p)
    assert (q.visit, q.form, q.item, q.status, q.assigned_to) == ("w1", "vas", "vas_mm", "open", "coordinator")
    assert t("Query raised.") in monitor.content()
    status = monitor.locator(".card span.status").first
    assert status.inner_text() == t("open", "query") and "bad" in status.get_attribute("class")
    assert QUESTION[language] in monitor.locator("table").inner_text()
    _shot(monitor, language, "04-monitor-query-open")
    _submit(monitor, f"header nav >> text={t('Monitoring')}")
    assert _grid_counts(monitor)[t("Open queries")] == "1"
    w1 = _grid_row(monitor, p).locator(f"a[href='/participants/{p.pk}/visits/w1/']")
    assert w1.inner_text() == f"10/10 · Q1 · SDV 0/{w1_required}" and w1.get_attribute("class") == "cell-open_queries"

    # ---- 2. the coordinator answers and corrects the value with a reason ----------------------
    coordinator = _login(browser, base, users["coordinator"], language)
    _submit(coordinator, f"header nav >> text={t('Queries')}")
    coordinator.wait_for_url(re.compile(r"/queries/"))
    _shot(coordinator, language, "05-coordinator-queries")
    _submit(coordinator, f"a[href='/queries/{q.pk}/']")
    coordinator.wait_for_url(re.compile(rf"/queries/{q.pk}/$"))
    # from the query to the data point it is about
    _submit(coordinator, f"a[href='/participants/{p.pk}/visits/w1/vas/']")
    coordinator.wait_for_url(re.compile(r"/visits/w1/vas/$"))
    assert coordinator.locator(".query-badge a.status.bad").count() == 1
    assert coordinator.locator(f".query-list a[href='/queries/{q.pk}/']").count() == 1
    _shot(coordinator, language, "06-coordinator-form")
    coordinator.fill("input[name=vas_mm]", "52")
    coordinator.fill("[name=reason]", CORRECTION[language])
    _submit(coordinator, "button[name=complete]")
    rec = FormRecord.objects.get(visit__participant=p, visit__visit_id="w1", form_id="vas")
    assert rec.items["vas_mm"] == 52 and rec.revision == 2
    coordinator.goto(f"{base}/queries/{q.pk}/")
    coordinator.fill("textarea[name=answer-text]", ANSWER[language])
    _submit(coordinator, f"button:has-text('{t('Send the answer')}')")
    coordinator.wait_for_url(re.compile(rf"/queries/{q.pk}/$"))
    assert t("Answer saved.") in coordinator.content()
    status = coordinator.locator(".card span.status").first
    assert status.inner_text() == t("answered", "query") and "warn" in status.get_attribute("class")
    assert coordinator.locator("textarea[name=close-text]").count() == 0  # the monitor closes it
    roles = {r.id: r.name.get(language) for r in active_protocol().roles}
    thread = coordinator.locator("table").inner_text()
    assert f"({roles['monitor']})" in thread and f"({roles['coordinator']})" in thread  # roles by name
    _shot(coordinator, language, "07-coordinator-answered")

    # ---- 3. the monitor closes it ------------------------------------------------------------
    monitor.goto(f"{base}/queries/{q.pk}/")
    assert ANSWER[language] in monitor.locator("table").inner_text()
    monitor.fill("textarea[name=close-text]", CLOSE[language])
    _submit(monitor, f"button:has-text('{t('Close the query')}')")
    monitor.wait_for_url(re.compile(rf"/queries/{q.pk}/$"))
    assert t("Query closed.") in monitor.content()
    status = monitor.locator(".card span.status").first
    assert status.inner_text() == t("closed", "query") and "ok" in status.get_attribute("class")
    q.refresh_from_db()
    assert q.status == "closed" and q.closed_by == users["monitor"]
    _shot(monitor, language, "08-monitor-query-closed")

    # ---- 4. the monitor verifies what the SDV plan asks -------------------------------------
    monitor.goto(f"{base}/monitoring/participants/{p.pk}/sdv/?show=todo")
    _shot(monitor, language, "09-monitor-sdv-todo")
    whole_form = f"button:has-text('{t('Mark the whole form verified against source')}')"
    clicks = 0
    while monitor.locator(whole_form).count():
        _submit(monitor, monitor.locator(whole_form).first)
        clicks += 1
        assert clicks < 40
    assert t("Nothing to verify here.") in monitor.content()
    status = monitoring_selectors.sdv_status([p.pk])
    assert sum(s["verified"] for s in status.values()) == sum(s["required"] for s in status.values()) == required
    monitor.goto(f"{base}/monitoring/")
    counts = _grid_counts(monitor)
    assert counts[t("Items verified / required (SDV)")].replace(" ", "") == f"{required}/{everyone}"
    assert counts[t("Open queries")] == "0"
    assert _grid_row(monitor, p).locator("td.sdv-left").inner_text() == "0"
    w1 = _grid_row(monitor, p).locator(f"a[href='/participants/{p.pk}/visits/w1/']")
    assert w1.inner_text() == f"10/10 · SDV {w1_required}/{w1_required}" and w1.get_attribute("class") == "cell-sdv_done"
    _shot(monitor, language, "10-monitor-grid-verified")

    # ---- 5. the data manager locks the form, the visit and the casebook ----------------------
    dm = _login(browser, base, users["data_manager"], language)
    dm.goto(f"{base}/participants/{p.pk}/visits/w1/vas/")
    _submit(dm, f"#record-lock button:has-text('{t('Lock this form')}')")
    dm.wait_for_url(re.compile(r"/visits/w1/vas/$"))
    assert dm.locator("#record-lock.locked > p > .status.locked").first.inner_text().strip() == t("Locked")
    _shot(dm, language, "11-dm-form-locked")
    dm.goto(f"{base}/participants/{p.pk}/visits/w1/")
    _submit(dm, f"#record-lock button:has-text('{t('Lock this visit')}')")
    dm.wait_for_url(re.compile(r"/visits/w1/$"))
    assert dm.locator("#record-lock.locked > p > .status.locked").first.inner_text().strip() == t("Locked")
    dm.goto(f"{base}/participants/{p.pk}/")
    _submit(dm, f"#record-lock button:has-text('{t('Lock the casebook')}')")
    dm.wait_for_url(re.compile(rf"/participants/{p.pk}/$"))
    assert dm.locator("#record-lock.locked > p > .status.locked").first.inner_text().strip() == t("Locked")
    _shot(dm, language, "12-dm-casebook-locked")
    locks = set(RecordLock.objects.filter(participant=p, unlocked_at__isnull=True).values_list("visit", "form"))
    assert locks == {("w1", "vas"), ("w1", ""), ("", "")}
    # the coordinator now finds the form read-only with the padlock
    coordinator.goto(f"{base}/participants/{p.pk}/visits/w1/vas/")
    assert coordinator.locator("#record-lock.locked > p > .status.locked").first.inner_text().strip() == t("Locked")
    assert coordinator.locator("button[name=complete]").count() == 0
    # a question on the locked form is still raised and closed, but answered only after an unlock
    monitor.goto(f"{base}/participants/{p.pk}/visits/w1/vas/")
    _submit(monitor, f".query-badge >> text={t('Raise a query')}")
    monitor.fill("textarea[name=text]", LOCKED_QUESTION[language])
    monitor.select_option("select[name=assigned_to]", "site")
    _submit(monitor, f"button:has-text('{t('Raise the query')}')")
    q2 = Query.objects.exclude(pk=q.pk).get(participant=p)
    coordinator.goto(f"{base}/queries/{q2.pk}/")
    assert t("The record is locked: the data manager must unlock it before the query can be answered.") in \
        coordinator.content()
    assert coordinator.locator("textarea[name=answer-text]").count() == 0  # no form the lock would refuse
    _shot(coordinator, language, "12b-coordinator-query-on-locked-form")
    monitor.goto(f"{base}/queries/{q2.pk}/")
    monitor.fill("textarea[name=close-text]", CLOSE[language])
    _submit(monitor, f"button:has-text('{t('Close the query')}')")
    q2.refresh_from_db()
    assert q2.status == "closed"

    # ---- 6. the principal investigator signs the casebook ------------------------------------
    pi = _login(browser, base, users["pi"], language)
    pi.goto(f"{base}/participants/{p.pk}/casebook/")
    assert pi.locator("#signature .status.warn").inner_text() == t("Not signed yet.")
    assert t("I approve the data in this casebook as complete and accurate") in pi.content()
    _shot(pi, language, "13-pi-casebook-unsigned")
    # a mistyped password: refused on its field, in the page's language, nothing signed
    pi.fill("#sign input[name=username]", users["pi"].username)
    pi.fill("#sign input[name=password]", "not-my-password")
    pi.check("#sign input[name=confirm]")
    _submit(pi, f"#sign button:has-text('{t('Sign the casebook')}')")
    assert pi.locator("#sign .errorlist").count() >= 1 and not CasebookSignature.objects.exists()
    _shot(pi, language, "13b-pi-casebook-wrong-password")
    pi.fill("#sign input[name=username]", users["pi"].username)
    pi.fill("#sign input[name=password]", TEST_PASSWORD)
    pi.check("#sign input[name=confirm]")
    _submit(pi, f"#sign button:has-text('{t('Sign the casebook')}')")
    pi.wait_for_url(re.compile(rf"/participants/{p.pk}/casebook/$"))
    assert t("Casebook signed.") in pi.content()
    assert pi.locator("#signature .status.ok").inner_text() == t("Signed: the casebook has not changed since the signature.")
    sig = CasebookSignature.objects.get(participant=p)
    assert sig.content_hash in pi.locator("#signature").inner_text()
    assert pi.locator("#sign").count() == 0
    _shot(pi, language, "14-pi-casebook-signed")
    monitor.goto(f"{base}/monitoring/")
    row = _grid_row(monitor, p)
    w1 = row.locator(f"a[href='/participants/{p.pk}/visits/w1/']")
    assert w1.get_attribute("class") == "cell-locked" and w1.locator("svg.padlock").count() == 1
    assert row.locator("td.locked svg.padlock").count() == 1  # the casebook
    signature = row.locator("span.status")
    assert signature.inner_text() == t("signed") and "ok" in signature.get_attribute("class")
    counts = _grid_counts(monitor)
    assert (counts[t("Casebooks signed")], counts[t("Casebooks locked")]) == ("1", "1")
    _shot(monitor, language, "15-monitor-grid-signed-locked")

    # ---- 7. the lock page: this participant's lines are gone; waivers; both signatures -------
    pi.goto(f"{base}/unblinding/")
    _shot(pi, language, "16-pi-lock-page")
    checklist = allocation_selectors.lock_checklist()
    open_keys = {i["key"] for i in checklist["blocking"]}
    # the only line of this participant left on the page: no end-of-study status yet (in follow-up)
    lines = {g["group"]: [text for text in pi.locator(f"#group-{g['group']} tbody tr td:nth-child(2)").all_inner_texts()
                          if text.startswith(p.label + " ")] for g in checklist["groups"]}
    assert {g: v for g, v in lines.items() if v} == {"participants": [f"{p.label} · {t('in follow-up')}"]}, lines
    assert {"open_queries", "sdv", "casebooks"} <= set(lines)  # the groups whose lines this walk-through closed
    # the other participant's screening evidence is still to verify: open, waived below
    assert any(k.startswith(f"sdv:{other.pk}:") for k in open_keys)
    # waive the rest, one line at a time
    waived = 0
    waive_button = "#checklist form:has(input[name=action][value=waive]) button"
    while pi.locator(waive_button).count():
        form = pi.locator("#checklist form:has(input[name=action][value=waive])").first
        form.locator("textarea[name=reason]").fill(WAIVE[language])
        _submit(pi, form.locator("button"))
        waived += 1
        assert waived <= len(open_keys)
    assert waived == len(open_keys)
    assert t("Nothing open: the lock can be signed.") in pi.content()
    _shot(pi, language, "17-pi-lock-waived")
    pi.fill("textarea[name=statement]", STATEMENT[language])
    pi.fill("input[name=password]", TEST_PASSWORD)
    pi.check("input[name=confirm]")
    _submit(pi, f"button:has-text('{t('Sign')}')")
    pi.wait_for_url(re.compile(r"/unblinding/$"))
    assert t("Signed.") in pi.content()
    stat = _login(browser, base, users["statistician"], language)
    stat.goto(f"{base}/unblinding/")
    stat.fill("textarea[name=statement]", STATEMENT[language])
    stat.fill("input[name=password]", TEST_PASSWORD)
    stat.check("input[name=confirm]")
    _submit(stat, f"button:has-text('{t('Sign')}')")
    stat.wait_for_url(re.compile(r"/unblinding/$"))
    assert trial_state() == "locked"
    _shot(stat, language, "18-statistician-locked")

    # ---- 8. the audit trail holds each step ---------------------------------------------------
    events = AuditEvent.objects.filter(id__gt=start)
    mine = events.filter(participant_id=p.pk)
    steps = [(e.action, (decoded(e)["changes"].get("status") or [None, None])[1], e.actor_id)
             for e in mine.filter(object_type="query", object_id=str(q.pk)).order_by("id")]
    assert steps == [("create", "open", users["monitor"].pk), ("change", "answered", users["coordinator"].pk),
                     ("change", "closed", users["monitor"].pk)], steps
    correction = mine.get(object_type="crf_form")
    assert correction.reason == CORRECTION[language] and correction.actor_id == users["coordinator"].pk
    assert mine.filter(object_type="sdv_mark", action="verify", actor_id=users["monitor"].pk).count() == clicks
    assert mine.filter(object_type="record_lock", actor_id=users["data_manager"].pk).count() == 3
    assert mine.filter(object_type="casebook_signature", action="sign", actor_id=users["pi"].pk).count() == 1
    assert events.filter(object_type="lock_waiver", actor_id=users["pi"].pk, reason=WAIVE[language]).count() == waived
    assert set(events.filter(object_type="unblinding_step", action="sign").values_list("actor_id", flat=True)) == \
        {users["pi"].pk, users["statistician"].pk}
    # and the auditor reads them on the participant's audit trail, newest first
    auditor = _login(browser, base, users["auditor"], language)
    auditor.goto(f"{base}/participants/{p.pk}/audit/")
    assert auditor.locator("tbody tr").count() == min(50, AuditEvent.objects.filter(participant_id=p.pk).count())
    table = auditor.locator("table").inner_text()
    for needle in (CORRECTION[language], users["monitor"].username, users["data_manager"].username,
                   users["pi"].username):
        assert needle in table, needle
    _shot(auditor, language, "19-auditor-audit")
    for kind, n in (("query", 5), ("sdv_mark", clicks), ("record_lock", 3), ("casebook_signature", 1)):
        auditor.select_option("#type", kind)
        _submit(auditor, f"form.toolbar button:has-text('{t('Filter')}')")
        auditor.wait_for_url(re.compile(rf"type={kind}"))
        assert auditor.locator("tbody tr").count() == n, kind
        if kind == "sdv_mark":  # the action by its name in the page's language
            assert set(auditor.locator("tbody tr td:nth-child(4)").all_inner_texts()) == {t("verified")}
