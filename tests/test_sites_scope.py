"""Sites, continued: every list that shows participants or their data shows a user limited to sites
only those sites' participants (calls, overdue visits, adverse events, SAE clocks, tasks, queries,
review findings, the pharmacy, the pre-lock checklist, dashboards, notifications, DSMB reports);
case numbers are one series for the trial or one per site, as the protocol says (P-7.2, X-7.3,
P-1.1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from annulus.accounts.models import Membership
from annulus.participants.models import Participant
from annulus.protocol import ProtocolError, parse_protocol
from tests.conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD, postgres_url, race

from .api_clients import Token
from .test_sites import SHIPPED, TWO_SITES, browser, post, scoped_user
from .test_sites_write_routes import two_site_trial  # noqa: F401 - a fixture


def _fresh(user):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=user.pk)


def _scope(user, sites):
    Membership.objects.filter(user=user).update(sites=sites)
    return _fresh(user)


def _shows(html: str, p) -> bool:
    """Whether a page names the participant: a link to it, its screening number or an adverse
    event's label."""
    marks = [f"/participants/{p.pk}/", p.screening_number] + ([f"{p.case_number}-AE"] if p.case_number else [])
    return any(m in html for m in marks)


@pytest.fixture
def split(two_site_trial, users):
    """The trial of the write-route tests with the participant in follow-up (adverse events, SAE
    reports, tasks, a finding, a draft form) moved to site B; the rest stay at site 01."""
    t = two_site_trial
    Participant.objects.filter(pk=t["f"].pk).update(site="B")
    t["f"] = Participant.objects.get(pk=t["f"].pk)
    return t


@pytest.mark.req("P-7.2")
def test_safety_lists_show_only_the_users_sites(split, users):
    f = split["f"]
    for sites, sees in ((["01"], False), (["B"], True)):
        inv = _scope(users["investigator"], sites)
        c = browser(inv)
        for url in ("/safety/?listing=all", "/safety/?listing=serious", "/safety/sae/?show=all", "/"):
            assert _shows(c.get(url).content.decode(), f) is sees, (sites, url)
        csv = c.get("/safety/?listing=all&format=csv").content.decode("utf-8-sig")
        assert (f"{f.case_number}-AE" in csv) is sees
        api = Token(inv)
        assert ({e["participant_id"] for e in api.get("/api/v1/safety/adverse-events").json()} == {f.pk}) is sees
        assert bool(api.get("/api/v1/safety/sae-reports").json()) is sees
        assert bool(api.get("/api/v1/safety/ae-tasks").json()) is sees
        ae = split["ae"]
        assert c.get(f"/safety/adverse-events/{ae.pk}/").status_code == (200 if sees else 404)
        assert api.get(f"/api/v1/safety/adverse-events/{ae.pk}").status_code == (200 if sees else 404)
        assert c.get(f"/safety/tasks/{split['task_page'].pk}/").status_code == (200 if sees else 404)


@pytest.mark.req("P-7.2")
def test_queries_findings_and_overdue_show_only_the_users_sites(split, users):
    f, con = split["f"], split["con"]  # the queries are on the consented participant, at site 01
    for sites in (["01"], ["B"]):
        at_b = sites == ["B"]
        monitor = _scope(users["monitor"], sites)
        page = browser(monitor).get("/queries/").content.decode()
        assert _shows(page, con) is not at_b
        assert bool(Token(monitor).get("/api/v1/queries").json()) is not at_b
        q = split["query_open"]
        assert browser(monitor).get(f"/queries/{q.pk}/").status_code == (404 if at_b else 200)
        auditor = _scope(users["auditor"], sites)
        assert _shows(browser(auditor).get("/monitoring/findings/").content.decode(), f) is at_b
        assert bool(Token(auditor).get("/api/v1/monitoring/findings").json()) is at_b
        assert browser(auditor).get(f"/monitoring/findings/{split['finding'].pk}/").status_code == (200 if at_b else 404)
        coordinator = _scope(users["coordinator"], sites)
        overdue = browser(coordinator).get("/visits/overdue/").content.decode()
        assert _shows(overdue, f) is at_b  # the 1-week ODI form of the participant in follow-up is a draft


