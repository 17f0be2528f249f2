"""After the database lock every write route is refused (P-3.7).

The routes are not listed by hand: every API operation with POST/PUT/PATCH/DELETE comes from the
OpenAPI document, and every page route from Django's URL resolver. Each one must be either a
write case below (refused after the lock with the lock's message; the same request with the lock
lifted inside a rolled-back transaction must write, so the refusal is the lock's and nothing
else's), a route allowed after the lock (naming its entry in ``annulus.trial.lock.
ALLOWED_AFTER_LOCK``), or a page that only reads (posted to, it writes nothing). A new route in
none of these lists fails ``test_every_route_is_classified`` until it is guarded and listed.

Refused means: API 409 JSON naming the field "trial"; page 200/400/409 with the message shown,
never 403 or 500; no row of any annulus model added or removed, and the audit chain's head (event
count and last hash) unchanged. Pages are posted with CSRF enforced, as a browser does (the
csrftoken cookie sent back as csrfmiddlewaretoken); API calls with a bearer token and no session,
and again with the session and the X-CSRFToken header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone

from annulus.allocation import services as alloc
from annulus.allocation import testing
from annulus.allocation.models import Envelope
from annulus.trial.lock import ALLOWED_AFTER_LOCK
from annulus.trial.models import TrialState
from tests.conftest import TEST_PASSWORD

from .lock_support import audit_head, row_counts, sign_lock
from .routes import url_routes
from .test_visits_support import GOOD, aware

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
LOCK_MESSAGE = "the database is locked (signed on {day}); trial data can no longer be changed"


# ---- the trial at the lock ---------------------------------------------------------------------

def _shift(p, days: int):
    """Move a participant's screening back ``days`` days (set-up only), so that day 0 may lie in
    the past: pre-screening, consent, evidence and enrolment."""
    from annulus.participants.models import Consent, Evidence, Participant

    delta = timedelta(days=days)
    Participant.objects.filter(pk=p.pk).update(prescreened_on=p.prescreened_on - delta,
                                               enrolled_at=timezone.now() - delta + timedelta(days=5))
    for c in Consent.objects.filter(participant=p):
        Consent.objects.filter(pk=c.pk).update(consented_at=c.consented_at - delta)
    for e in Evidence.objects.filter(participant=p):
        Evidence.objects.filter(pk=e.pk).update(collected_on=e.collected_on - delta)


def _randomise(users, p, when=None):
    alloc.randomise(actor=users["investigator"], participant_id=p.pk, when=when)
    return Envelope.objects.get(participant=p)


AE_FIELDS = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
                 causality_injection="not_related", causality_product="not_related", expectedness="expected",
                 action_taken="none", outcome="recovering")


@pytest.fixture
def trial(users, make_participant):
    """A trial in follow-up, built through the services, with one target for every write: a
    person at each screening step, participants to randomise, dispense, operate and transplant,
    one in follow-up with a completed and a draft form, an adverse event and a serious one whose
    reports are partly sent. Then the PI waives the open items and the lock is signed."""
    t = build_trial(users, make_participant)
    sign_lock(users)
    assert TrialState.objects.get(id=1).state == "locked"
    return t


def build_trial(users, make_participant) -> dict:
    """The trial of the ``trial`` fixture before the database lock (also used by the record-lock
    tests). The released participant's records are locked by the data manager at each level
    (a form, the adverse-event log, a visit, then the casebook), to be unlocked."""
    from annulus.participants import services as ps
    from annulus.safety import services as ss
    from annulus.visits import services as vs

    today = timezone.localdate()
    now = timezone.now()
    inv = users["investigator"]
    testing.generate(users)
    t = {"pre": make_participant("pre_screened"), "con": make_participant("consented"),
         "scr": make_participant("screening"), "eli": make_participant("eligible"),
         "enr": make_participant("enrolled")}
    # randomised, nothing else: the liposuction is still to do
    t["rand"] = make_participant("enrolled")
    _randomise(users, t["rand"])
    # liposuction 10 days ago: the lot is to be released
    t["rel"] = make_participant("enrolled")
    _shift(t["rel"], 30)
    t["rel_env"] = _randomise(users, t["rel"], when=now - timedelta(days=24))
    vs.record_liposuction(actor=inv, participant_id=t["rel"].pk, performed_on=today - timedelta(days=10),
                          fat_volume_ml=150, observation_hours=4, anaesthesia="local")
    # liposuction 18 days ago, released, not yet dispensed
    t["disp"] = make_participant("enrolled")
    _shift(t["disp"], 30)
    t["disp_env"] = _randomise(users, t["disp"], when=now - timedelta(days=24))
    vs.record_liposuction(actor=inv, participant_id=t["disp"].pk, performed_on=today - timedelta(days=18),
                          fat_volume_ml=150, observation_hours=4, anaesthesia="local")
    alloc.record_release(actor=users["pharmacist"], envelope_id=t["disp_env"].pk, lot_number="LOT-D",
                         tested_on=today - timedelta(days=1), results=testing.PASSING,
                         checked_at=now - timedelta(days=1))
    # liposuction 20 days ago, kit dispensed: to be transplanted today
    t["tx"] = make_participant("enrolled")
    _shift(t["tx"], 30)
    t["tx_env"] = _randomise(users, t["tx"], when=now - timedelta(days=24))
    vs.record_liposuction(actor=inv, participant_id=t["tx"].pk, performed_on=today - timedelta(days=20),
                          fat_volume_ml=150, observation_hours=4, anaesthesia="local")
    alloc.record_release(actor=users["pharmacist"], envelope_id=t["tx_env"].pk, lot_number="LOT-T",
                         tested_on=today - timedelta(days=2), results=testing.PASSING,
                         checked_at=now - timedelta(days=2))
    alloc.dispense(actor=users["pharmacist"], envelope_id=t["tx_env"].pk, dispensed_at=now - timedelta(hours=1))
    # in follow-up: liposuction 51 days ago, transplanted 30 days ago, the 1-week visit done
    f = t["f"] = make_participant("enrolled")
    _shift(f, 70)
    env = _randomise(users, f, when=now - timedelta(days=64))
    vs.record_liposuction(actor=inv, participant_id=f.pk, performed_on=today - timedelta(days=51),
                          fat_volume_ml=150, observation_hours=4, anaesthesia="local")
    alloc.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="LOT-F",
                         tested_on=today - timedelta(days=33), results=testing.PASSING,
                         checked_at=now - timedelta(days=33))
    alloc.dispense(actor=users["pharmacist"], envelope_id=env.pk, dispensed_at=now - timedelta(days=31))
    alloc.record_transplant(actor=inv, participant_id=f.pk, transplanted_at=now - timedelta(days=30),
                            drug_code=env.drug_code, activity_restriction_explained=True)
    w1 = today - timedelta(days=23)
    vs.open_visit(actor=users["coordinator"], participant_id=f.pk, visit_id="w1", visit_date=w1)
    vs.save_form(actor=users["coordinator"], participant_id=f.pk, visit_key="w1", form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(w1))
    vs.save_form(actor=users["coordinator"], participant_id=f.pk, visit_key="w1", form_id="odi",
                 items={f"s{i}": 2 for i in range(1, 6)}, collected_at=aware(w1))
    t["ae"] = ss.record_adverse_event(actor=inv, participant_id=f.pk, onset_at=now - timedelta(days=1), **AE_FIELDS)
    # adverse-event tasks to dismiss (page, API) and to link (API)
    for name in ("task_page", "task_api_dismiss", "task_api_link"):
        t[name] = ss.open_ae_task(actor=inv, participant_id=f.pk, key=f"test:{name}", source="ae_review",
                                  description="AE review = yes")
    sae = ss.record_adverse_event(actor=inv, participant_id=f.pk, onset_at=now - timedelta(days=2, hours=1),
                                  first_knowledge_at=now - timedelta(days=2),
                                  **{**AE_FIELDS, "term": "Pneumonia", "serious": True,
                                     "serious_criteria": ["hospitalisation"], "grade": 3})
    reports = list(sae.sae_reports.order_by("id"))
    assert len(reports) >= 2
    ss.record_report_sent(actor=inv, report_id=reports[0].pk, sent_at=now - timedelta(days=1), sent_to="Dr Head")
    t["sent_report"], t["unsent_report"] = reports[0], reports[1]
    t["today"] = today
    t["protocol_text"] = Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8")
    # an auditor's review finding to resolve
    from annulus.monitoring import services as ms

    t["finding"] = ms.record_finding(actor=users["auditor"], participant_id=t["f"].pk, category="missing_source",
                                     text="Source document of the 1-week VAS not in the site file")
    # queries on a casebook to answer, close and re-open
    from annulus.queries import services as qs

    def _query(text):
        return qs.raise_query(actor=users["monitor"], participant_id=t["con"].pk, text=text, assigned_to="site")

    t["query_open"], t["query_answered"], t["query_closed"] = (_query("Date of consent?"), _query("Initials?"),
                                                               _query("Version?"))
    qs.answer_query(actor=users["coordinator"], query_id=t["query_answered"].pk, text="AB as on the ID card")
    qs.close_query(actor=users["monitor"], query_id=t["query_closed"].pk, text="Version 1.0 seen")
    dm = users["data_manager"]
    for visit, form in (("liposuction", "liposuction"), ("", "adverse_event"), ("baseline", ""), ("", "")):
        ps.lock_record(actor=dm, participant_id=t["rel"].pk, visit=visit, form=form)
    return t


# ---- what is posted ------------------------------------------------------------------------------

@dataclass
class Case:
    """One write: who, where and what (``path`` and ``data`` take the trial dict). ``unlocked``:
    None when the write must succeed with the lock lifted, else the text of the other rule that
    refuses it then (the lock is checked first). ``locked``: the refusal's own words where the
    reader is not the staff (the participant's pages), instead of the lock message."""

    role: str
    path: Callable
    data: Callable = lambda t: {}
    unlocked: str | None = None
    locked: str | None = None
    note: str = ""
    files: Callable | None = None
    extra: dict = field(default_factory=dict)


def _iso(d: date) -> str:
    return d.isoformat()


def _local(dt: datetime) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def _ae_form(t, **over):
    data = {**{k: v for k, v in AE_FIELDS.items() if k != "serious"}, "serious": "no",
            "onset_at": _local(timezone.now() - timedelta(hours=3))}
    return {**data, **over}


def _transplant_form(t, *, api=False):
    from annulus.trial.selectors import active_protocol

    product = active_protocol().product
    return {"transplanted_at": _local(timezone.now()) if not api else timezone.now().isoformat(),
            "drug_code": t["tx_env"].drug_code, "disc_level": product.target_level,
            "needle_gauge": product.needle_gauge, "approach": product.approach,
            "imaging": product.imaging_guidance, "volume_ml": product.injection_volume_ml,
            "activity_restriction_explained": True if api else "on"}


def _release_form(t):
    from annulus.trial.selectors import active_protocol

    data = {"lot_number": "LOT-R", "tested_on": _iso(t["today"])}
    for c in active_protocol().product.release_criteria:
        data[f"results.{c.id}"] = testing.PASSING[c.id]
    return data


def _amendment(t):
    text = t["protocol_text"].replace('version: "1.0"', 'version: "1.1"', 1)
    return {"file": SimpleUploadedFile("amendment.yaml", text.encode(), content_type="application/x-yaml")}


PAGE_CASES: dict[str, list[Case]] = {
    "participants/new/": [Case("coordinator", lambda t: "/participants/new/", lambda t: {
        "initials": "NEW", "sex": "F", "recruitment_source": "inpatient_referral", "prescreened_on": _iso(t["today"])})],
    "participants/<int:pk>/consent/": [Case("coordinator", lambda t: f"/participants/{t['pre'].pk}/consent/",
                                            lambda t: {"consent_version": "1.0",
                                                       "consented_at": _local(timezone.now() - timedelta(hours=1)),
                                                       "taken_by": t["users"]["investigator"].pk})],
    "participants/<int:pk>/screening/": [Case("coordinator", lambda t: f"/participants/{t['con'].pk}/screening/",
                                              lambda t: {"collected_on": _iso(t["today"]), "vas_mm": "66"})],
    "participants/<int:pk>/eligibility/": [Case("investigator", lambda t: f"/participants/{t['scr'].pk}/eligibility/",
                                                lambda t: {"password": TEST_PASSWORD, "confirm": "yes"})],
    "participants/<int:pk>/enrol/": [Case("investigator", lambda t: f"/participants/{t['eli'].pk}/enrol/",
                                          lambda t: {"confirm": "yes"})],
    "participants/<int:pk>/withdraw/": [Case("investigator", lambda t: f"/participants/{t['f'].pk}/withdraw/",
                                             lambda t: {"withdrawn_on": _iso(t["today"]), "category": "participant_request",
                                                        "details": "Moved away from the city"})],
    "allocation/": [Case("designer", lambda t: "/allocation/", lambda t: {"seed": ""},
                         unlocked="randomisation has started")],
    "participants/<int:pk>/randomise/": [Case("investigator", lambda t: f"/participants/{t['enr'].pk}/randomise/",
                                              lambda t: {"confirm": "yes"})],
    "participants/<int:pk>/transplant/": [Case("investigator", lambda t: f"/participants/{t['tx'].pk}/transplant/",
                                               _transplant_form)],
    "pharmacy/envelopes/<int:envelope_id>/": [Case("pharmacist",
                                                   lambda t: f"/pharmacy/envelopes/{t['rel_env'].pk}/", _release_form)],
    "pharmacy/envelopes/<int:envelope_id>/dispense/": [Case(
        "pharmacist", lambda t: f"/pharmacy/envelopes/{t['disp_env'].pk}/dispense/", lambda t: {"confirm": "yes"})],
    "unblinding/": [Case("pi", lambda t: "/unblinding/",
                         lambda t: {"action": "waive", "item": f"participant:{t['f'].pk}",
                                    "reason": "Follow-up ends with the last visit on paper"},
                         unlocked="is already waived", note="a pre-lock waiver")],
    "participants/<int:pk>/liposuction/": [Case("investigator", lambda t: f"/participants/{t['rand'].pk}/liposuction/",
                                                lambda t: {"performed_on": _iso(t["today"]), "fat_volume_ml": "150",
                                                           "observation_hours": "4", "anaesthesia": "local"})],
    "participants/<int:pk>/visits/unscheduled/new/": [Case(
        "coordinator", lambda t: f"/participants/{t['f'].pk}/visits/unscheduled/new/",
        lambda t: {"visit_date": _iso(t["today"]), "reason": "Pain flare", "forms": ["vas"]})],
    "participants/<int:pk>/visits/<str:key>/": [
        Case("coordinator", lambda t: f"/participants/{t['f'].pk}/visits/m1/",
             lambda t: {"action": "open", "visit_date": _iso(t["today"])}, note="open a visit"),
        Case("coordinator", lambda t: f"/participants/{t['f'].pk}/visits/m3/",
             lambda t: {"action": "book", "on": _iso(t["today"] + timedelta(days=50))}, note="book a visit"),
        Case("coordinator", lambda t: f"/participants/{t['f'].pk}/visits/w1/",
             lambda t: {"action": "correct_date", "visit_date": _iso(t["today"] - timedelta(days=22)),
                        "reason": "typed the wrong day"}, note="correct the date"),
        Case("coordinator", lambda t: f"/participants/{t['f'].pk}/visits/m1/",
             lambda t: {"action": "missed", "reason": "Participant abroad"}, note="record a missed visit"),
    ],
    "participants/<int:pk>/visits/<str:key>/entry/": [Case(
        "coordinator", lambda t: f"/participants/{t['f'].pk}/visits/w1/entry/",
        lambda t: {f"odi-s{i}": "1" for i in range(1, 11)})],
    "participants/<int:pk>/visits/<str:key>/<str:form_id>/": [Case(
        "coordinator", lambda t: f"/participants/{t['f'].pk}/visits/w1/vas/",
        lambda t: {"vas_mm": "20", "complete": "1", "reason": "typing error in the VAS", "revision": "1"},
        note="change a completed form")],
    "visits/calls/": [Case("coordinator", lambda t: "/visits/calls/",
                           lambda t: {"participant": t["f"].pk, "visit": "m1",
                                      "visit_on": _iso(t["today"] + timedelta(days=1)), "outcome": "reached"})],
    "participants/<int:pk>/adverse-events/new/": [Case("investigator",
                                                       lambda t: f"/participants/{t['f'].pk}/adverse-events/new/", _ae_form)],
    "safety/adverse-events/<int:pk>/edit/": [Case(
        "investigator", lambda t: f"/safety/adverse-events/{t['ae'].pk}/edit/",
        lambda t: _ae_form(t, onset_at=_local(t["ae"].onset_at), grade="2", reason="worse at follow-up"))],
    "safety/adverse-events/<int:pk>/withdraw/": [Case(
        "investigator", lambda t: f"/safety/adverse-events/{t['ae'].pk}/withdraw/",
        lambda t: {"withdrawn_on": _iso(t["today"]), "details": "Withdrawn for safety"})],
    "safety/sae/reports/<int:pk>/": [
        Case("investigator", lambda t: f"/safety/sae/reports/{t['unsent_report'].pk}/",
             lambda t: {"action": "sent", "s-sent_at": _local(timezone.now()), "s-sent_to": "Ethics office",
                        "s-method": "e-mail"}, note="report sent"),
        Case("investigator", lambda t: f"/safety/sae/reports/{t['sent_report'].pk}/",
             lambda t: {"action": "ack", "a-acknowledged_at": _local(timezone.now()), "a-acknowledged_by": "Dr Head"},
             note="report acknowledged"),
    ],
    "safety/tasks/<int:pk>/": [Case("coordinator", lambda t: f"/safety/tasks/{t['task_page'].pk}/",
                                    lambda t: {"action": "dismiss", "reason": "Nothing new was reported"})],
    "safety/dsmb/recommendations/new/": [Case("dsmb", lambda t: "/safety/dsmb/recommendations/new/",
                                              lambda t: {"meeting_on": _iso(t["today"]), "decision": "continue",
                                                         "summary": "No safety concern"})],
    "protocol/upload/": [Case("admin", lambda t: "/protocol/upload/", lambda t: {"activate": "on"}, files=_amendment)],
    "monitoring/participants/<int:pk>/sdv/": [Case(
        "monitor", lambda t: f"/monitoring/participants/{t['f'].pk}/sdv/",
        lambda t: {"visit": "w1", "form": "vas", "record": "0", "item": "vas_mm"}, note="source-data verification")],
    "monitoring/participants/<int:pk>/review/": [Case(
        "auditor", lambda t: f"/monitoring/participants/{t['f'].pk}/review/",
        lambda t: {"category": "data_discrepancy", "text": "VAS differs from the paper diary"})],
    "monitoring/findings/<int:pk>/": [Case(
        "auditor", lambda t: f"/monitoring/findings/{t['finding'].pk}/",
        lambda t: {"resolution": "Source document filed"}, note="resolve a review finding")],
    "participants/<int:pk>/casebook/": [Case("pi", lambda t: f"/participants/{t['f'].pk}/casebook/",
                                             lambda t: {"username": "t_pi", "password": TEST_PASSWORD, "confirm": "yes"})],
    "queries/new/": [Case("monitor", lambda t: "/queries/new/", lambda t: {
        "participant": t["con"].pk, "visit": "", "form": "", "record": 0, "item": "", "assigned_to": "site",
        "text": "Please check the consent form"})],
    "queries/<int:pk>/": [
        Case("coordinator", lambda t: f"/queries/{t['query_open'].pk}/",
             lambda t: {"action": "answer", "answer-text": "Checked on the form"}, note="answer a query"),
        Case("monitor", lambda t: f"/queries/{t['query_answered'].pk}/",
             lambda t: {"action": "close", "close-text": "Verified"}, note="close a query"),
        Case("monitor", lambda t: f"/queries/{t['query_closed'].pk}/",
             lambda t: {"action": "reopen", "reopen-text": "Seen again: version missing"}, note="re-open a query"),
    ],
    "participants/<int:pk>/locks/": [
        Case("data_manager", lambda t: f"/participants/{t['f'].pk}/locks/",
             lambda t: {"action": "lock", "visit": "w1", "form": "vas"}, note="lock a form"),
        Case("data_manager", lambda t: f"/participants/{t['rel'].pk}/locks/",
             lambda t: {"action": "unlock", "visit": "", "form": "", "reason": "Correction asked for by the monitor"},
             note="unlock the casebook"),
    ],
    "participants/<int:pk>/self-entry/<str:key>/": [Case(
        "coordinator", lambda t: _self_entry_visit(t) and f"/participants/{t['f'].pk}/self-entry/m1/",
        note="issue a questionnaire link")],
    "p/<str:token>/": [
        Case("coordinator", lambda t: _self_entry_link(t)["path"], lambda t: {"action": "code", "code": "246810"},
             note="the participant's card code"),
        Case("coordinator", lambda t: _self_entry_link(t)["path"],
             lambda t: {"action": "submit", "proof": _self_entry_link(t)["proof"], "vas-vas_mm": "40",
                        **{f"odi-s{i}": "1" for i in range(1, 11)}},
             locked="The study no longer accepts answers", note="the participant's answers"),
    ],
}


def _self_entry_visit(t):
    """The 1-month visit of the participant in follow-up, recorded today (set-up rows written
    directly: the lock is already signed)."""
    from annulus.trial.selectors import active_version
    from annulus.visits.models import Visit

    if "m1_visit" not in t:
        protocol_forms = ["vas", "odi", "joa", "sf36", "vitals"]
        t["m1_visit"] = Visit.objects.create(participant=t["f"], visit_id="m1", visit_date=t["today"],
                                             forms=protocol_forms, protocol_version=active_version(),
                                             created_by=t["users"]["coordinator"], created_at=timezone.now())
    return t["m1_visit"]


def _self_entry_link(t):
    """A participant's link for that visit (token "lock-test-…", card code 246810), opened."""
    from django.contrib.auth.hashers import make_password

    from annulus.selfentry import services as se
    from annulus.selfentry.models import CardCode, SelfEntryLink
    from annulus.selfentry.selectors import token_hash

    if "self_entry" not in t:
        visit = _self_entry_visit(t)
        token = "lock-test-" + "x" * 30
        CardCode.objects.get_or_create(participant=t["f"], defaults={
            "code_hash": make_password("246810"), "created_by": t["users"]["coordinator"], "created_at": timezone.now()})
        link = SelfEntryLink.objects.create(token_hash=token_hash(token), participant=t["f"], visit=visit, visit_key="m1",
                                            instruments=["vas", "odi"], expires_at=timezone.now() + timedelta(days=3),
                                            issued_by=t["users"]["coordinator"], issued_at=timezone.now(),
                                            opened_at=timezone.now())
        t["self_entry"] = {"path": f"/p/{token}/", "proof": se.proof_for(link)}
    return t["self_entry"]

# routes that keep working after the lock, each naming its reason in the code's allow-list
PAGE_ALLOWED = {
    "accounts/login/": "sessions",
    "accounts/logout/": "sessions",
    "accounts/tokens/": "own_credentials",
    "accounts/password/": "own_credentials",
    "accounts/users/": "accounts",
    "accounts/users/<int:pk>/password/": "accounts",
    "i18n/setlang/": "language",
    "notifications/": "notification_read",
    "unblinding/": "unblinding_steps",
    "participants/<int:pk>/emergency-unblinding/": "emergency_unblinding",
    "safety/dsmb/": "reports_and_downloads",
    "allocation/documents/<str:name>": "reports_and_downloads",
    "pharmacy/level2-key.csv": "reports_and_downloads",
    "pharmacy/kits/kit-list.csv": "reports_and_downloads",
    "exports/": "exports",
    "reports/": "reports",
}

# pages that only read: posted to after the lock, they must write nothing (and not fail)
PAGE_READ_ONLY: dict[str, Callable] = {
    "queries/": lambda t: "/queries/",
    "healthz": lambda t: "/healthz",
    "": lambda t: "/",
    "protocol/": lambda t: "/protocol/",
    "data-dictionary/": lambda t: "/data-dictionary/",
    "data-dictionary.csv": lambda t: "/data-dictionary.csv",
    "participants/": lambda t: "/participants/",
    "participants/<int:pk>/": lambda t: f"/participants/{t['f'].pk}/",
    "participants/<int:pk>/audit/": lambda t: f"/participants/{t['f'].pk}/audit/",
    "allocation/verify/": lambda t: "/allocation/verify/",
    "pharmacy/": lambda t: "/pharmacy/",
    "pharmacy/envelopes/<int:envelope_id>/label/": lambda t: f"/pharmacy/envelopes/{t['tx_env'].pk}/label/",
    "pharmacy/envelopes/<int:envelope_id>/letter/": lambda t: f"/pharmacy/envelopes/{t['tx_env'].pk}/letter/",
    "unblinding/emergency/": lambda t: "/unblinding/emergency/",
    "unblinding/emergency/<int:record_id>/": lambda t: "/unblinding/emergency/1/",
    "participants/<int:pk>/visits/<str:key>/<str:form_id>/preview/":
        lambda t: f"/participants/{t['f'].pk}/visits/w1/vas/preview/",
    "visits/overdue/": lambda t: "/visits/overdue/",
    "safety/": lambda t: "/safety/",
    "safety/adverse-events/<int:pk>/": lambda t: f"/safety/adverse-events/{t['ae'].pk}/",
    # the SAE page notifies overdue reports when read: after the lock it no longer does
    "safety/sae/": lambda t: "/safety/sae/",
    "safety/dsmb/alerts/<int:pk>/": lambda t: "/safety/dsmb/alerts/1/",
    "safety/dsmb/reports/<int:pk>/": lambda t: "/safety/dsmb/reports/1/",
    "safety/dsmb/reports/<int:pk>/pdf/": lambda t: "/safety/dsmb/reports/1/pdf/",
    # the status grid, a casebook summary and the list of review findings only read
    "monitoring/": lambda t: "/monitoring/",
    "monitoring/participants/<int:pk>/": lambda t: f"/monitoring/participants/{t['f'].pk}/",
    "monitoring/findings/": lambda t: "/monitoring/findings/",
    # the zip of an export is only read (GET); a post to it is refused (405)
    "exports/<int:pk>/download/": lambda t: "/exports/1/download/",
    # so is the file of a trial report
    "reports/<int:pk>/download/": lambda t: "/reports/1/download/",
}
READ_ONLY_ROLE = {"pharmacy": "pharmacist", "safety/dsmb": "dsmb", "allocation/": "designer"}

API_CASES: dict[tuple[str, str], list[Case]] = {
    # after the lock only an item that appeared since may be waived (ALLOWED_AFTER_LOCK["lock_waivers"],
    # tested in test_unblinding_level1_gate.py); an item waived before the lock is refused like any write
    ("POST", "/api/v1/allocation/unblinding/waivers"): [Case(
        "pi", lambda t: "/api/v1/allocation/unblinding/waivers",
        lambda t: {"item": f"participant:{t['f'].pk}", "reason": "Follow-up ends with the last visit on paper"},
        unlocked="is already waived", note="a pre-lock waiver")],
    ("POST", "/api/v1/participants"): [Case("coordinator", lambda t: "/api/v1/participants", lambda t: {
        "initials": "NEW", "sex": "F", "recruitment_source": "inpatient_referral", "prescreened_on": _iso(t["today"])})],
    ("POST", "/api/v1/participants/{pk}/consent"): [Case(
        "coordinator", lambda t: f"/api/v1/participants/{t['pre'].pk}/consent",
        lambda t: {"consent_version": "1.0", "consented_at": (timezone.now() - timedelta(hours=1)).isoformat(),
                   "taken_by": "t_investigator"})],
    ("POST", "/api/v1/participants/{pk}/evidence"): [Case(
        "coordinator", lambda t: f"/api/v1/participants/{t['con'].pk}/evidence",
        lambda t: {"values": {"vas_mm": 66}, "collected_on": _iso(t["today"])})],
    ("POST", "/api/v1/participants/{pk}/eligibility/decide"): [Case(
        "investigator", lambda t: f"/api/v1/participants/{t['scr'].pk}/eligibility/decide",
        lambda t: {"password": TEST_PASSWORD})],
    ("POST", "/api/v1/participants/{pk}/enrol"): [Case("investigator",
                                                       lambda t: f"/api/v1/participants/{t['eli'].pk}/enrol")],
    ("POST", "/api/v1/participants/{pk}/withdraw"): [Case(
        "investigator", lambda t: f"/api/v1/participants/{t['f'].pk}/withdraw",
        lambda t: {"withdrawn_on": _iso(t["today"]), "category": "participant_request", "details": "Moved away"})],
    ("POST", "/api/v1/allocation/list"): [Case("designer", lambda t: "/api/v1/allocation/list",
                                               unlocked="randomisation has started")],
    ("POST", "/api/v1/allocation/participants/{pk}/randomise"): [Case(
        "investigator", lambda t: f"/api/v1/allocation/participants/{t['enr'].pk}/randomise")],
    ("POST", "/api/v1/allocation/participants/{pk}/transplant"): [Case(
        "investigator", lambda t: f"/api/v1/allocation/participants/{t['tx'].pk}/transplant",
        lambda t: _transplant_form(t, api=True))],
    ("POST", "/api/v1/allocation/pharmacy/envelopes/{envelope_id}/release"): [Case(
        "pharmacist", lambda t: f"/api/v1/allocation/pharmacy/envelopes/{t['rel_env'].pk}/release",
        lambda t: {"lot_number": "LOT-R", "tested_on": _iso(t["today"]), "results": testing.PASSING})],
    ("POST", "/api/v1/allocation/pharmacy/envelopes/{envelope_id}/dispense"): [Case(
        "pharmacist", lambda t: f"/api/v1/allocation/pharmacy/envelopes/{t['disp_env'].pk}/dispense")],
    ("POST", "/api/v1/visits/participants/{pk}/liposuction"): [Case(
        "investigator", lambda t: f"/api/v1/visits/participants/{t['rand'].pk}/liposuction",
        lambda t: {"performed_on": _iso(t["today"]), "fat_volume_ml": 150, "observation_hours": 4,
                   "anaesthesia": "local"})],
    ("POST", "/api/v1/visits/participants/{pk}/visits"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits",
        lambda t: {"visit": "m1", "visit_date": _iso(t["today"])})],
    ("POST", "/api/v1/visits/participants/{pk}/visits/unscheduled"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits/unscheduled",
        lambda t: {"visit_date": _iso(t["today"]), "reason": "Pain flare", "forms": ["vas"]})],
    ("POST", "/api/v1/visits/participants/{pk}/visits/missed"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits/missed",
        lambda t: {"visit": "m1", "reason": "Participant abroad"})],
    ("POST", "/api/v1/visits/participants/{pk}/appointments"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/appointments",
        lambda t: {"visit": "m3", "on": _iso(t["today"] + timedelta(days=50))})],
    ("PUT", "/api/v1/visits/participants/{pk}/visits/{key}/forms/{form_id}"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits/w1/forms/vas",
        lambda t: {"items": {"vas_mm": 20}, "complete": True, "reason": "typing error in the VAS"},
        note="change a completed form")],
    ("PUT", "/api/v1/visits/participants/{pk}/visits/{key}/forms"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits/w1/forms",
        lambda t: {"forms": {"odi": {f"s{i}": 1 for i in range(1, 11)}}})],
    ("PATCH", "/api/v1/visits/participants/{pk}/visits/{key}"): [Case(
        "coordinator", lambda t: f"/api/v1/visits/participants/{t['f'].pk}/visits/w1",
        lambda t: {"visit_date": _iso(t["today"] - timedelta(days=22)), "reason": "typed the wrong day"})],
    ("POST", "/api/v1/visits/reminders"): [Case(
        "coordinator", lambda t: "/api/v1/visits/reminders",
        lambda t: {"participant_id": t["f"].pk, "visit": "m1", "visit_on": _iso(t["today"] + timedelta(days=1)),
                   "outcome": "reached"})],
    ("POST", "/api/v1/safety/adverse-events"): [Case(
        "investigator", lambda t: "/api/v1/safety/adverse-events",
        lambda t: {**AE_FIELDS, "participant_id": t["f"].pk,
                   "onset_at": (timezone.now() - timedelta(hours=3)).isoformat()})],
    ("PATCH", "/api/v1/safety/adverse-events/{pk}"): [Case(
        "investigator", lambda t: f"/api/v1/safety/adverse-events/{t['ae'].pk}",
        lambda t: {"reason": "worse at follow-up", "grade": 2})],
    ("POST", "/api/v1/safety/adverse-events/{pk}/withdraw"): [Case(
        "investigator", lambda t: f"/api/v1/safety/adverse-events/{t['ae'].pk}/withdraw",
        lambda t: {"withdrawn_on": _iso(t["today"]), "details": "Withdrawn for safety"})],
    ("POST", "/api/v1/safety/sae-reports/{pk}/sent"): [Case(
        "investigator", lambda t: f"/api/v1/safety/sae-reports/{t['unsent_report'].pk}/sent",
        lambda t: {"sent_at": timezone.now().isoformat(), "sent_to": "Ethics office"})],
    ("POST", "/api/v1/protocol/versions"): [Case(
        "admin", lambda t: "/api/v1/protocol/versions",
        lambda t: {"text": t["protocol_text"].replace('version: "1.0"', 'version: "1.1"', 1), "activate": True})],
    ("POST", "/api/v1/safety/ae-tasks/{pk}/dismiss"): [Case(
        "investigator", lambda t: f"/api/v1/safety/ae-tasks/{t['task_api_dismiss'].pk}/dismiss",
        lambda t: {"reason": "Nothing new was reported"})],
    ("POST", "/api/v1/safety/ae-tasks/{pk}/link"): [Case(
        "investigator", lambda t: f"/api/v1/safety/ae-tasks/{t['task_api_link'].pk}/link",
        lambda t: {"adverse_event_id": t["ae"].pk})],
    ("POST", "/api/v1/safety/sae-reports/{pk}/ack"): [Case(
        "investigator", lambda t: f"/api/v1/safety/sae-reports/{t['sent_report'].pk}/ack",
        lambda t: {"acknowledged_at": timezone.now().isoformat(), "acknowledged_by": "Dr Head"})],
    ("POST", "/api/v1/casebooks/participants/{pk}/sign"): [Case(
        "pi", lambda t: f"/api/v1/casebooks/participants/{t['f'].pk}/sign",
        lambda t: {"username": "t_pi", "password": TEST_PASSWORD})],
    ("POST", "/api/v1/queries"): [Case(
        "monitor", lambda t: "/api/v1/queries",
        lambda t: {"participant_id": t["con"].pk, "text": "Please check the consent form", "assigned_to": "site"})],
    ("POST", "/api/v1/queries/{pk}/answer"): [Case(
        "coordinator", lambda t: f"/api/v1/queries/{t['query_open'].pk}/answer", lambda t: {"text": "Checked"})],
    ("POST", "/api/v1/queries/{pk}/close"): [Case(
        "monitor", lambda t: f"/api/v1/queries/{t['query_answered'].pk}/close", lambda t: {"text": "Verified"})],
    ("POST", "/api/v1/queries/{pk}/reopen"): [Case(
        "monitor", lambda t: f"/api/v1/queries/{t['query_closed'].pk}/reopen", lambda t: {"text": "Seen again"})],
    ("POST", "/api/v1/participants/{pk}/lock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['rand'].pk}/lock")],
    ("POST", "/api/v1/participants/{pk}/unlock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['rel'].pk}/unlock",
        lambda t: {"reason": "Correction asked for by the monitor"})],
    ("POST", "/api/v1/participants/{pk}/visits/{key}/lock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['f'].pk}/visits/m1/lock")],
    ("POST", "/api/v1/participants/{pk}/visits/{key}/unlock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['rel'].pk}/visits/baseline/unlock",
        lambda t: {"reason": "Correction asked for by the monitor"})],
    ("POST", "/api/v1/participants/{pk}/visits/{key}/forms/{form_id}/lock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['f'].pk}/visits/w1/forms/vas/lock")],
    ("POST", "/api/v1/participants/{pk}/visits/{key}/forms/{form_id}/unlock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['rel'].pk}/visits/liposuction/forms/liposuction/unlock",
        lambda t: {"reason": "Correction asked for by the monitor"})],
    ("POST", "/api/v1/participants/{pk}/forms/{form_id}/lock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['tx'].pk}/forms/adverse_event/lock")],
    ("POST", "/api/v1/participants/{pk}/forms/{form_id}/unlock"): [Case(
        "data_manager", lambda t: f"/api/v1/participants/{t['rel'].pk}/forms/adverse_event/unlock",
        lambda t: {"reason": "Correction asked for by the monitor"})],
    ("POST", "/api/v1/monitoring/participants/{pk}/sdv"): [Case(
        "monitor", lambda t: f"/api/v1/monitoring/participants/{t['f'].pk}/sdv",
        lambda t: {"visit": "w1", "form": "vas", "item": "vas_mm"})],
    ("POST", "/api/v1/monitoring/findings"): [Case(
        "auditor", lambda t: "/api/v1/monitoring/findings",
        lambda t: {"participant_id": t["f"].pk, "category": "consent", "text": "Consent copy missing"})],
    ("POST", "/api/v1/monitoring/findings/{pk}/resolve"): [Case(
        "auditor", lambda t: f"/api/v1/monitoring/findings/{t['finding'].pk}/resolve",
        lambda t: {"resolution": "Copy filed"})],
}

