"""Self-entry on the second protocol (knee osteoarthritis): the patient-reported forms of a visit
are those whose instrument says it is patient-reported (NRS and KOOS here, in the schedule's
order), never a list of form ids; the participant answers the NRS as a row of eleven numbered
buttons with nothing chosen and the KOOS question by question, in English and in Chinese, and
the stored scores are the instruments' own and the eCRF's for the same answers (X-1.3)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.instruments import score
from annulus.instruments.forms import STATIC_SPECS
from annulus.instruments.items import CHOICE, LINE, SCALE
from annulus.selfentry import selectors, services
from annulus.selfentry.models import SelfEntryLink
from annulus.visits import procedures
from annulus.visits import services as vs
from annulus.visits.models import FormRecord

from .knee_support import at, knee_enrolled, knee_list
from .knee_support import protocol_version  # noqa: F401 (fixture)
from .test_no_preselected_answers import assert_nothing_chosen
from .test_selfentry import _browser, _issue, _post

# the answers used throughout: NRS 7; KOOS each item's code from a fixed pattern over 0-4
NRS_ANSWER = 7
KOOS_IDS = [i.id for i in STATIC_SPECS["koos"].items]
KOOS_ANSWERS = {item_id: (n * 3 + 1) % 5 for n, item_id in enumerate(KOOS_IDS)}


def koos_by_hand(answers: dict) -> dict:
    """Each KOOS subscale worked out here from the item codes: 100 - mean x 25 (all answered)."""
    runs = {"symptoms": ("s", 7), "pain": ("p", 9), "adl": ("a", 17), "sport_rec": ("sp", 5), "qol": ("q", 4)}
    return {key: 100 - sum(answers[f"{prefix}{i}"] for i in range(1, n + 1)) / n * 25
            for key, (prefix, n) in runs.items()}


@pytest.fixture
def at_week4(users, monkeypatch):
    """A knee participant dosed 28 days ago, their week-4 visit (NRS, KOOS and the staff's forms)
    recorded today. The kit the system allocates is a stand-in (the allocation app is not tested
    here)."""
    from annulus.allocation import services as allocation

    allocated: dict = {}
    monkeypatch.setattr(procedures, "_kit_sources", [lambda pid, key: allocated.get((pid, key), set())])
    knee_list(users)

    def make():
        p = knee_enrolled(users, consent_days_ago=35)
        allocation.randomise(actor=users["investigator"], participant_id=p.pk)
        day1 = timezone.localdate() - timedelta(days=28)
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
        kit = f"KOA-TEST-{p.pk:04d}"
        allocated[(p.pk, "day1")] = {kit}
        vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                     items={"dosed_at": at(day1, 9).isoformat(), "kit_number": kit, "tablets_dispensed": 35,
                            "dose_observed": "yes", "kit_check__kit_number_matches": "yes",
                            "kit_check__seal_intact": "yes", "kit_check__expiry_after_next_visit": "yes",
                            "kit_check__storage_temperature": 22},
                     complete=True, collected_at=at(day1, 9))
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w4", visit_date=timezone.localdate())
        return p
    return make


@pytest.mark.req("X-1.3", "X-5.7")
def test_the_instruments_declare_what_the_participant_answers_and_how():
    specs = STATIC_SPECS
    assert {k for k, s in specs.items() if s.patient_reported} == {"vas", "odi", "joa", "sf36", "nrs", "koos"}
    assert [specs[k].self_report.way for k in ("vas", "nrs", "koos", "odi")] == [LINE, SCALE, CHOICE, CHOICE]
    # the JOA's examination is the investigator's: the participant answers the other 11 items
    assert [i.group for i in specs["joa"].patient_items()].count("signs") == 0
    assert len(specs["joa"].patient_items()) == 11 and not specs["joa"].patient_answers_all
    assert len(specs["koos"].patient_items()) == 42 and specs["koos"].patient_answers_all
    # every patient-reported instrument has its introduction in both languages
    for k, s in specs.items():
        if s.patient_reported:
            assert s.self_report.text("intro", "en") and s.self_report.text("intro", "zh-hans"), k
    nrs = specs["nrs"].self_report
    assert (nrs.text("low", "en"), nrs.text("high", "zh-hans")) == ("No pain", "能想象到的最剧烈疼痛")


@pytest.mark.req("X-1.3")
def test_the_patient_reported_forms_come_from_each_protocols_instruments(protocol_version):
    from annulus.protocol import load_protocol
    from annulus.trial.selectors import active_protocol

    from .knee_support import KNEE

    knee = active_protocol()
    assert selectors.patient_forms(knee) == ["nrs", "koos"]
    assert selectors.patient_forms(knee, ["vitals", "koos", "nrs", "adverse_events"]) == ["nrs", "koos"]
    assert selectors.patient_forms(knee, ["vitals", "haematology"]) == []
    first = load_protocol(KNEE.parent / "dlbp-admsc.yaml")
    assert selectors.patient_forms(first) == ["vas", "odi", "joa", "sf36"]


@pytest.mark.req("X-1.3", "X-5.7")
@pytest.mark.parametrize("language, words", [
    ("en", ("No pain", "Worst pain imaginable", "your study knee", "Do you have swelling in your knee?",
            "What amount of knee pain have you experienced the last week")),
    ("zh-hans", ("无痛", "能想象到的最剧烈疼痛", "研究膝关节", "您的膝关节肿胀吗？", "过去一周，您在进行以下活动时膝关节疼痛的程度如何？"))])
def test_a_knee_participant_answers_the_nrs_and_the_koos_and_the_scores_equal_the_ecrf(at_week4, client_for, users,
                                                                                      language, words):
    p, twin = at_week4(), at_week4()
    path, code, issue_page = _issue(client_for, p, key="w4")
    link = SelfEntryLink.objects.get(participant=p)
    assert link.instruments == ["nrs", "koos"]  # the schedule's order; the staff's forms are not asked
    assert "NRS knee pain" in issue_page and "KOOS" in issue_page
    # the visit page offers the link
    visit_page = client_for("coordinator").get(f"/participants/{p.pk}/visits/w4/").content.decode()
    assert "Issue a link for the participant" in visit_page

    phone = _browser(language)
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    assert all(w in html for w in words), [w for w in words if w not in html]
    assert_nothing_chosen(html, "knee questionnaire")
    # the NRS: eleven buttons 0..10 in one row, the KOOS 42 questions of five answers each
    nrs_values = re.findall(r'name="nrs-nrs_pain" value="(\d+)"', html)
    assert nrs_values == [str(n) for n in range(11)]
    assert 'class="scale-row"' in html and 'type="range"' not in html
    assert len(re.findall(r'<fieldset class="step', html)) == 1 + 42
    for item_id in KOOS_IDS:
        assert len(re.findall(rf'name="koos-{item_id}" value="[0-4]"', html)) == 5, item_id
    # the form names come from the protocol, the introductions from the instruments
    spec = STATIC_SPECS["nrs"]
    assert spec.self_report.text("intro", language) in html.replace("&quot;", '"')
    assert STATIC_SPECS["koos"].self_report.text("intro", language) in html

    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    data = {"nrs-nrs_pain": str(NRS_ANSWER), **{f"koos-{k}": str(v) for k, v in KOOS_ANSWERS.items()}}
    done = _post(phone, path, {"action": "submit", "proof": proof, **data})
    assert done.status_code == 200 and "data-selfentry-clear" in done.content.decode()

    records = {r.form_id: r for r in FormRecord.objects.filter(participant=p, visit__visit_id="w4")}
    assert {f: r.state for f, r in records.items()} == {"nrs": "complete", "koos": "complete"}
    assert records["nrs"].items == {"nrs_pain": NRS_ANSWER}
    assert records["koos"].items == KOOS_ANSWERS
    # the instruments' own scores of the same answers, and the KOOS worked out by hand
    nrs_score = score("nrs", [NRS_ANSWER])
    koos_score = score("koos", [KOOS_ANSWERS[i] for i in KOOS_IDS])
    assert records["nrs"].computed["score"] == nrs_score.score == 7.0
    for key, value in koos_by_hand(KOOS_ANSWERS).items():
        assert records["koos"].computed[key] == koos_score.summary[key] == pytest.approx(value)
    # the eCRF path for the same answers stores the same results
    for form_id, items in (("nrs", {"nrs_pain": NRS_ANSWER}), ("koos", KOOS_ANSWERS)):
        rec = vs.save_form(actor=users["coordinator"], participant_id=twin.pk, visit_key="w4", form_id=form_id,
                           items=items, complete=True)
        assert records[form_id].computed == rec.computed and records[form_id].items == rec.items
    # the audit trail names the participant as the source
    for rec in records.values():
        from annulus.audit.models import AuditEvent

        event = AuditEvent.objects.filter(object_type="crf_form", object_id=str(rec.pk)).get()
        assert event.actor_username == services.PARTICIPANT_USERNAME
        assert json.loads(event.payload)["changes"]["source"] == "participant"
    # the questionnaire is done: the visit's status says so, and no new link can be issued
    assert selectors.questionnaire_statuses([(p.pk, "w4")])[(p.pk, "w4")]["status"] == selectors.DONE
    with pytest.raises(Exception) as info:
        services.issue_link(actor=users["coordinator"], participant_id=p.pk, visit_key="w4")
    assert "no patient-reported questionnaire" in str(info.value)


@pytest.mark.req("X-1.3", "X-5.7")
def test_an_nrs_outside_the_scale_is_a_plain_problem_and_nothing_is_saved(at_week4, client_for):
    p = at_week4()
    path, code, _ = _issue(client_for, p, key="w4")
    phone = _browser("en")
    html = _post(phone, path, {"action": "code", "code": code}).content.decode()
    proof = re.search(r'name="proof" value="([^"]+)"', html).group(1)
    back = _post(phone, path, {"action": "submit", "proof": proof, "nrs-nrs_pain": "11",
                               **{f"koos-{k}": str(v) for k, v in KOOS_ANSWERS.items()}})
    page = back.content.decode()
    assert back.status_code == 400
    assert "Question 1, “On average, how bad was the pain in your study knee" in page
    assert "Please give a number between 0 and 10." in page
    assert 'id="err-nrs-nrs_pain"' in page and "ends-nrs-nrs_pain err-nrs-nrs_pain" in page
    assert not FormRecord.objects.filter(participant=p, form_id__in=["nrs", "koos"]).exists()
    # the KOOS answers sent are kept on the page sent back, the NRS not chosen
    assert re.search(r'name="koos-s1" value="1" checked', page)
    assert not re.search(r'name="nrs-nrs_pain" value="\d+" checked', page)


@pytest.mark.req("X-1.3")
def test_a_link_leaves_out_what_the_staff_completed_and_staff_entry_counts_as_entered(at_week4, users):
    p = at_week4()
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w4", form_id="koos", items=KOOS_ANSWERS,
                 complete=True)
    issued = services.issue_link(actor=users["coordinator"], participant_id=p.pk, visit_key="w4")
    assert issued.link.instruments == ["nrs"]  # the KOOS is complete: only the NRS is asked
    assert selectors.questionnaire_statuses([(p.pk, "w4")])[(p.pk, "w4")]["status"] == selectors.ISSUED
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w4", form_id="nrs",
                 items={"nrs_pain": 3}, complete=True)
    assert selectors.questionnaire_statuses([(p.pk, "w4")])[(p.pk, "w4")]["status"] == selectors.ENTERED
