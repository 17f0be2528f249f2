"""Sites: the protocol declares them (or has one, ``trial.site``); each participant belongs to one,
chosen at pre-screening when there are several; a user scoped to sites finds only those sites'
participants on pages, in the API, in lists, dashboard counts and exports."""

from __future__ import annotations

import importlib
import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from annulus.protocol import ProtocolError, parse_protocol
from annulus.protocol.schema import DEFAULT_SITE_ID

from .api_clients import Token
from .conftest import TEST_PASSWORD

SHIPPED = open("protocols/dlbp-admsc.yaml", encoding="utf-8").read()
TWO_SITES = [{"id": "A", "name": {"en": "North Hospital", "zh": "北方医院"}},
             {"id": "B", "name": {"en": "South Hospital", "zh": "南方医院"}}]


def with_sites(sites, version: str = "1.1") -> str:
    data = yaml.safe_load(SHIPPED)
    data["sites"] = sites
    data["version"] = version
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@pytest.fixture
def two_sites(users):
    from annulus.trial.services import load_protocol_version

    return load_protocol_version(actor=None, text=with_sites(TWO_SITES))


def scoped_user(username: str, role: str, sites):
    from annulus.accounts.services import create_user
    from annulus.trial.selectors import active_protocol

    return create_user(actor=None, username=username, password=TEST_PASSWORD, role=role,
                       known_roles={r.id for r in active_protocol().roles}, check_password=False, sites=sites)


def person(users, site: str, *, consented: bool = True, initials: str = "TP"):
    from annulus.participants import services as ps

    p = ps.prescreen(actor=users["coordinator"], initials=initials, sex="F", recruitment_source="inpatient_referral",
                     prescreened_on=timezone.localdate() - timedelta(days=10), site=site)
    if consented:
        ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                          consented_at=timezone.now() - timedelta(days=9), taken_by=users["investigator"])
    return p