# routes of a kit trial only: the first trial (this module's fixture) has no kits, so these are
# tested after the lock on the kit trial in tests/test_kits.py (the kit list page only reads; the
# kit allocation is refused with the lock's message and writes nothing)
KIT_TRIAL_PAGES = {"pharmacy/kits/", "participants/<int:pk>/kits/<str:key>/"}
KIT_TRIAL_API = {("POST", "/api/v1/allocation/participants/{pk}/visits/{key}/kit")}

API_ALLOWED = {
    ("POST", "/api/v1/allocation/participants/{pk}/emergency-unblinding"): "emergency_unblinding",
    ("POST", "/api/v1/allocation/unblinding/lock"): "unblinding_steps",
    ("POST", "/api/v1/allocation/unblinding/level1"): "unblinding_steps",
    ("POST", "/api/v1/allocation/unblinding/analysis-signoff"): "unblinding_steps",
    ("POST", "/api/v1/allocation/unblinding/level2"): "unblinding_steps",
    ("POST", "/api/v1/safety/dsmb/reports"): "reports_and_downloads",
    ("POST", "/api/v1/exports"): "exports",
    ("POST", "/api/v1/reports"): "reports",
}


# ---- enumerating the routes ----------------------------------------------------------------------

def page_routes() -> set[str]:
    """Every page route of the site (the API's own routes are covered by the OpenAPI document)."""
    return {r for r in url_routes() if not r.startswith("api/v1/")}


