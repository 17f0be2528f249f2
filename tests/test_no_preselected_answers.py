"""No clinical answer is pre-selected anywhere: every form class of the project, every
eCRF form of the protocol and the pages that show a new record start with empty choices (an
empty first option, nothing selected or checked) and no pre-filled number; the person answering
must choose."""

from __future__ import annotations

import importlib
from html.parser import HTMLParser

import pytest
from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model

from annulus.protocol import default_protocol_path, load_protocol
from annulus.visits import crf


class _Controls(HTMLParser):
    """Every <select> (its options, which are selected) and every checked radio/checkbox."""

    def __init__(self):
        super().__init__()
        self.selects: list[dict] = []
        self.checked: list[str] = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select":
            self._current = {"name": a.get("name"), "options": []}
            self.selects.append(self._current)
        elif tag == "option" and self._current is not None:
            self._current["options"].append((a.get("value"), "selected" in a))
        elif tag == "input" and a.get("type") in ("radio", "checkbox") and "checked" in a:
            self.checked.append(a.get("name"))

    def handle_endtag(self, tag):
        if tag == "select":
            self._current = None


def controls(html: str) -> _Controls:
    parser = _Controls()
    parser.feed(html)
    return parser


def assert_nothing_chosen(html: str, where: str, *, ignore=()) -> int:
    found = controls(html)
    selects = [s for s in found.selects if s["name"] not in ignore]
    for s in selects:
        assert s["options"], f"{where}: select {s['name']} has no options"
        assert s["options"][0][0] == "", f"{where}: select {s['name']} does not start with an empty option"
        chosen = [v for v, sel in s["options"] if sel and v != ""]
        assert not chosen, f"{where}: select {s['name']} pre-selects {chosen}"
    checked = [n for n in found.checked if n not in ignore]
    assert not checked, f"{where}: {checked} checked before anyone answered"
    return len(selects)


NUMBER_FIELDS = (forms.IntegerField, forms.DecimalField, forms.FloatField)