@pytest.mark.req("P-7.2")
def test_the_pharmacy_and_the_lock_checklist_show_only_the_users_sites(split, users):
    from annulus.allocation.models import Envelope
    from annulus.allocation.services import waived_participant

    f = split["f"]
    f_code = Envelope.objects.get(participant=f).drug_code
    others = set(Envelope.objects.filter(participant__isnull=False).exclude(participant=f)
                 .values_list("drug_code", flat=True))
    for sites in (["01"], ["B"]):
        at_b = sites == ["B"]
        pharmacist = _scope(users["pharmacist"], sites)
        drug_codes = {e["drug_code"] for e in Token(pharmacist).get("/api/v1/allocation/pharmacy/envelopes").json()}
        assert drug_codes == ({f_code} if at_b else others) and others
        assert browser(pharmacist).get(f"/pharmacy/envelopes/{split['rel_env'].pk}/").status_code == (404 if at_b else 200)
        pi = _scope(users["pi"], sites)
        groups = Token(pi).get("/api/v1/allocation/unblinding/checklist").json()["groups"]
        owners = {waived_participant(i) for g in groups for i in g["items"]}
        assert (f.pk in owners) is at_b
        assert (split["con"].pk in owners) is not at_b


@pytest.mark.req("P-7.2")
def test_notifications_about_a_participant_reach_only_users_who_see_it(split, users):
    from annulus.safety import services as ss
    from annulus.trial.models import Notification

    from .test_lock_write_routes import AE_FIELDS

    _scope(users["coordinator"], ["01"])
    coordinator_b = scoped_user("coord_b", "coordinator", ["B"])
    before = set(Notification.objects.values_list("pk", flat=True))
    now = timezone.now()
    ss.record_adverse_event(actor=users["investigator"], participant_id=split["f"].pk, onset_at=now - timedelta(hours=3),
                            first_knowledge_at=now - timedelta(hours=2),
                            **{**AE_FIELDS, "term": "Sepsis", "serious": True, "serious_criteria": ["hospitalisation"],
                               "grade": 3})
    told = set(Notification.objects.exclude(pk__in=before).filter(kind="sae").values_list("user__username", flat=True))
    assert coordinator_b.username in told and "t_investigator" in told
    assert "t_coordinator" not in told


@pytest.mark.req("P-7.2")
def test_dsmb_reports_are_the_whole_trials_and_hidden_from_a_scoped_account(split, users):
    from annulus.errors import NotPermitted
    from annulus.safety import services as ss

    report = ss.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind="open")
    dsmb_b = _scope(users["dsmb"], ["B"])
    api = Token(dsmb_b)
    assert api.get("/api/v1/safety/dsmb/reports").json() == []
    assert api.get(f"/api/v1/safety/dsmb/reports/{report.pk}").status_code == 404
    assert browser(dsmb_b).get(f"/safety/dsmb/reports/{report.pk}/").status_code == 404
    with pytest.raises(NotPermitted):
        ss.generate_report(actor=dsmb_b, as_of=timezone.localdate(), kind="open")
    assert api.post("/api/v1/safety/dsmb/reports", {"kind": "open", "as_of": timezone.localdate().isoformat()}).status_code == 403
    everyone = _scope(users["dsmb"], [])
    assert [r["id"] for r in Token(everyone).get("/api/v1/safety/dsmb/reports").json()] == [report.pk]


@pytest.mark.req("P-7.2")
@pytest.mark.parametrize("language, message", [("en", "no such participant"), ("zh-hans", "no such participant")])
def test_the_call_list_refuses_a_call_for_another_sites_participant(split, users, language, message):
    from annulus.visits.models import ReminderCall

    coordinator = _scope(users["coordinator"], ["01"])
    c = browser(coordinator, language)
    r = post(c, "/visits/calls/", {"participant": split["f"].pk, "visit": "m1", "outcome": "reached",
                                  "visit_on": (timezone.localdate() + timedelta(days=1)).isoformat()})
    assert r.status_code == 302
    page = c.get(r["Location"]).content.decode()
    assert message in page
    assert not ReminderCall.objects.exists()


@pytest.mark.req("P-7.2")
@pytest.mark.parametrize("language, required", [("en", "This field is required"), ("zh-hans", "这个字段是必填项")])
def test_raising_a_query_on_another_sites_participant_names_the_participant(split, users, language, required):
    from annulus.queries.models import Query

    monitor = _scope(users["monitor"], ["01"])
    c = browser(monitor, language)
    count = Query.objects.count()
    r = post(c, f"/queries/new/?participant={split['f'].pk}", {
        "participant": split["f"].pk, "visit": "", "form": "", "record": 0, "item": "", "assigned_to": "site",
        "text": "Please check"})
    page = r.content.decode()
    assert r.status_code == 200 and f"participant: no participant &#x27;{split['f'].pk}&#x27;" in page
    assert Query.objects.count() == count
    r = post(c, "/queries/new/", {"participant": split["f"].pk, "visit": "", "form": "", "record": 0, "item": "",
                                  "assigned_to": "site", "text": ""})
    assert r.status_code == 200 and required in r.content.decode()
    assert "no participant" in r.content.decode() and Query.objects.count() == count


# ---- case numbers -------------------------------------------------------------------------------