def api_write_operations(client) -> set[tuple[str, str]]:
    schema = client.get("/api/v1/openapi.json").json()
    return {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops
            if method.upper() in WRITE_METHODS}


# ---- clients, as a browser and as a script would be -------------------------------------------

class Browser:
    """A logged-in session with CSRF enforced; posts carry the token from the csrftoken cookie."""

    def __init__(self, user):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.client.get("/")  # sets the csrftoken cookie, as the first page does
        self.token = self.client.cookies["csrftoken"].value

    def post(self, path, data, files=None):
        return self.client.post(path, {**data, **(files or {}), "csrfmiddlewaretoken": self.token}, follow=True)

    def api(self, method, path, body):
        return getattr(self.client, method.lower())(path, json.dumps(body), content_type="application/json",
                                                    HTTP_X_CSRFTOKEN=self.token)


class Script:
    """An API client with a bearer token and no session (CSRF checks enforced all the same)."""

    def __init__(self, user):
        from annulus.accounts.services import issue_token

        self.key = issue_token(user=user, name="lock test")
        self.client = Client(enforce_csrf_checks=True)

    def api(self, method, path, body):
        return getattr(self.client, method.lower())(path, json.dumps(body), content_type="application/json",
                                                    HTTP_AUTHORIZATION=f"Bearer {self.key}")