def _all_form_classes() -> list[type]:
    for config in apps.get_app_configs():
        if config.name.startswith("annulus."):
            for module in ("forms", "views"):  # forms declared beside their views count too
                try:
                    importlib.import_module(f"{config.name}.{module}")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{config.name}.{module}":
                        raise
    out, todo = [], list(forms.BaseForm.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("annulus."):
            out.append(cls)
    return sorted(set(out), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _kwargs(cls, protocol) -> list[dict]:
    """How each form class is built by its views (a new class with required arguments must be added)."""
    name = cls.__name__
    staff = get_user_model().objects.all()
    if name == "PrescreenForm":
        return [{"sources": protocol.recruitment_sources if hasattr(protocol, "recruitment_sources")
                 else ["inpatient_referral", "records_phone", "flyer_website"]}]
    if name == "ConsentForm":
        return [{"staff": staff}]
    if name == "EvidenceForm":
        return [{"protocol": protocol, "language": lang} for lang in ("en", "zh-hans")]
    if name == "UnscheduledForm":
        return [{"choices": [(f.id, f.id) for f in protocol.schedule.forms]}]
    if name == "CrfForm":
        out = []
        for f in protocol.schedule.forms:
            try:
                spec = crf.spec_for(protocol, f.id)
            except Exception:  # procedure records have no eCRF
                continue
            out += [{"spec": spec, "language": lang} for lang in ("en", "zh-hans")]
        assert out
        return out
    if name == "ReleaseForm":
        return [{"criteria": protocol.product.release_criteria}]
    if name == "TransplantForm":
        return [{"product": protocol.product}]
    if name == "UserCreateForm":
        return [{"roles": [(r.id, r.id) for r in protocol.roles]}]
    if name in ("OwnPasswordChangeForm", "AdminPasswordResetForm"):
        return [{"user": staff.first()}]
    if name == "AdverseEventForm":
        return [{}, {"with_reason": True}]
    if name == "GenerateForm" and cls.__module__ == "annulus.safety.forms":
        return [{}, {"closed": True}]
    if name == "LoginForm":
        return [{"request": None}]
    return [{}]


def test_every_form_class_starts_with_no_answer_chosen(protocol_version):
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    classes = _all_form_classes()
    names = {c.__name__ for c in classes}
    assert {"AdverseEventForm", "PrescreenForm", "LiposuctionForm", "ReminderForm", "SentForm", "CrfForm",
            "TransplantForm", "ReleaseForm", "WithdrawForm"} <= names
    checked_choice_fields = 0
    for cls in classes:
        for kwargs in _kwargs(cls, protocol):
            form = cls(**kwargs)
            where = f"{cls.__module__}.{cls.__qualname__}({', '.join(kwargs)})"
            for name, field in form.fields.items():
                bound = form[name]
                if isinstance(field, forms.ChoiceField):
                    checked_choice_fields += 1
                    assert bound.initial in (None, "", []), f"{where}.{name}: initial {bound.initial!r}"
                    assert_nothing_chosen(str(bound), f"{where}.{name}")
                elif isinstance(field, NUMBER_FIELDS) or isinstance(field.widget, forms.NumberInput):
                    assert bound.initial in (None, ""), f"{where}.{name}: pre-filled number {bound.initial!r}"
                elif isinstance(field, forms.BooleanField):
                    assert not bound.initial, f"{where}.{name}: ticked before anyone answered"
    assert checked_choice_fields > 100  # every eCRF item is among them


def test_no_ecrf_item_of_the_protocol_carries_an_answer():
    protocol = load_protocol(default_protocol_path())
    specs = []
    for f in protocol.schedule.forms:
        try:
            specs.append(crf.spec_for(protocol, f.id))
        except Exception:
            continue
    assert {s.id for s in specs} >= {"vas", "odi", "joa", "sf36", "imaging", "adverse_events", "vitals"}
    for spec in specs:
        for item in spec.items:
            if item.kind in ("code", "choice"):
                assert item.choices, f"{spec.id}.{item.id} has no choices"
                assert all(c[0] != "" for c in item.choices[1:]), f"{spec.id}.{item.id}: a blank inside the choices"
            # an item is a question: it has no answer of its own
            assert not hasattr(item, "default") and not hasattr(item, "initial"), f"{spec.id}.{item.id}"


# ---- pages that start a record ---------------------------------------------------------------

@pytest.fixture
def randomised_participant(users, make_participant):
    from annulus.allocation import testing

    return testing.randomised(users, make_participant, 1)[0]


def _get(client, url):
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code)
    return r.content.decode()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_pages_that_start_a_record_choose_nothing(users, make_participant, randomised_participant, client_for,
                                                  language):
    from annulus.allocation.models import Envelope
    from annulus.safety.models import AdverseEvent
    from annulus.safety.services import record_adverse_event
    from django.utils import timezone

    p = randomised_participant
    pre = make_participant("pre_screened")
    env = Envelope.objects.get(participant=p)
    coord = client_for("coordinator")
    inv = client_for("investigator")
    pharm = client_for("pharmacist")
    for c in (coord, inv, pharm):
        c.cookies["django_language"] = language
    # a serious event, so that the SAE "sent" form (method) can be shown
    ae = record_adverse_event(actor=users["investigator"], participant_id=p.pk, term="Fall", onset_at=timezone.now(),
                              serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=timezone.now(),
                              grade=3, causality_liposuction="not_applicable", causality_injection="not_applicable",
                              causality_product="not_applicable", expectedness="unexpected", action_taken="hospitalised",
                              outcome="recovering")
    report = ae.sae_reports.first()
    pages = [
        (coord, "/participants/new/"),
        (coord, f"/participants/{pre.pk}/consent/"),
        (coord, f"/participants/{p.pk}/withdraw/"),
        (inv, f"/participants/{p.pk}/adverse-events/new/"),
        (inv, f"/participants/{p.pk}/adverse-events/new/?term=ALT%20increased&source=lab:alt"),
        (coord, f"/participants/{p.pk}/liposuction/"),
        (inv, f"/participants/{p.pk}/transplant/"),
        (coord, f"/safety/sae/reports/{report.pk}/"),
        (pharm, f"/pharmacy/envelopes/{env.pk}/"),
    ]
    seen = 0
    for client, url in pages:
        seen += assert_nothing_chosen(_get(client, url), url, ignore=("language",))
    assert seen >= 15
    assert AdverseEvent.objects.count() == 1


def test_ae_form_left_empty_names_every_clinical_choice(users, randomised_participant, client_for):
    from django.test import Client

    from annulus.safety.models import AdverseEvent

    c = Client(enforce_csrf_checks=True)
    c.force_login(users["investigator"])
    url = f"/participants/{randomised_participant.pk}/adverse-events/new/"
    page = c.get(url)
    token = page.cookies["csrftoken"].value
    r = c.post(url, {"csrfmiddlewaretoken": token, "term": "Headache", "onset_at": "2026-01-01T10:00"})
    assert r.status_code == 200
    errors = r.context["form"].errors
    for name in ("serious", "grade", "causality_liposuction", "causality_injection", "causality_product",
                 "expectedness", "action_taken", "outcome"):
        assert name in errors, name
    assert not AdverseEvent.objects.exists()


def test_the_api_assumes_no_seriousness(users, randomised_participant):
    """An adverse event sent without 'serious' is refused naming the field, not saved as non-serious."""
    import json

    from django.test import Client
    from django.utils import timezone

    from annulus.accounts.services import issue_token
    from annulus.safety.models import AdverseEvent

    key = issue_token(user=users["investigator"], name="script")
    c = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"participant_id": randomised_participant.pk, "term": "Headache", "onset_at": timezone.now().isoformat(),
            "grade": 1, "causality_liposuction": "not_applicable", "causality_injection": "not_applicable",
            "causality_product": "not_applicable", "expectedness": "expected", "action_taken": "none",
            "outcome": "recovering"}
    r = c.post("/api/v1/safety/adverse-events", json.dumps(body), content_type="application/json")
    assert 400 <= r.status_code < 500, r.content
    assert "serious" in {d["field"] for d in r.json()["detail"]}
    assert not AdverseEvent.objects.exists()
    r = c.post("/api/v1/safety/adverse-events", json.dumps({**body, "serious": False}), content_type="application/json")
    assert r.status_code == 201, r.content


def test_the_api_assumes_no_anaesthesia_and_no_call_outcome(users, randomised_participant):
    import json

    from django.test import Client
    from django.utils import timezone

    from annulus.accounts.services import issue_token
    from annulus.visits.models import Liposuction, ReminderCall

    c = Client(enforce_csrf_checks=True,
               HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users['investigator'], name='script')}")
    r = c.post(f"/api/v1/visits/participants/{randomised_participant.pk}/liposuction",
               json.dumps({"performed_on": timezone.localdate().isoformat(), "fat_volume_ml": 150,
                           "observation_hours": 4}), content_type="application/json")
    assert 400 <= r.status_code < 500 and "anaesthesia" in {d["field"] for d in r.json()["detail"]}, r.content
    assert not Liposuction.objects.exists()
    r = c.post("/api/v1/visits/reminders", json.dumps({"participant_id": randomised_participant.pk, "visit": "w1",
                                                       "visit_on": timezone.localdate().isoformat()}),
               content_type="application/json")
    assert 400 <= r.status_code < 500 and "outcome" in {d["field"] for d in r.json()["detail"]}, r.content
    assert not ReminderCall.objects.exists()