def _protocol(case_numbers: str | None, method: str = "stratified_blocks") -> str:
    data = yaml.safe_load(SHIPPED)
    data["sites"] = TWO_SITES
    data["version"] = "1.1"
    rand = data.setdefault("randomisation", {})
    rand["method"] = method
    if method == "stratified_blocks":
        rand["strata"] = [{"id": "site", "from": "site", "levels": ["A", "B"]}]
    if case_numbers is not None:
        rand["case_numbers"] = case_numbers
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@pytest.mark.req("P-1.1")
def test_per_site_case_numbers_need_allocation_by_site():
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(_protocol("per_site", method="permuted_blocks"))
    [error] = [e for e in exc.value.errors if "case_numbers" in e]
    assert error.startswith("randomisation") and "permuted_blocks" in error and "stratified_blocks" in error
    assert parse_protocol(_protocol("per_site")).randomisation.case_numbers == "per_site"
    assert parse_protocol(SHIPPED).randomisation.case_numbers == "global"
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(_protocol("by_site"))
    assert any("case_numbers" in e for e in exc.value.errors)


def _eligible(users, site: str):
    from annulus.participants import services as ps

    coord, inv = users["coordinator"], users["investigator"]
    today = timezone.localdate()
    p = ps.prescreen(actor=coord, initials="TP", sex="F", recruitment_source="inpatient_referral",
                     prescreened_on=today - timedelta(days=10), site=site)
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=9), taken_by=inv)
    ps.enter_evidence(actor=coord, participant_id=p.pk, values=ELIGIBLE_EVIDENCE, collected_on=today - timedelta(days=8))
    ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD)
    return p


@pytest.mark.req("P-1.1", "P-7.2")
@pytest.mark.parametrize("case_numbers, expected", [
    (None, ["001", "002", "003", "004"]),
    ("global", ["001", "002", "003", "004"]),
    ("per_site", ["A-001", "B-001", "A-002", "B-002"]),
])
def test_case_numbers_by_the_protocol(users, case_numbers, expected):
    from annulus.audit.models import AuditEvent
    from annulus.participants import services as ps
    from annulus.trial.services import load_protocol_version

    load_protocol_version(actor=None, text=_protocol(case_numbers))
    people = [_eligible(users, site) for site in ("A", "B", "A", "B")]
    for p in people:
        ps.enrol(actor=users["investigator"], participant_id=p.pk)
    numbers = [Participant.objects.get(pk=p.pk).case_number for p in people]
    assert numbers == expected
    reasons = set(AuditEvent.objects.filter(object_type="participant", object_id=str(people[2].pk), action="change",
                                            reason__startswith="enrolled as case").values_list("reason", flat=True))
    assert reasons == {f"enrolled as case {expected[2]}"}


@pytest.mark.req("P-1.1")
@pytest.mark.parametrize("language, said", [("en", "Enrolled as case B-002."), ("zh-hans", "已入组，病例号 B-002。")])
def test_the_enrolment_page_gives_the_sites_next_number(users, language, said):
    from annulus.trial.services import load_protocol_version

    load_protocol_version(actor=None, text=_protocol("per_site"))
    _eligible(users, "B")
    p = _eligible(users, "B")
    from annulus.participants import services as ps

    ps.enrol(actor=users["investigator"], participant_id=Participant.objects.filter(site="B").first().pk)
    c = browser(users["investigator"], language)
    r = c.post(f"/participants/{p.pk}/enrol/", {"confirm": "yes", "csrfmiddlewaretoken": c.cookies["csrftoken"].value},
               follow=True)
    assert r.status_code == 200 and said in r.content.decode()
    assert Participant.objects.get(pk=p.pk).case_number == "B-002"


# ---- at the same moment, on PostgreSQL -------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")
@pytest.mark.req("P-1.1", "P-7.2")
def test_concurrent_enrolments_at_two_sites_take_each_number_once(committed_db, users):
    from annulus.participants import services as ps
    from annulus.trial.services import load_protocol_version

    load_protocol_version(actor=None, text=_protocol("per_site"))
    people = [_eligible(users, site) for site in ["A"] * 6 + ["B"] * 6]
    results = race([lambda p=p: ps.enrol(actor=users["investigator"], participant_id=p.pk) for p in people])
    # an enrolment that met another at the same moment may be refused, never given a taken number
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(getattr(r, "field", None) == "case_number" for r in refused), refused[:3]
    numbers = list(Participant.objects.filter(case_number__isnull=False).values_list("site", "case_number"))
    for site in ("A", "B"):
        mine = sorted(n for s, n in numbers if s == site)
        assert mine == [f"{site}-{i:03d}" for i in range(1, len(mine) + 1)]
    assert len(numbers) == len(people) - len(refused) and len(refused) <= 2