class _Rollback(Exception):
    pass


def _unlocked(fn):
    """Run ``fn`` with the lock lifted, inside a transaction rolled back afterwards; returns its
    result and the audit events it appended."""
    out = {}
    try:
        with transaction.atomic():
            TrialState.objects.filter(id=1).update(state="recruiting")
            before = audit_head()[0]
            out["response"] = fn()
            out["events"] = audit_head()[0] - before
            raise _Rollback
    except _Rollback:
        pass
    assert TrialState.objects.get(id=1).state == "locked"
    return out["response"], out["events"]


def _text(resp) -> str:
    return resp.content.decode("utf-8", "replace")


# ---- the tests -----------------------------------------------------------------------------------

@pytest.mark.req("P-3.7")
def test_every_route_is_classified(users):
    """A route in none of the lists fails here: a new write must be guarded and listed."""
    client = Client()
    client.force_login(users["coordinator"])
    pages = page_routes()
    unknown = sorted(pages - set(PAGE_CASES) - set(PAGE_ALLOWED) - set(PAGE_READ_ONLY) - KIT_TRIAL_PAGES)
    assert not unknown, f"page routes neither refused, allowed nor read-only after the lock: {unknown}"
    gone = sorted((set(PAGE_CASES) | set(PAGE_ALLOWED) | set(PAGE_READ_ONLY) | KIT_TRIAL_PAGES) - pages)
    assert not gone, f"listed page routes that no longer exist: {gone}"
    ops = api_write_operations(client)
    unknown = sorted(ops - set(API_CASES) - set(API_ALLOWED) - KIT_TRIAL_API)
    assert not unknown, f"API writes neither refused nor allowed after the lock: {unknown}"
    gone = sorted((set(API_CASES) | set(API_ALLOWED) | KIT_TRIAL_API) - ops)
    assert not gone, f"listed API writes that no longer exist: {gone}"
    for reason in list(PAGE_ALLOWED.values()) + list(API_ALLOWED.values()):
        assert reason in ALLOWED_AFTER_LOCK
    assert not set(PAGE_READ_ONLY) & set(PAGE_CASES)


