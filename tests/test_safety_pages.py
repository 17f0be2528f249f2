"""Safety pages: the AE form (with the term pre-filled from a laboratory prompt), follow-up,
withdrawal for safety shown on both sides, listings with CSV export, the SAE clocks and the
printable report form, and who may open what."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.participants.models import Withdrawal
from annulus.safety import services
from annulus.safety.models import AdverseEvent, AdverseEventRevision

pytestmark = pytest.mark.django_db


def local_input(dt):
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def form_data(**over):
    data = {"term": "Injection-site pain", "onset_at": local_input(timezone.now() - timedelta(days=1)), "end_at": "",
            "serious": "no", "grade": "1", "causality_liposuction": "not_related", "causality_injection": "probable",
            "causality_product": "possible", "expectedness": "expected", "action_taken": "none", "outcome": "recovering",
            "first_knowledge_at": ""}
    data.update(over)
    return data


def record(users, p, **over):
    now = timezone.now()
    fields = dict(term="Back pain flare", onset_at=now - timedelta(days=2), serious=False, serious_criteria=[], grade=2,
                  causality_liposuction="not_related", causality_injection="possible", causality_product="possible",
                  expectedness="expected", action_taken="treatment", outcome="recovering")
    fields.update(over)
    return services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **fields)


@pytest.mark.req("P-6.1")
def test_new_form_prefills_the_term_from_a_lab_prompt(users, make_participant, client_for):
    p = make_participant("enrolled")
    c = client_for("investigator")
    page = c.get(f"/participants/{p.pk}/adverse-events/new/?term=ALT%20raised%20(clinically%20significant)")
    assert page.status_code == 200
    assert 'value="ALT raised (clinically significant)"' in page.content.decode()
    r = c.post(f"/participants/{p.pk}/adverse-events/new/?term=ALT%20raised&source=lab:alt",
               form_data(term="ALT raised"))
    assert r.status_code == 302
    ae = AdverseEvent.objects.get()
    assert ae.term == "ALT raised" and ae.source == "lab:alt"
    assert r["Location"] == f"/safety/adverse-events/{ae.pk}/"


@pytest.mark.req("P-6.1", "P-2.3", "X-6.5")
@pytest.mark.parametrize("over,field_label,words", [
    (dict(end_at=local_input(timezone.now() - timedelta(days=3)), outcome="recovered"), "End (resolution or death)", "before the onset"),
    (dict(grade="5", outcome="not_recovered"), "Outcome", "grade 5"),
    (dict(serious="yes", first_knowledge_at=local_input(timezone.now())), "Seriousness criteria", "at least one"),
    (dict(serious="yes", serious_criteria=["hospitalisation"],
          first_knowledge_at=local_input(timezone.now() + timedelta(days=1))), "First knowledge of the serious event", "future"),
    (dict(onset_at=local_input(timezone.now() - timedelta(days=30))), "Onset", "before informed consent"),
], ids=["end-before-onset", "grade5-not-fatal", "serious-no-criterion", "knowledge-future", "before-consent"])
def test_form_shows_the_rule_on_the_field_and_writes_nothing(users, make_participant, client_for, over, field_label, words):
    p = make_participant("enrolled")
    r = client_for("coordinator").post(f"/participants/{p.pk}/adverse-events/new/", form_data(**over))
    assert r.status_code == 200
    body = r.content.decode()
    assert f"{field_label}: " in body and words in body
    assert AdverseEvent.objects.count() == 0 and AdverseEventRevision.objects.count() == 0


@pytest.mark.req("P-6.1", "P-2.3")
def test_no_form_before_consent_and_no_edit_for_read_only_roles(users, make_participant, client_for):
    p = make_participant("pre_screened")
    r = client_for("investigator").post(f"/participants/{p.pk}/adverse-events/new/", form_data())
    assert r.status_code == 200 and "consent" in r.content.decode()
    assert AdverseEvent.objects.count() == 0
    for role in ("monitor", "dsmb", "auditor"):
        assert client_for(role).get(f"/participants/{p.pk}/adverse-events/new/").status_code == 403
    for role in ("pharmacist", "designer", "statistician"):
        assert client_for(role).get("/safety/").status_code == 403


@pytest.mark.req("P-6.1", "X-6.5")
def test_follow_up_via_the_form_needs_a_reason_and_keeps_history(users, make_participant, client_for):
    p = make_participant("enrolled")
    ae = record(users, p)
    c = client_for("investigator")
    data = form_data(term=ae.term, onset_at=local_input(ae.onset_at), grade="2", causality_injection="possible",
                     action_taken="treatment", outcome="recovered", end_at=local_input(timezone.now() - timedelta(hours=1)))
    r = c.post(f"/safety/adverse-events/{ae.pk}/edit/", data)
    assert r.status_code == 200 and "Reason for the change" in r.content.decode()
    assert AdverseEventRevision.objects.count() == 1
    r = c.post(f"/safety/adverse-events/{ae.pk}/edit/", {**data, "reason": "resolved, phone follow-up"})
    assert r.status_code == 302
    page = c.get(f"/safety/adverse-events/{ae.pk}/").content.decode()
    assert "resolved, phone follow-up" in page and "recovering → recovered" in page


@pytest.mark.req("P-6.3")
def test_withdrawal_for_safety_linked_both_ways(users, make_participant, client_for):
    p = make_participant("enrolled")
    ae = record(users, p, grade=3)
    c = client_for("investigator")
    page = c.get(f"/safety/adverse-events/{ae.pk}/").content.decode()
    assert f"/safety/adverse-events/{ae.pk}/withdraw/" in page
    r = c.post(f"/safety/adverse-events/{ae.pk}/withdraw/", {"withdrawn_on": timezone.localdate().isoformat(),
                                                            "details": "persistent severe pain; participant stops"})
    assert r.status_code == 302
    w = Withdrawal.objects.get(participant=p)
    assert (w.category, w.adverse_event_id) == ("adverse_event", ae.pk)
    page = c.get(f"/safety/adverse-events/{ae.pk}/").content.decode()
    assert "withdrawn because of this event" in page
    ppage = c.get(f"/participants/{p.pk}/").content.decode()
    assert f"/safety/adverse-events/{ae.pk}/" in ppage and "Withdrawn for safety because of" in ppage
    # a second withdrawal is refused with the participants' message, nothing written
    r = c.post(f"/safety/adverse-events/{ae.pk}/withdraw/", {"withdrawn_on": timezone.localdate().isoformat(), "details": "again"})
    assert r.status_code == 200 and "already withdrawn" in r.content.decode()
    assert Withdrawal.objects.count() == 1


@pytest.mark.req("P-6.3")
def test_withdrawal_before_the_event_is_refused(users, make_participant):
    from annulus.errors import RuleViolation

    p = make_participant("enrolled")
    ae = record(users, p)
    with pytest.raises(RuleViolation) as exc:
        services.withdraw_for_event(actor=users["investigator"], adverse_event_id=ae.pk,
                                    withdrawn_on=timezone.localdate() - timedelta(days=5), details="x")
    assert exc.value.field == "withdrawn_on"
    assert not Withdrawal.objects.exists()


@pytest.mark.req("P-6.1", "P-6.2", "P-8.4")
def test_listings_and_csv_export(users, make_participant, client_for):
    p, q = make_participant("enrolled"), make_participant("enrolled")
    now = timezone.now()
    record(users, p, term="Bruising")
    record(users, q, term="Discitis", serious=True, serious_criteria=["hospitalisation"], grade=3,
           first_knowledge_at=now - timedelta(hours=1))
    record(users, q, term="Septic shock", serious=True, serious_criteria=["death", "life_threatening"], grade=5,
           outcome="fatal", end_at=now - timedelta(hours=2), first_knowledge_at=now - timedelta(hours=1))
    c = client_for("monitor")
    all_page = c.get("/safety/").content.decode()
    assert "Bruising" in all_page and "Discitis" in all_page
    serious = c.get("/safety/?listing=serious").content.decode()
    assert "Bruising" not in serious and "Discitis" in serious and "left" in serious  # clocks shown
    deaths = c.get("/safety/?listing=deaths").content.decode()
    assert "Septic shock" in deaths and "Discitis" not in deaths
    r = c.get("/safety/?listing=serious&format=csv")
    assert r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["event", "case_number", "screening_number", "term"]
    assert sorted(row[3] for row in rows[1:]) == ["Discitis", "Septic shock"]
    # free text never becomes a spreadsheet formula
    record(users, p, term="=HYPERLINK(\"x\")")
    rows = list(csv.reader(io.StringIO(c.get("/safety/?format=csv").content.decode("utf-8-sig"))))
    assert "'=HYPERLINK(\"x\")" in [row[3] for row in rows]


@pytest.mark.req("P-6.2", "X-6.5")
def test_sae_dashboard_shows_time_left_and_overdue_in_red(users, make_participant, client_for):
    p = make_participant("enrolled")
    now = timezone.now()
    record(users, p, term="Discitis", serious=True, serious_criteria=["hospitalisation"], grade=3,
           first_knowledge_at=now - timedelta(hours=14))
    page = client_for("coordinator").get("/safety/sae/").content.decode()
    assert 'class="status overdue"' in page and "overdue by 2 h" in page
    assert "left" in page  # the team leader's clock still runs
    assert "2 reports are overdue" in page


@pytest.mark.req("P-6.2")
def test_printable_report_form_and_recording_via_the_page(users, make_participant, client_for):
    p = make_participant("enrolled")
    now = timezone.now()
    ae = record(users, p, term="Discitis", serious=True, serious_criteria=["hospitalisation"], grade=3,
                first_knowledge_at=now - timedelta(hours=2))
    rep = ae.sae_reports.get(recipient="ethics_committee")
    c = client_for("investigator")
    page = c.get(f"/safety/sae/reports/{rep.pk}/").content.decode()
    assert "Serious adverse event report" in page and "Ethics committee" in page and "☒ requires hospitalisation" in page
    assert "blinded (not part of this report)" in page
    # acknowledgement before sending: refused on the field, nothing written
    r = c.post(f"/safety/sae/reports/{rep.pk}/", {"action": "ack", "a-acknowledged_at": local_input(now - timedelta(hours=1)),
                                                  "a-acknowledged_by": "EC secretary"})
    assert r.status_code == 200 and "Acknowledged at: the report has not been sent yet" in r.content.decode()
    r = c.post(f"/safety/sae/reports/{rep.pk}/", {"action": "sent", "s-sent_at": local_input(now - timedelta(hours=1)),
                                                  "s-sent_to": "EC secretary", "s-method": "e-mail"})
    assert r.status_code == 302
    rep.refresh_from_db()
    assert rep.sent_to == "EC secretary" and rep.sent_by == users["investigator"]
    # read-only roles see the form but cannot record
    assert client_for("monitor").post(f"/safety/sae/reports/{rep.pk}/", {"action": "ack"}).status_code == 403


@pytest.mark.req("P-6.1", "P-6.2")
def test_api_round_trip(users, make_participant, client_for):
    p = make_participant("enrolled")
    c = client_for("investigator")
    now = timezone.now()
    body = {"participant_id": p.pk, "term": "Discitis", "onset_at": (now - timedelta(hours=5)).isoformat(),
            "serious": True, "serious_criteria": [], "first_knowledge_at": (now - timedelta(hours=1)).isoformat(),
            "grade": 3, "causality_liposuction": "not_related", "causality_injection": "probable",
            "causality_product": "possible", "expectedness": "unexpected", "action_taken": "hospitalised",
            "outcome": "recovering"}
    r = c.post("/api/v1/safety/adverse-events", body, content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "serious_criteria"
    body["serious_criteria"] = ["hospitalisation"]
    r = c.post("/api/v1/safety/adverse-events", body, content_type="application/json")
    assert r.status_code == 201
    pk = r.json()["id"]
    r = c.patch(f"/api/v1/safety/adverse-events/{pk}", {"reason": "MRI result", "grade": 4}, content_type="application/json")
    assert r.status_code == 200 and r.json()["revision"] == 2
    assert [x["revision"] for x in c.get(f"/api/v1/safety/adverse-events/{pk}/revisions").json()] == [1, 2]
    reports = c.get("/api/v1/safety/sae-reports").json()
    assert {x["state"] for x in reports} == {"running"}
    rid = reports[0]["id"]
    r = c.post(f"/api/v1/safety/sae-reports/{rid}/ack", {"acknowledged_at": now.isoformat(), "acknowledged_by": "x"},
               content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "acknowledged_at"
    assert client_for("monitor").post(f"/api/v1/safety/sae-reports/{rid}/sent",
                                      {"sent_at": now.isoformat(), "sent_to": "x"}, content_type="application/json").status_code == 403


@pytest.mark.req("P-6.1", "P-6.2")
def test_dashboard_and_navigation(users, make_participant, client_for):
    p = make_participant("enrolled")
    record(users, p, term="Discitis", serious=True, serious_criteria=["hospitalisation"], grade=3,
           first_knowledge_at=timezone.now() - timedelta(hours=13))
    page = client_for("investigator").get("/").content.decode()
    assert "SAE reports open" in page and 'href="/safety/"' in page and 'href="/safety/dsmb/"' in page
    page = client_for("designer").get("/safety/dsmb/")
    assert page.status_code == 200


@pytest.mark.req("X-6.5")
def test_ae_form_choices_are_shown_in_chinese(users, make_participant, client_for):
    """Seriousness criteria, grades, causality, action and outcome come in the page's language."""
    p = make_participant("enrolled")
    html = client_for("investigator").get(f"/participants/{p.pk}/adverse-events/new/",
                                          HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    for label in ("危及生命", "3 重度", "很可能有关", "非预期", "研究操作推迟", "恢复但有后遗症"):
        assert label in html, label
    assert "life-threatening" not in html
