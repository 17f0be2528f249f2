"""The database lock waits for open work (P-3.7): draft forms, SAE reports not sent (or not
acknowledged), adverse events without a final outcome and enrolled participants without an
end-of-study status are listed before the signature form; each must be
closed or waived by the principal investigator with a reason (a kept, audited record), and each
lock signature is refused naming the field "checklist" while one is neither."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.allocation.models import LockWaiver, UnblindingStep
from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation
from annulus.trial.lock import TrialLocked
from annulus.trial.selectors import trial_state
from tests.conftest import TEST_PASSWORD

from .lock_support import STATEMENT, WAIVE_REASON, audit_head, sign_lock
from .test_visits_support import GOOD, aware, transplant_dates, trial_participant  # noqa: F401

SERIOUS = dict(term="Pneumonia", serious=True, serious_criteria=["hospitalisation"], grade=3,
               causality_liposuction="not_related", causality_injection="not_related",
               causality_product="not_related", expectedness="expected", action_taken="none", outcome="recovering")


@pytest.fixture
def open_work(trial_participant, users):
    """A treated participant whose 1-week ODI is a draft and whose serious adverse event has its
    reports still to send."""
    from annulus.safety import services as ss
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    day = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=day)
    form = vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                        items={"s1": 2, "s2": 2}, collected_at=aware(day))
    now = timezone.now()
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk, onset_at=now - timedelta(hours=5),
                                 first_knowledge_at=now - timedelta(hours=4), **SERIOUS)
    return {"p": p, "form": form, "ae": ae, "reports": list(ae.sae_reports.order_by("id"))}


def _keys(group: str) -> list[str]:
    return [i["key"] for g in selectors.lock_checklist()["groups"] if g["group"] == group for i in g["items"]]


def _sign(user):
    return services.sign_lock(actor=user, password=TEST_PASSWORD, statement=STATEMENT)


@pytest.mark.req("P-3.7")
def test_each_signature_is_refused_while_open_work_is_neither_closed_nor_waived(open_work, users):
    w = open_work
    assert _keys("participants") == [f"participant:{w['p'].pk}"]
    assert _keys("draft_forms") == [f"crf_form:{w['form'].pk}"]
    assert _keys("sae_reports") == [f"sae_report:{r.pk}" for r in w["reports"]] and w["reports"]
    blocking = selectors.lock_checklist()["blocking"]
    head = audit_head()
    for signer in ("pi", "statistician"):
        with pytest.raises(RuleViolation) as exc:
            _sign(users[signer])
        assert exc.value.field == "checklist"
        assert exc.value.message.startswith(f"{len(blocking)} open item(s) of the pre-lock checklist")
    assert UnblindingStep.objects.count() == 0 and audit_head() == head
    # waive all but one: still refused
    for item in blocking[:-1]:
        services.waive_lock_item(actor=users["pi"], item=item["key"], reason=WAIVE_REASON)
    with pytest.raises(RuleViolation) as exc:
        _sign(users["pi"])
    assert exc.value.message.startswith("1 open item(s)")
    services.waive_lock_item(actor=users["pi"], item=blocking[-1]["key"], reason=WAIVE_REASON)
    assert selectors.lock_checklist()["blocking"] == []
    _sign(users["pi"])
    _sign(users["statistician"])
    assert trial_state() == "locked"
    events = AuditEvent.objects.filter(object_type="lock_waiver")
    assert events.count() == len(blocking) == LockWaiver.objects.count()
    assert {e.reason for e in events} == {WAIVE_REASON}
    assert {w.waived_by.username for w in LockWaiver.objects.all()} == {"t_pi"}


@pytest.mark.req("P-3.7")
def test_closed_work_leaves_the_checklist(open_work, users):
    from annulus.participants import services as ps
    from annulus.safety import services as ss
    from annulus.visits import services as vs

    w = open_work
    vs.save_form(actor=users["coordinator"], participant_id=w["p"].pk, visit_key="w1", form_id="odi",
                 items=GOOD["odi"], complete=True)
    assert _keys("draft_forms") == []
    for r in w["reports"]:
        ss.record_report_sent(actor=users["investigator"], report_id=r.pk, sent_at=timezone.now(), sent_to="Office")
    # sent, not yet acknowledged: still open, as another item
    assert _keys("sae_reports") == [f"sae_report_ack:{r.pk}" for r in w["reports"]]
    for r in w["reports"]:
        ss.record_report_acknowledged(actor=users["investigator"], report_id=r.pk, acknowledged_at=timezone.now(),
                                      acknowledged_by="Ms Receipt")
    assert _keys("sae_reports") == []
    assert _keys("ae_outcomes") == [f"ae_outcome:{w['ae'].pk}"]
    ss.update_adverse_event(actor=users["investigator"], adverse_event_id=w["ae"].pk, reason="resolved at follow-up",
                            outcome="recovered", end_at=timezone.now() - timedelta(minutes=5))
    assert _keys("ae_outcomes") == []
    ps.withdraw(actor=users["investigator"], participant_id=w["p"].pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Moved away")
    assert _keys("participants") == []
    # the groups this test closed need no waiver; what other groups list (verification, casebook
    # signatures ...) is waived, and the lock goes ahead
    closed = {"participants", "draft_forms", "sae_reports", "ae_outcomes"}
    sign_lock(users)
    assert trial_state() == "locked" and not LockWaiver.objects.filter(group__in=closed).exists()


@pytest.mark.req("P-3.7")
def test_only_the_principal_investigator_waives_and_only_with_a_reason(open_work, users):
    item = f"participant:{open_work['p'].pk}"
    for role in ("investigator", "statistician", "coordinator"):
        with pytest.raises(NotPermitted):
            services.waive_lock_item(actor=users[role], item=item, reason=WAIVE_REASON)
    for reason, message in (("", "is required"), ("too short", "must be at least 10 characters")):
        with pytest.raises(RuleViolation) as exc:
            services.waive_lock_item(actor=users["pi"], item=item, reason=reason)
        assert (exc.value.field, exc.value.message) == ("reason", message)
    with pytest.raises(RuleViolation) as exc:
        services.waive_lock_item(actor=users["pi"], item="participant:999999", reason=WAIVE_REASON)
    assert exc.value.field == "item"
    assert LockWaiver.objects.count() == 0
    services.waive_lock_item(actor=users["pi"], item=item, reason=WAIVE_REASON)
    with pytest.raises(RuleViolation) as exc:
        services.waive_lock_item(actor=users["pi"], item=item, reason=WAIVE_REASON)
    assert (exc.value.field, exc.value.message) == ("item", "is already waived")
    sign_lock(users)
    # after the lock there is nothing left to waive: the guard refuses like any other write
    with pytest.raises(TrialLocked):
        services.waive_lock_item(actor=users["pi"], item=item, reason=WAIVE_REASON)


def _browser(user, language):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    page = c.get("/unblinding/")
    return c, page, c.cookies["csrftoken"].value


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("language,words", [
    ("en", {"title": "Pre-lock checklist", "drafts": "Draft forms (saved but not complete)",
            "sae": "SAE reports not yet sent or not yet acknowledged by the recipient", "reason": "Reason for waiving this item", "required": "This field is required.",
            "blocks": "open items block the lock."}),
    ("zh-hans", {"title": "锁库前检查清单", "drafts": "草稿表单（已保存但未完成）", "sae": "尚未发送或尚未获接收方确认的SAE报告",
                 "reason": "豁免此项的理由", "required": "这个字段是必填项。", "blocks": "个未关闭项阻止锁库。"}),
])
def test_the_unblinding_page_lists_the_checklist_and_the_pi_waives_there(open_work, users, language, words):
    w = open_work
    c, page, token = _browser(users["pi"], language)
    html = page.content.decode()
    assert page.status_code == 200
    for key in ("title", "drafts", "sae", "reason", "blocks"):
        assert words[key] in html
    # the checklist comes before the signature form, with a link to each open item
    assert html.index(words["title"]) < html.index('name="statement"')
    assert f'href="/participants/{w["p"].pk}/visits/w1/odi/"' in html
    assert f'href="/safety/sae/reports/{w["reports"][0].pk}/"' in html
    assert f'href="/participants/{w["p"].pk}/"' in html
    item = f"crf_form:{w['form'].pk}"
    # no reason: refused on the field, nothing written
    r = c.post("/unblinding/", {"action": "waive", "item": item, "reason": "", "csrfmiddlewaretoken": token})
    assert r.status_code == 200 and words["required"] in r.content.decode()
    assert LockWaiver.objects.count() == 0
    r = c.post("/unblinding/", {"action": "waive", "item": item, "reason": WAIVE_REASON, "csrfmiddlewaretoken": token})
    assert r.status_code == 302
    waiver = LockWaiver.objects.get()
    assert (waiver.item, waiver.reason, waiver.waived_by) == (item, WAIVE_REASON, users["pi"])
    html = c.get("/unblinding/").content.decode()
    assert WAIVE_REASON in html and "t_pi" in html
    # the signature is refused while the other items are open, the reason shown on the form
    r = c.post("/unblinding/", {"action": "lock", "statement": STATEMENT, "password": TEST_PASSWORD, "confirm": "on",
                                "csrfmiddlewaretoken": token})
    assert r.status_code == 200 and "checklist:" in r.content.decode()
    assert UnblindingStep.objects.count() == 0


@pytest.mark.req("P-3.7")
def test_others_see_the_checklist_but_cannot_waive(open_work, users):
    c, page, token = _browser(users["statistician"], "en")
    html = page.content.decode()
    assert "Pre-lock checklist" in html and 'value="waive"' not in html and "not waived" in html
    r = c.post("/unblinding/", {"action": "waive", "item": f"participant:{open_work['p'].pk}",
                                "reason": WAIVE_REASON, "csrfmiddlewaretoken": token})
    assert r.status_code == 403 and LockWaiver.objects.count() == 0


@pytest.mark.req("P-3.7")
def test_the_checklist_is_read_only_once_locked(users):
    sign_lock(users)
    c, page, _token = _browser(users["pi"], "en")
    html = page.content.decode()
    assert page.status_code == 200 and "Pre-lock checklist: read-only, as kept after the lock" in html
    assert 'value="waive"' not in html
