"""The procedures whose causality an adverse event is assessed for are the protocol's
(``safety.causality_of``): the first trial asks for the liposuction and the injection procedure
besides the study product; the knee trial (an oral drug in kits) only for the product. Form,
API, service, casebook content, data dictionary and simulator follow the protocol; the first
trial's fields keep their names, labels and casebook content (X-1.3, X-6.5)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from annulus.errors import RuleViolation, RuleViolations
from annulus.safety.models import AdverseEvent
from annulus.safety.services import record_adverse_event, update_adverse_event

from .knee_support import KNEE, knee_enrolled

FIRST = Path(__file__).resolve().parent.parent / "protocols" / "dlbp-admsc.yaml"
PROCEDURE_FIELDS = ("causality_liposuction", "causality_injection")


@pytest.fixture
def knee(settings):
    settings.ANNULUS_PROTOCOL_FILE = str(KNEE)


@pytest.fixture
def knee_users(knee, users):
    """The users of the knee trial, in force (``knee`` is set up before ``users`` loads it)."""
    from annulus.trial.selectors import active_protocol

    assert active_protocol().trial.id.startswith("knee") or not active_protocol().safety.causality_of
    return users


def _event(**changes) -> dict:
    return {"term": "Nausea", "onset_at": timezone.now() - timedelta(hours=2), "serious": False,
            "serious_criteria": [], "grade": 1, "causality_product": "possible", "expectedness": "expected",
            "action_taken": "none", "outcome": "recovering", **changes}


def _csrf_client(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


def _select(html: str, name: str) -> str:
    found = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    assert found, name
    return found.group(0)


# ---- the knee trial: the product's causality only ---------------------------------------------

@pytest.mark.req("X-1.3")
@pytest.mark.req("X-6.5")
@pytest.mark.parametrize("language,product_label,absent", [
    ("en", "Causality: study product", ["liposuction", "injection procedure", "Liposuction"]),
    ("zh-hans", "相关性：研究产品", ["吸脂", "注射操作"]),
])
def test_the_knee_form_asks_for_the_products_causality_only(knee_users, language, product_label, absent):
    users = knee_users
    p = knee_enrolled(users)
    c = _csrf_client(users["investigator"], language)
    url = f"/participants/{p.pk}/adverse-events/new/"
    r = c.get(url)
    assert r.status_code == 200
    html = r.content.decode()
    assert 'name="causality_product"' in html and product_label in html
    for name in PROCEDURE_FIELDS:
        assert f'name="{name}"' not in html
    for word in absent:
        assert word not in html, word
    assert [n for n in r.context["form"].fields if n.startswith("causality_")] == ["causality_product"]
    # no answer pre-selected
    assert not re.search(r'<option value="[^"]+" selected', _select(html, "causality_product"))

    onset = timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    form = {"csrfmiddlewaretoken": c.cookies["csrftoken"].value, "term": "Nausea", "onset_at": onset,
            "serious": "no", "grade": "1", "causality_product": "possible", "expectedness": "expected",
            "action_taken": "none", "outcome": "recovering"}
    r = c.post(url, form)
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    ae = AdverseEvent.objects.get(participant=p)
    assert (ae.causality, ae.causality_product) == ({}, "possible")
    rev = ae.revisions.get()
    assert [k for k in rev.data if k.startswith("causality_")] == ["causality_product"]

    detail = c.get(f"/safety/adverse-events/{ae.pk}/").content.decode()
    assert ("Study product" if language == "en" else "研究产品") in detail
    for word in absent:
        assert word not in detail, word
    listing = c.get("/safety/?format=csv").content.decode("utf-8-sig")
    header = listing.splitlines()[0].split(",")
    assert [h for h in header if h.startswith("causality_")] == ["causality_product"]


@pytest.mark.req("X-1.3")
@pytest.mark.req("X-6.5")
def test_the_knee_api_takes_and_gives_the_products_causality_only(knee_users):
    from annulus.accounts.services import issue_token

    users = knee_users
    p = knee_enrolled(users)
    key = issue_token(user=users["investigator"], name="script")
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"participant_id": p.pk, "term": "Dyspepsia", "onset_at": timezone.now().isoformat(), "serious": False,
            "grade": 1, "causality_product": "unlikely", "expectedness": "expected", "action_taken": "none",
            "outcome": "recovering"}
    r = api.post("/api/v1/safety/adverse-events", json.dumps(body), content_type="application/json")
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["causality_product"] == "unlikely"
    assert [k for k in out if k.startswith("causality_")] == ["causality_product"]

    # a causality of the first trial's procedures is no field of this trial: refused, named
    r = api.post("/api/v1/safety/adverse-events", json.dumps({**body, "causality_liposuction": "not_applicable"}),
                 content_type="application/json")
    assert r.status_code == 400, r.content
    assert [d["field"] for d in r.json()["detail"]] == ["causality_liposuction"]
    r = api.patch(f"/api/v1/safety/adverse-events/{out['id']}",
                  json.dumps({"reason": "re-assessed", "causality_injection": "possible"}),
                  content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "causality_injection"
    assert AdverseEvent.objects.count() == 1
    r = api.patch(f"/api/v1/safety/adverse-events/{out['id']}",
                  json.dumps({"reason": "re-assessed", "causality_product": "possible"}), content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["causality_product"] == "possible"


@pytest.mark.req("X-6.5")
def test_the_knee_service_refuses_an_undeclared_causality_naming_it(knee_users):
    users = knee_users
    p = knee_enrolled(users)
    with pytest.raises(RuleViolations) as exc:
        record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                             **_event(causality_liposuction="not_applicable", causality_injection="not_applicable"))
    assert {v.field for v in exc.value.violations} == set(PROCEDURE_FIELDS)
    assert "not a causality this protocol assesses" in str(exc.value)
    ae = record_adverse_event(actor=users["investigator"], participant_id=p.pk, **_event())
    assert ae.causality == {}
    with pytest.raises(AttributeError):
        ae.causality_liposuction  # noqa: B018 - the knee trial holds no such causality


# ---- the first trial: both procedures, as before ----------------------------------------------

@pytest.mark.req("X-1.3")
@pytest.mark.req("X-6.5")
@pytest.mark.parametrize("language,labels", [
    ("en", ["Causality: liposuction", "Causality: injection procedure", "Causality: study product"]),
    ("zh-hans", ["相关性：吸脂术", "相关性：注射操作", "相关性：研究产品"]),
])
def test_the_first_trials_form_asks_for_both_procedures_as_before(users, make_participant, language, labels):
    p = make_participant("enrolled")
    c = _csrf_client(users["investigator"], language)
    r = c.get(f"/participants/{p.pk}/adverse-events/new/")
    html = r.content.decode()
    names = [n for n in r.context["form"].fields if n.startswith("causality_")]
    assert names == ["causality_liposuction", "causality_injection", "causality_product"]
    assert [str(r.context["form"].fields[n].label) for n in names] == labels
    for name, label in zip(names, labels, strict=True):
        assert label in html
        assert not re.search(r'<option value="[^"]+" selected', _select(html, name)), name
    # the order of the form: grade, the causalities, expectedness
    fields = list(r.context["form"].fields)
    assert fields.index("grade") + 1 == fields.index("causality_liposuction")
    assert fields.index("causality_product") + 1 == fields.index("expectedness")


@pytest.mark.req("X-6.5")
def test_the_first_trial_refuses_an_undeclared_and_a_missing_causality_at_once(users, make_participant):
    p = make_participant("enrolled")
    with pytest.raises(RuleViolations) as exc:
        record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                             **_event(causality_liposuction="not_related", causality_harvest="unlikely"))
    fields = {v.field: v.message for v in exc.value.violations}
    assert set(fields) == {"causality_harvest", "causality_injection"}
    assert "causality_liposuction, causality_injection, causality_product" in fields["causality_harvest"]
    assert "must be one of" in fields["causality_injection"]
    assert AdverseEvent.objects.count() == 0
    ae = record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                              **_event(causality_liposuction="not_related", causality_injection="not_applicable"))
    assert ae.causality == {"liposuction": "not_related", "injection": "not_applicable"}
    ae.refresh_from_db()
    assert (ae.causality_liposuction, ae.causality_injection) == ("not_related", "not_applicable")
    with pytest.raises(RuleViolation) as one:
        update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="x",
                             causality_transplant="possible")
    assert one.value.field == "causality_transplant"
    ae = update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="re-assessed",
                              causality_injection="possible")
    assert ae.causality == {"liposuction": "not_related", "injection": "possible"}
    from annulus.audit.models import AuditEvent

    change = AuditEvent.objects.filter(object_type="adverse_event", action="change").get()
    assert json.loads(change.payload)["changes"] == {"causality_injection": ["not_applicable", "possible"]}


@pytest.mark.req("X-1.3")
def test_the_first_trials_casebook_content_of_an_event_is_unchanged(users, make_participant):
    """The content a signature hashes: the keys and values of a first-trial event as the casebook
    built them when the two causalities were columns of their own."""
    from annulus.casebooks.selectors import canonical_json, casebook_content

    p = make_participant("enrolled")
    onset = (timezone.now() - timedelta(minutes=10)).replace(microsecond=0)
    at = onset.astimezone(dt_timezone.utc).isoformat()
    record_adverse_event(actor=users["investigator"], participant_id=p.pk, term="Bruising", onset_at=onset,
                         serious=False, serious_criteria=[], grade=1, causality_liposuction="probable",
                         causality_injection="not_applicable", causality_product="not_applicable",
                         expectedness="expected", action_taken="none", outcome="recovering")
    content = casebook_content(p)["adverse_events"]
    assert content == {"AE1": {
        "term": "Bruising", "meddra_pt_code": "", "meddra_version": "", "description": "",
        "onset_at": at, "end_at": None, "serious": False, "serious_criteria": [],
        "grade": 1, "causality_liposuction": "probable", "causality_injection": "not_applicable",
        "causality_product": "not_applicable", "expectedness": "expected", "action_taken": "none",
        "outcome": "recovering", "first_knowledge_at": None, "revision": 1}}
    assert canonical_json(content) == (
        '{"AE1":{"action_taken":"none","causality_injection":"not_applicable","causality_liposuction":"probable",'
        '"causality_product":"not_applicable","description":"","end_at":null,"expectedness":"expected",'
        '"first_knowledge_at":null,"grade":1,"meddra_pt_code":"","meddra_version":"",'
        f'"onset_at":"{at}","outcome":"recovering","revision":1,"serious":false,'
        '"serious_criteria":[],"term":"Bruising"}}')


@pytest.mark.req("X-1.3")
def test_the_knee_casebook_content_has_the_products_causality_only(knee_users):
    from annulus.casebooks.selectors import casebook_content

    p = knee_enrolled(knee_users)
    record_adverse_event(actor=knee_users["investigator"], participant_id=p.pk, **_event())
    (ae,) = casebook_content(p)["adverse_events"].values()
    assert [k for k in ae if k.startswith("causality_")] == ["causality_product"]


# ---- the protocol, the dictionary, the simulator ------------------------------------------------

def _protocol_with(text: str, causality_of: str):
    from annulus.protocol import parse_protocol

    start = text.index("  causality_of:\n")
    end = text.index("  sae_recipients:", start)
    return parse_protocol(text[:start] + causality_of + text[end:])


@pytest.mark.req("X-1.3")
def test_the_protocol_declares_the_procedures_and_the_schema_checks_them():
    from annulus.protocol import ProtocolError, load_protocol

    first, knee = load_protocol(FIRST), load_protocol(KNEE)
    assert [(c.id, c.name.en, c.name.zh, c.procedure, c.field, c.qnam) for c in first.safety.causality_of] == [
        ("liposuction", "liposuction", "吸脂术", "liposuction", "causality_liposuction", "AERELLIP"),
        ("injection", "injection procedure", "注射操作", "transplant", "causality_injection", "AERELINJ")]
    assert knee.safety.causality_of == []
    text = FIRST.read_text(encoding="utf-8")
    with pytest.raises(ProtocolError) as exc:
        _protocol_with(text, "  causality_of:\n    - {id: harvest, name: {en: harvest, zh: 采集}, procedure: biopsy}\n")
    assert any("safety.causality_of[0].procedure" in e and "'biopsy' is not a declared procedure" in e
               for e in exc.value.errors), exc.value.errors
    with pytest.raises(ProtocolError) as exc:
        _protocol_with(text, "  causality_of:\n"
                             "    - {id: lipo, name: {en: a, zh: 甲}, procedure: liposuction}\n"
                             "    - {id: lipo, name: {en: b, zh: 乙}, procedure: transplant}\n"
                             "    - {id: product, name: {en: c, zh: 丙}, procedure: transplant}\n")
    message = "\n".join(exc.value.errors)
    assert "causality_of[1]: 'lipo' is listed twice" in message
    assert "causality_of[2].id" in message
    with pytest.raises(ProtocolError) as exc:
        _protocol_with(text, "  causality_of:\n    - {id: Lipo, name: {en: a, zh: 甲}, procedure: liposuction}\n")
    assert any("causality_of" in e and "id" in e for e in exc.value.errors), exc.value.errors
    named = _protocol_with(text, "  causality_of:\n"
                                 "    - {id: harvest, name: {en: a, zh: 甲}, procedure: liposuction, sdtm_qnam: AERELHV}\n")
    assert named.safety.causality_of[0].qnam == "AERELHV"


@pytest.mark.req("X-1.3")
def test_the_data_dictionary_has_one_item_per_declared_procedure():
    from annulus.dictionary.build import build
    from annulus.protocol import load_protocol

    first = build(load_protocol(FIRST)).form("adverse_event")
    rows = [(e.item, e.label_en, e.label_zh, e.sdtm_domain, e.sdtm_testcd, e.sdtm_variable, e.required)
            for e in first.items if e.item.startswith("causality_")]
    assert rows == [
        ("causality_liposuction", "Causality: liposuction", "因果关系：吸脂术", "AE", "AERELLIP", "QVAL", True),
        ("causality_injection", "Causality: injection procedure", "因果关系：注射操作", "AE", "AERELINJ", "QVAL", True),
        ("causality_product", "Causality: study product", "因果关系：研究产品", "AE", "", "AEREL", True)]
    items = [e.item for e in first.items]
    assert items.index("grade") + 1 == items.index("causality_liposuction")
    knee = build(load_protocol(KNEE)).form("adverse_event")
    assert [e.item for e in knee.items if e.item.startswith("causality_")] == ["causality_product"]


@pytest.mark.req("X-1.3")
def test_the_simulator_judges_each_declared_procedure_on_a_stream_of_its_own():
    from datetime import date

    from annulus.protocol import load_protocol
    from annulus.simulator.adverse_events import TreatedParticipant, simulate_protocol_adverse_events

    first = load_protocol(FIRST)
    bare = first.model_copy(update={"safety": first.safety.model_copy(update={"causality_of": []})})
    people = [TreatedParticipant(i, date(2025, 1, 1), date(2025, 1, 22), "high") for i in range(1, 60)]
    judged = simulate_protocol_adverse_events(first, people, seed=11, today=date(2026, 1, 1))
    plain = simulate_protocol_adverse_events(bare, people, seed=11, today=date(2026, 1, 1))
    assert judged and len(judged) == len(plain)
    for a, b in zip(judged, plain, strict=True):
        assert {k: v for k, v in a.fields.items() if k not in PROCEDURE_FIELDS} == b.fields
        assert not set(PROCEDURE_FIELDS) & set(b.fields)
        for name in PROCEDURE_FIELDS:
            assert a.fields[name] in ("not_applicable", "not_related", "unlikely")
        # the injection is the treatment: not yet done before it, judged after
        before = a.fields["onset_at"].date() < date(2025, 1, 22)
        assert (a.fields["causality_injection"] == "not_applicable") == before
    assert {a.fields["causality_liposuction"] for a in judged} == {"not_related", "unlikely"}


# ---- the migration ------------------------------------------------------------------------------

@pytest.mark.req("X-1.3")
def test_the_migration_moves_each_held_value_under_its_id():
    from importlib import import_module

    m = import_module("annulus.safety.migrations.0005_ae_causality_by_protocol")
    assert m.causality_of({"causality_liposuction": "probable", "causality_injection": "not_applicable"}) == {
        "liposuction": "probable", "injection": "not_applicable"}
    assert m.causality_of({"causality_liposuction": "", "causality_injection": "possible"}) == {"injection": "possible"}
    assert m.causality_of({"causality_liposuction": "", "causality_injection": ""}) == {}


@pytest.mark.req("X-1.3")
def test_the_migration_copies_the_two_columns_into_the_causality(committed_db, users, make_participant):
    """Migrated back to the two columns and forward again: each value held moves under its id."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    p = make_participant("enrolled")
    before, after = [("safety", "0004_dsmb_report_chinese")], [("safety", "0005_ae_causality_by_protocol")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps.get_model("safety", "AdverseEvent")
        common = {"participant_id": p.pk, "term": "Bruising", "onset_at": timezone.now(), "grade": 1,
                  "causality_product": "not_applicable", "expectedness": "expected", "action_taken": "none",
                  "outcome": "recovering", "protocol_version_id": p.protocol_version_id,
                  "created_by_id": users["investigator"].pk}
        a = old.objects.create(number=1, causality_liposuction="probable", causality_injection="not_applicable",
                               **common)
        b = old.objects.create(number=2, causality_liposuction="", causality_injection="possible", **common)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
    moved = dict(AdverseEvent.objects.values_list("pk", "causality"))
    assert moved == {a.pk: {"liposuction": "probable", "injection": "not_applicable"}, b.pk: {"injection": "possible"}}
    columns = {c.name for c in connection.introspection.get_table_description(connection.cursor(),
                                                                              AdverseEvent._meta.db_table)}
    assert "causality" in columns and not columns & set(PROCEDURE_FIELDS)


@pytest.mark.req("X-1.3")
@pytest.mark.req("X-6.5")
def test_the_knee_demo_records_its_events_with_the_products_causality_only(knee_users, monkeypatch):
    from annulus.participants.models import Consent, Participant
    from annulus.safety import demo
    from annulus.safety.models import DsmbReport
    from annulus.trial.demo import DemoContext

    users = knee_users
    people = [knee_enrolled(users) for _ in range(8)]
    for i, p in enumerate(people):
        Participant.objects.filter(pk=p.pk).update(enrolled_at=timezone.now() - timedelta(days=300 - 20 * i))
        Consent.objects.filter(participant=p).update(consented_at=timezone.now() - timedelta(days=310 - 20 * i))
    monkeypatch.setattr(demo, "_treated_on", lambda protocol, p, today: (
        timezone.localtime(p.enrolled_at).date() + timedelta(days=5)))
    ctx = DemoContext(seed=2022, today=timezone.localdate(), users=users, enrolled=[p.pk for p in people])
    demo.adverse_events_all(ctx)
    events = list(AdverseEvent.objects.all())
    assert len(events) > 3  # the simulator's events were accepted, besides the three written out
    assert all(ae.causality == {} for ae in events)
    assert any(ae.term == "Drug-induced liver injury" for ae in events)
    report = DsmbReport.objects.filter(kind="open").first()
    assert report is not None
    assert "Related to the study product" in report.html
    assert "liposuction" not in report.html and "injection procedure" not in report.html


@pytest.mark.req("X-6.5")
@pytest.mark.parametrize("language,detail,report", [
    ("en", ["<th>Liposuction</th><td>not related</td>", "<th>Injection procedure</th><td>possible</td>"],
     "liposuction: not related · injection procedure: possible · study product"),
    ("zh-hans", ["<th>吸脂术</th>", "<th>注射操作</th>"], "吸脂术: "),
])
def test_the_first_trials_event_and_sae_report_show_both_procedures(users, make_participant, language, detail,
                                                                    report):
    p = make_participant("enrolled")
    now = timezone.now()
    ae = record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Discitis", onset_at=now - timedelta(days=1),
        serious=True, serious_criteria=["hospitalisation"], grade=3, causality_liposuction="not_related",
        causality_injection="possible", causality_product="possible", expectedness="expected",
        action_taken="treatment", outcome="not_recovered", first_knowledge_at=now - timedelta(hours=1))
    c = _csrf_client(users["investigator"], language)
    html = c.get(f"/safety/adverse-events/{ae.pk}/").content.decode()
    for text in detail:
        assert text in html, text
    html = c.get(f"/safety/sae/reports/{ae.sae_reports.first().pk}/").content.decode()
    assert report in html