def browser(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    c.get("/")
    return c


def post(c: Client, url: str, data: dict):
    page = c.get(url)
    assert page.status_code == 200, url
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


# ---- the protocol -------------------------------------------------------------------------------

@pytest.mark.req("X-1.3")
def test_without_sites_the_protocol_has_its_one_site():
    protocol = parse_protocol(SHIPPED)
    assert protocol.sites is None
    [site] = protocol.site_list
    assert site.id == DEFAULT_SITE_ID and site.name == protocol.trial.site


@pytest.mark.req("X-1.3")
def test_declared_sites_are_the_sites():
    protocol = parse_protocol(with_sites(TWO_SITES))
    assert [s.id for s in protocol.site_list] == ["A", "B"]
    assert protocol.site_by_id("B").name.get("zh-hans") == "南方医院"
    assert protocol.site_by_id("C") is None


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("sites, expected", [
    ([{"id": "A", "name": {"en": "North", "zh": "北"}, "colour": "red"}], "sites[0].colour"),
    ([{"id": "A"}], "sites[0].name"),
    ([{"id": "A", "name": {"en": "North"}}], "sites[0].name.zh"),
    ([{"id": "a site", "name": {"en": "North", "zh": "北"}}], "sites[0].id"),
    ([{"id": "A", "name": {"en": "N", "zh": "北"}}, {"id": "A", "name": {"en": "S", "zh": "南"}}],
     "sites[1].id: 'A' is listed twice"),
    ([], "sites"),
])
def test_bad_sites_are_refused_naming_the_field(sites, expected):
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(with_sites(sites))
    assert any(e.startswith(expected) for e in exc.value.errors), exc.value.errors


# ---- the data migration -------------------------------------------------------------------------

def _migrate_rows():
    from django.apps import apps
    from django.db import connection

    module = importlib.import_module("annulus.participants.migrations.0003_participant_site")
    module.existing_rows_to_the_single_site(apps, SimpleNamespace(connection=connection))


@pytest.mark.req("P-2.4")
def test_rows_made_before_sites_get_the_single_site(users):
    from annulus.participants.models import Participant

    p = person(users, "", consented=False)
    assert p.site == DEFAULT_SITE_ID  # one site: set without asking
    Participant.objects.filter(pk=p.pk).update(site="")  # as the column was added
    _migrate_rows()
    assert Participant.objects.get(pk=p.pk).site == DEFAULT_SITE_ID


@pytest.mark.req("P-2.4")
def test_the_data_migration_takes_the_site_of_the_protocol_in_force(users, two_sites):
    from annulus.participants.models import Participant

    p = person(users, "B", consented=False)
    Participant.objects.filter(pk=p.pk).update(site="")
    _migrate_rows()
    assert Participant.objects.get(pk=p.pk).site == "A"


# ---- pre-screening ------------------------------------------------------------------------------

@pytest.mark.req("P-2.4", "X-7.3")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_one_site_is_set_without_a_choice(users, language):
    from annulus.audit.models import AuditEvent
    from annulus.participants.models import Participant

    c = browser(users["coordinator"], language)
    page = c.get("/participants/new/").content.decode()
    assert 'name="site"' not in page
    r = post(c, "/participants/new/", {"initials": "AB", "sex": "F", "recruitment_source": "inpatient_referral",
                                       "prescreened_on": timezone.localdate().isoformat()})
    assert r.status_code == 302
    p = Participant.objects.get()
    assert p.site == DEFAULT_SITE_ID
    event = AuditEvent.objects.get(object_type="participant", object_id=str(p.pk), action="create")
    assert json.loads(event.payload)["changes"]["site"] == [None, DEFAULT_SITE_ID]


@pytest.mark.req("P-2.4", "X-7.3")
@pytest.mark.parametrize("language, label, required", [("en", "Site", "This field is required"),
                                                       ("zh-hans", "研究中心", "这个字段是必填项")])
def test_several_sites_need_a_choice_with_none_preselected(users, two_sites, language, label, required):
    from annulus.audit.models import AuditEvent
    from annulus.participants.models import Participant

    c = browser(users["coordinator"], language)
    page = c.get("/participants/new/").content.decode()
    assert 'name="site"' in page and label in page
    assert "South Hospital" in page if language == "en" else "南方医院" in page
    select = page[page.index('name="site"'):]
    select = select[:select.index("</select>")]
    assert not re.search(r'<option value="[^"]+"[^>]*selected', select)  # chosen, never pre-selected
    data = {"initials": "AB", "sex": "F", "recruitment_source": "inpatient_referral",
            "prescreened_on": timezone.localdate().isoformat()}
    r = post(c, "/participants/new/", data)
    assert r.status_code == 200 and required in r.content.decode()
    assert not Participant.objects.exists()
    r = post(c, "/participants/new/", {**data, "site": "Z"})
    assert r.status_code == 200 and not Participant.objects.exists()
    r = post(c, "/participants/new/", {**data, "site": "B"})
    assert r.status_code == 302
    p = Participant.objects.get()
    assert p.site == "B"
    event = AuditEvent.objects.get(object_type="participant", object_id=str(p.pk), action="create")
    assert json.loads(event.payload)["changes"]["site"] == [None, "B"]
    detail = c.get(f"/participants/{p.pk}/").content.decode()
    assert ("B · South Hospital" if language == "en" else "B · 南方医院") in detail


@pytest.mark.req("P-2.4")
def test_api_prescreening_names_the_site(users, two_sites):
    api = Token(users["coordinator"])
    data = {"initials": "AB", "sex": "M", "recruitment_source": "flyers_website",
            "prescreened_on": timezone.localdate().isoformat()}
    for bad in ({}, {"site": "Z"}):
        r = api.post("/api/v1/participants", {**data, **bad})
        assert r.status_code == 400 and r["Content-Type"].startswith("application/json")
        assert "site" in {d["field"] for d in r.json()["detail"]}, r.json()
    r = api.post("/api/v1/participants", {**data, "site": "A"})
    assert r.status_code == 201 and r.json()["site"] == "A"


@pytest.mark.req("P-2.4")
def test_api_with_one_site_needs_no_site(users):
    r = Token(users["coordinator"]).post("/api/v1/participants", {
        "initials": "AB", "sex": "M", "recruitment_source": "flyers_website",
        "prescreened_on": timezone.localdate().isoformat()})
    assert r.status_code == 201 and r.json()["site"] == DEFAULT_SITE_ID


@pytest.mark.req("P-2.4")
def test_a_scoped_user_pre_screens_only_at_their_site(users, two_sites):
    from annulus.errors import RuleViolation
    from annulus.participants import services as ps

    coordinator_b = scoped_user("coord_b", "coordinator", ["B"])
    with pytest.raises(RuleViolation) as exc:
        ps.prescreen(actor=coordinator_b, initials="AB", sex="F", recruitment_source="inpatient_referral",
                     prescreened_on=timezone.localdate(), site="A")
    assert {v.field for v in getattr(exc.value, "violations", [exc.value])} == {"site"}
    page = browser(coordinator_b).get("/participants/new/").content.decode()
    select = page[page.index('name="site"'):]
    select = select[:select.index("</select>")]
    assert 'value="B"' in select and 'value="A"' not in select


# ---- users scoped to sites ----------------------------------------------------------------------

@pytest.fixture
def at_two_sites(users, two_sites):
    a = [person(users, "A", initials="AA"), person(users, "A", initials="AB")]
    b = [person(users, "B", initials="BA")]
    return {"A": a, "B": b, "monitor_b": scoped_user("monitor_b", "monitor", ["B"]),
            "coord_a": scoped_user("coord_a", "coordinator", ["A"])}


@pytest.mark.req("P-7.2")
def test_a_scoped_user_gets_404_for_another_sites_participant(users, at_two_sites):
    a, b = at_two_sites["A"][0], at_two_sites["B"][0]
    coord_a = browser(at_two_sites["coord_a"])
    assert coord_a.get(f"/participants/{a.pk}/").status_code == 200
    assert coord_a.get(f"/participants/{b.pk}/").status_code == 404
    assert coord_a.get(f"/participants/{b.pk}/consent/").status_code == 404
    api = Token(at_two_sites["coord_a"])
    assert api.get(f"/api/v1/participants/{a.pk}").status_code == 200
    r = api.get(f"/api/v1/participants/{b.pk}")
    assert r.status_code == 404 and r["Content-Type"].startswith("application/json")
    assert api.get(f"/api/v1/participants/{b.pk}/eligibility").status_code == 404
    assert api.get(f"/api/v1/visits/participants/{b.pk}/schedule").status_code in (404, 405)
    monitor_b = Token(at_two_sites["monitor_b"])
    assert monitor_b.get(f"/api/v1/participants/{b.pk}").status_code == 200
    assert monitor_b.get(f"/api/v1/participants/{a.pk}").status_code == 404
    # an unscoped user sees both sites
    everyone = Token(users["coordinator"])
    assert {everyone.get(f"/api/v1/participants/{p.pk}").status_code for p in (a, b)} == {200}


@pytest.mark.req("P-7.2")
def test_lists_show_only_the_users_sites(users, at_two_sites):
    a_numbers = {p.screening_number for p in at_two_sites["A"]}
    b_numbers = {p.screening_number for p in at_two_sites["B"]}
    r = Token(at_two_sites["coord_a"]).get("/api/v1/participants")
    assert r.json()["count"] == 2 and {p["screening_number"] for p in r.json()["results"]} == a_numbers
    assert {p["site"] for p in r.json()["results"]} == {"A"}
    r = Token(users["coordinator"]).get("/api/v1/participants?site=B")
    assert {p["screening_number"] for p in r.json()["results"]} == b_numbers
    page = browser(at_two_sites["coord_a"]).get("/participants/").content.decode()
    assert all(n in page for n in a_numbers) and not any(n in page for n in b_numbers)
    # every site for an unscoped user, with the site column and filter
    c = browser(users["coordinator"])
    page = c.get("/participants/").content.decode()
    assert all(n in page for n in a_numbers | b_numbers) and 'name="site"' in page
    page = c.get("/participants/?site=B").content.decode()
    assert all(n in page for n in b_numbers) and not any(n in page for n in a_numbers)
    # the monitor's status grid
    grid = Token(at_two_sites["monitor_b"]).get("/api/v1/monitoring/grid").json()
    assert {row["screening_number"] for row in grid} == b_numbers


@pytest.mark.req("P-7.2")
def test_dashboard_counts_by_site(users, at_two_sites):
    from annulus.participants import selectors

    assert selectors.site_counts(users["coordinator"]) == {"A": 2, "B": 1}
    assert selectors.site_counts(at_two_sites["coord_a"]) == {"A": 2}
    assert sum(selectors.status_counts(at_two_sites["coord_a"]).values()) == 2
    assert selectors.funnel(at_two_sites["monitor_b"])[0][1] == 1
    page = browser(users["coordinator"]).get("/").content.decode()
    assert "Recruitment by site" in page and "South Hospital" in page
    page = browser(at_two_sites["coord_a"]).get("/").content.decode()
    assert "North Hospital" in page and "South Hospital" not in page


@pytest.mark.req("X-7.6", "P-7.2")
def test_exports_hold_only_the_users_sites(users, at_two_sites):
    from annulus.exports import source

    as_of = timezone.now() + timedelta(seconds=1)
    everyone = {s.screening_number for s in source.subjects(users["statistician"], as_of=as_of)}
    assert everyone == {p.screening_number for p in at_two_sites["A"] + at_two_sites["B"]}
    only_b = {s.screening_number for s in source.subjects(at_two_sites["monitor_b"], as_of=as_of)}
    assert only_b == {p.screening_number for p in at_two_sites["B"]}
    assert source.count(as_of, at_two_sites["monitor_b"]) == 1
    assert source.numbers(as_of, at_two_sites["monitor_b"]) == sorted(only_b)


@pytest.mark.req("X-7.3")
def test_the_administrator_scopes_users_to_sites_audited(users, two_sites):
    from django.contrib.auth import get_user_model

    from annulus.audit.models import AuditEvent

    c = browser(users["admin"])
    page = c.get("/accounts/users/").content.decode()
    assert 'name="sites"' in page
    r = post(c, "/accounts/users/", {"create": "1", "username": "mon_a", "role": "monitor", "sites": ["A"],
                                     "password": "A long enough Passphrase 42!"})
    assert r.status_code == 302, r.content.decode()[:3000]
    user = get_user_model().objects.get(username="mon_a")
    assert user.membership.sites == ["A"]
    created = AuditEvent.objects.get(object_type="user", object_id=str(user.pk), action="create")
    assert json.loads(created.payload)["changes"]["sites"] == [None, ["A"]]
    r = post(c, "/accounts/users/", {"set_sites": str(user.pk), "sites": ["A", "B"], "reason": "covers both"})
    assert r.status_code == 302
    user.membership.refresh_from_db()
    assert user.membership.sites == ["A", "B"]
    changed = AuditEvent.objects.filter(object_type="user", object_id=str(user.pk), action="change").last()
    assert json.loads(changed.payload)["changes"] == {"sites": [["A"], ["A", "B"]]} and changed.reason == "covers both"


@pytest.mark.req("X-7.3")
def test_an_unknown_site_is_refused_naming_the_field(users, two_sites):
    from annulus.errors import RuleViolation

    with pytest.raises(RuleViolation) as exc:
        scoped_user("x", "monitor", ["Z"])
    assert exc.value.field == "sites"


@pytest.mark.req("X-7.3")
def test_cli_creates_a_user_scoped_to_a_site(users, two_sites, monkeypatch, capsys):
    from django.contrib.auth import get_user_model

    from annulus.cli import main

    monkeypatch.setenv("ANNULUS_PASSWORD", "A long enough Passphrase 42!")
    assert main(["user", "create", "cli_mon", "--role", "monitor", "--site", "B"]) == 0
    assert get_user_model().objects.get(username="cli_mon").membership.sites == ["B"]
    assert "sites B" in capsys.readouterr().out