@pytest.mark.req("P-3.7")
def test_every_api_write_is_refused_after_the_lock(trial, users):
    trial["users"] = users
    day = timezone.localdate().isoformat()
    expected = {"detail": [{"field": "trial", "message": LOCK_MESSAGE.format(day=day)}]}
    scripts, browsers = {}, {}
    problems = []
    for (method, route), cases in API_CASES.items():
        for case in cases:
            script = scripts.setdefault(case.role, Script(users[case.role]))
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            path, body = case.path(trial), case.data(trial)
            name = f"{method} {route} {case.note}".strip()
            for who, client in (("token", script), ("session", browser)):
                counts, head = row_counts(), audit_head()
                resp = client.api(method, path, body)
                if resp.status_code != 409 or resp.json() != expected:
                    problems.append(f"{name} ({who}): {resp.status_code} {_text(resp)[:300]}")
                if row_counts() != counts or audit_head() != head:
                    problems.append(f"{name} ({who}): something was written")
            resp, events = _unlocked(lambda: script.api(method, path, body))
            if case.unlocked is None and (resp.status_code >= 300 or not events):
                problems.append(f"{name}: with the lock lifted it does not write: {resp.status_code} {_text(resp)[:300]}")
            if case.unlocked is not None and case.unlocked not in _text(resp):
                problems.append(f"{name}: with the lock lifted expected '{case.unlocked}': {_text(resp)[:300]}")
    assert not problems, "\n".join(problems)


@pytest.mark.req("P-3.7")
def test_every_page_write_is_refused_after_the_lock(trial, users):
    trial["users"] = users
    message = LOCK_MESSAGE.format(day=timezone.localdate().isoformat())
    browsers = {}
    problems = []
    for route, cases in PAGE_CASES.items():
        for case in cases:
            browser = browsers.setdefault(case.role, Browser(users[case.role]))
            path, data = case.path(trial), case.data(trial)
            name = f"{route} {case.note}".strip()
            counts, head = row_counts(), audit_head()
            resp = browser.post(path, data, case.files(trial) if case.files else None)
            if resp.status_code not in (200, 400, 409) or (case.locked or message) not in _text(resp):
                problems.append(f"{name}: {resp.status_code}, lock message not shown")
            if row_counts() != counts or audit_head() != head:
                problems.append(f"{name}: something was written")
            resp, events = _unlocked(lambda: browser.post(path, data, case.files(trial) if case.files else None))
            if case.unlocked is None and (resp.status_code != 200 or not events):
                problems.append(f"{name}: with the lock lifted it does not write ({resp.status_code})")
            if case.unlocked is not None and case.unlocked not in _text(resp):
                problems.append(f"{name}: with the lock lifted expected '{case.unlocked}'")
    assert not problems, "\n".join(problems)


@pytest.mark.req("P-3.7")
def test_read_only_pages_write_nothing_when_posted_after_the_lock(trial, users):
    problems = []
    browsers = {}
    for route, path in PAGE_READ_ONLY.items():
        role = next((r for prefix, r in READ_ONLY_ROLE.items() if route.startswith(prefix)), "investigator")
        browser = browsers.setdefault(role, Browser(users[role]))
        counts, head = row_counts(), audit_head()
        resp = browser.post(path(trial), {})
        if resp.status_code >= 500 or resp.status_code == 403:
            problems.append(f"{route}: {resp.status_code}")
        if row_counts() != counts or audit_head() != head:
            problems.append(f"{route}: something was written")
    assert not problems, "\n".join(problems)
