"""X-3.8: crawl every page and every API route as each blinded role and look for the blind
breaking: an arm, a dose or recipe, the level-2 key, a group label tied to a participant, or a
response that differs between participants of different arms. The crawl reads the URL
configuration and the OpenAPI schema, so pages and routes that other apps add are covered too.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.test import Client

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope
from annulus.trial.selectors import active_protocol
from tests.conftest import TEST_PASSWORD, fresh, make_users, participant_maker, shared_rows, without_nonce
from tests.routes import url_routes

BLINDED = ["investigator", "coordinator", "statistician", "monitor", "data_manager", "auditor", "ethics", "admin"]
ARM_IDS = ("high", "mid", "low", "control")
MISSING = 987654
# never requested: they change the session rather than show anything
SKIP = {"accounts/logout/", "i18n/setlang/", "api/v1/docs"}
# The protocol itself names its arms and doses (public in the registry); no participant is tied
# to them there, so these routes may name arms, but must not show the preparation recipes.
PROTOCOL_ROUTES = {"protocol/", "api/v1/protocol"}
RECIPE_WORDS = ["saline_ml", "cell_suspension_ml", "ha_hydrogel_ml", "0.25 mL", "0.75 mL", "0.5 mL",
                "Preparation recipe"]
# values tried for string parameters, by parameter name
STRINGS = {
    "name": ["allocation-table-pharmacy.csv", "level1-key.csv", "level1-key.csv.sha256"],
    "holder": ["pharmacy", "designer"],
    "key": ["baseline", "transplant"],
    "form_id": ["vas", "transplant"],
}


PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\{(\w+)\}")


def _fill(route: str, ints: list[int], api_types: dict | None = None, strings: dict = STRINGS,
          combos: int = 4) -> list[tuple[str, int | None, str]]:
    """Every concrete path for a route: ints for int parameters, named strings (up to ``combos``
    combinations of them) for the others. Returns (path, the int used, the path with the int left
    as a placeholder) triples."""
    params = PARAM.findall(route)
    if not params:
        return [(route, None, route)]
    int_names, str_names = [], []
    for conv, name, brace in params:
        name = name or brace
        kind = conv or (api_types or {}).get(name, "str")
        (int_names if kind == "int" or kind == "integer" else str_names).append(name)
    str_choices = list(itertools.product(*[strings.get(n, ["x"]) for n in str_names]))[:combos]
    out = []
    for value in ints if int_names else [None]:
        for combo in str_choices:
            values = dict(zip(str_names, combo))
            shape = PARAM.sub(lambda m: values.get(m.group(2) or m.group(3), "ID"), route)
            values.update({n: str(value) for n in int_names})
            path = PARAM.sub(lambda m: values[m.group(2) or m.group(3)], route)
            out.append((path, value, shape))
    return out


def _normalise(text: str) -> str:
    text = without_nonce(text)
    text = re.sub(r"DLBP-[A-Z0-9]{6}", "CODE", text)
    text = re.sub(r"[A-Za-z0-9_\-]{32,}", "TOKEN", text)  # CSRF tokens, hashes
    text = re.sub(r"(title=\"TOKEN\">)[^<]*", r"\1HEX", text)  # a hash shown shortened under its full value
    text = re.sub(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{6,31}\b", "HEX", text)
    return re.sub(r"\d+", "0", text)


@pytest.fixture(scope="module")
def crawl_trial(request, django_db_setup, django_db_blocker):
    """A demo-like trial: 8 participants randomised (two per arm), all released, dispensed and
    transplanted, one unblinded in an emergency; plus an enrolled and a screen-failed person.
    Built once for the module (here and in the modules that import ``crawl_trial``, ``users``
    and ``trial``): every test only reads it, and what a test writes is undone after it."""
    from annulus.trial.services import load_default_protocol

    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            make_participant = participant_maker(users)
            testing.liposuction_days_ago(shared.patch, 21)
            people = testing.randomised(users, make_participant, 8)
            by_arm = defaultdict(list)
            for p in people:
                env = Envelope.objects.get(participant=p)
                testing.transplanted(users, p, env)
                by_arm[selectors.arm_of_for_system(p.pk)].append((p, env))
            assert sorted(by_arm) == sorted(ARM_IDS) and all(len(v) == 2 for v in by_arm.values())
            unblinded = by_arm["mid"][1][0]
            rec, _ = services.emergency_unblind(
                actor=users["pi"], participant_id=unblinded.pk, password=TEST_PASSWORD,
                reason="Suspected anaphylaxis; treating physician must know the treatment")
            make_participant("enrolled")
            make_participant("screen_failed")
            reps = {arm: rows[0] for arm, rows in by_arm.items()}
            sealed = Envelope.objects.filter(participant__isnull=True).order_by("serial").first()
        yield users, {"reps": reps, "sealed": sealed, "record": rec, "people": people, "also": [unblinded]}


@pytest.fixture
def users(crawl_trial, db):
    return {role: fresh(user) for role, user in crawl_trial[0].items()}


@pytest.fixture
def trial(crawl_trial, db):
    rows = crawl_trial[1]
    return {"reps": {arm: (fresh(p), fresh(env)) for arm, (p, env) in rows["reps"].items()},
            "sealed": fresh(rows["sealed"]), "record": fresh(rows["record"]),
            "people": [fresh(p) for p in rows["people"]], "also": [fresh(p) for p in rows["also"]]}


def _forbidden(protocol):
    words = []
    for arm in protocol.arms:
        words += [arm.name.en, arm.name.zh]
    words += ["saline_ml", "cell_suspension_ml", "ha_hydrogel_ml", "cells_per_disc", "dose_score",
              "20000000", "10000000", "5000000", "0.25 mL", "0.75 mL", "0.5 mL", "Preparation recipe",
              "Level-2 key", "Group label</th>"]
    return words


def _arm_patterns(arm_ids) -> tuple[re.Pattern, re.Pattern]:
    """An arm id alone in a cell or as a field's value; a group label given with its arm."""
    arms = "|".join(map(re.escape, arm_ids))
    return (re.compile(rf">\s*(?:{arms})\s*<|value=[\"'](?:{arms})[\"']"),
            re.compile(rf"\b[A-D]\b\s*(?:→|->|:|</td>\s*<td>)\s*(?:{arms})\b"))


ARM_TEXT, LEVEL2 = _arm_patterns(ARM_IDS)


@dataclass
class Blind:
    """What the crawl of one trial looks for: its arm ids, the words no blinded page may show
    (read from the protocol), the words not even the protocol's own pages may show, the values
    tried for string parameters, phrases that name every arm at once (a title: removed before
    the look) and a trial's own look at a response's text."""
    arm_ids: tuple[str, ...]
    forbidden: Callable
    protocol_words: list[str]
    strings: dict
    combos: int = 4
    allowed: tuple[str, ...] = ()
    check: Callable[[str], list[str]] = lambda text: []
    arm_text: re.Pattern = field(init=False)
    level2: re.Pattern = field(init=False)

    def __post_init__(self):
        self.arm_text, self.level2 = _arm_patterns(self.arm_ids)


FIRST = Blind(ARM_IDS, _forbidden, RECIPE_WORDS, STRINGS)


def _json_leaks(data, path="", arm_ids=ARM_IDS) -> list[str]:
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k in ("arm", "group_label", "arm_name", "recipe") and v not in (None, "", [], {}):
                found.append(f"{path}.{k}={v!r}")
            found += _json_leaks(v, f"{path}.{k}", arm_ids)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += _json_leaks(v, f"{path}[{i}]", arm_ids)
    elif isinstance(data, str) and data in arm_ids:
        found.append(f"{path}={data!r}")
    return found


def _leaks(resp, forbidden, text, protocol_route=False, blind=None) -> list[str]:
    blind = blind or FIRST
    data = None
    if resp.get("Content-Type", "").startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:  # Chinese text escaped in JSON (\\uXXXX) is looked at as it reads
            text += "\n" + json.dumps(data, ensure_ascii=False)
    found = blind.check(text)
    if protocol_route:
        return found + [w for w in blind.protocol_words if w in text]
    for phrase in blind.allowed:
        text = text.replace(phrase, "")
    found += [w for w in forbidden if w in text]
    found += blind.arm_text.findall(text) + blind.level2.findall(text)
    disposition = resp.get("Content-Disposition", "")
    found += [f"file name {disposition}" for a in blind.arm_ids if a in disposition.lower()]
    if data is not None:
        found += _json_leaks(data, arm_ids=blind.arm_ids)
    return found


def _first_difference(texts: list[str]) -> str:
    """Where the first two differing responses part, for the failure message."""
    import difflib

    a = texts[0]
    b = next((t for t in texts[1:] if t != a), a)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            return f"{a[max(0, i1 - 80):i2 + 80]!r} vs {b[max(0, j1 - 80):j2 + 80]!r}"
    return "same text"


PARTICIPANT_ROUTE = re.compile(r"(?:^|/)participants/[<{]")


def _crawl(role, users, trial, blind=None, language: str | None = None, only: Callable[[str], bool] | None = None):
    """Request every route as ``role`` (or those for which ``only(route)`` holds).
    ``trial["reps"]``: participant and envelope of each arm (or of each arm at each site, with
    ``trial["cohort"]`` naming the participants whose pages must read the same: those of one
    site); ``trial["others"]``: more ids to try (an envelope, an unblinding record);
    ``trial["also"]``: more participants (one unblinded in an emergency). A participant's route
    is tried with the participants' ids and one that does not exist; every other route with
    every id. ``language``: the browser's (Accept-Language), English if not given."""
    blind = blind or FIRST
    client = Client(**({"HTTP_ACCEPT_LANGUAGE": language} if language else {}))
    client.force_login(users[role])
    protocol = active_protocol()
    forbidden = blind.forbidden(protocol)
    reps = trial["reps"]
    cohort = trial.get("cohort", {})
    participant_ids = {arm: p.pk for arm, (p, _) in reps.items()}
    envelope_ids = {arm: e.pk for arm, (_, e) in reps.items()}
    others = [o.pk for o in trial.get("others", [trial.get("sealed"), trial.get("record")]) if o is not None]
    others.append(MISSING)
    ints = sorted(set(participant_ids.values()) | set(envelope_ids.values()) | set(others))
    participant_ints = sorted(set(participant_ids.values()) | {p.pk for p in trial.get("also", [])} | {MISSING})
    arm_of = {v: a for a, v in participant_ids.items()}
    env_arm = {v: a for a, v in envelope_ids.items()}

    problems = []
    responses: dict[str, list] = defaultdict(list)

    def visit(route, path, value, shape):
        resp = client.get("/" + path)
        text = (b"".join(resp.streaming_content) if resp.streaming else resp.content).decode("utf-8", "replace")
        for leak in _leaks(resp, forbidden, text, route in PROTOCOL_ROUTES, blind):
            problems.append(f"{role} GET /{path} [{resp.status_code}]: reveals {leak!r}")
        responses[shape].append((route, value, resp.status_code, _normalise(text)))

    routes = [r for r in url_routes() if r not in SKIP and not r.startswith("api/v1/")]
    def ints_for(route):
        return participant_ints if PARTICIPANT_ROUTE.search(route) else ints

    for route in routes:
        if "(?P<" in route or "^" in route or (only is not None and not only(route)):
            continue
        for path, value, shape in _fill(route, ints_for(route), strings=blind.strings, combos=blind.combos):
            visit(route, path, value, shape)

    schema = client.get("/api/v1/openapi.json").json()
    for api_path, ops in schema["paths"].items():
        if "get" not in ops:
            continue
        types = {p["name"]: p.get("schema", {}).get("type", "string")
                 for p in ops["get"].get("parameters", []) if p.get("in") == "path"}
        route = api_path.lstrip("/")
        if only is not None and not only(route):
            continue
        for path, value, shape in _fill(route, ints_for(route), types, blind.strings, blind.combos):
            visit(route, path, value, shape)

    for shape, rows in responses.items():
        route = rows[0][0]
        # pages of participants (or envelopes) in different arms: same status, same normalised size
        for mapping, applies in ((arm_of, "participants/" in route), (env_arm, "envelope" in route)):
            if not applies:
                continue
            for same in {cohort.get(k, "") for k in mapping.values()}:
                group = [(mapping[v], status, len(text)) for _, v, status, text in rows
                         if v in mapping and cohort.get(mapping[v], "") == same]
                if len({(s, n) for _, s, n in group}) > 1:
                    texts = [text for _, v, _, text in rows if v in mapping and cohort.get(mapping[v], "") == same]
                    problems.append(f"{role} /{shape}: responses differ by arm {sorted(group)}: "
                                    f"{_first_difference(texts)}")
        # a refusal must not depend on whether the id exists (403 for one means 403 for all)
        statuses = {v: status for _, v, status, _ in rows if v is not None}
        if 403 in statuses.values() and len(set(statuses.values())) > 1:
            problems.append(f"{role} /{shape}: 403 for some ids, other answers for others {statuses}")
    return problems, sum(len(r) for r in responses.values())


@pytest.mark.req("X-3.8", "P-3.2", "P-3.3")
@pytest.mark.parametrize("role", BLINDED)
def test_blinded_role_cannot_learn_an_allocation(role, users, trial):
    problems, requests = _crawl(role, users, trial)
    assert requests > 100
    assert not problems, "\n".join(problems[:40])


@pytest.mark.req("X-3.8")
def test_the_crawl_catches_a_leak(users, trial, client_for, monkeypatch):
    """The crawl is only worth something if it fails when the blind breaks."""
    real = selectors.can_see_arms
    monkeypatch.setattr(selectors, "can_see_arms", lambda user: True if user == users["monitor"] else real(user))
    problems, _ = _crawl("monitor", users, trial, only=PARTICIPANT_ROUTE.search)
    assert any("differ by arm" in p or "reveals" in p for p in problems)


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("role", BLINDED)
def test_guessing_key_letter_and_recipe_ids(role, users, trial, client_for):
    """Existing, sealed and non-existent ids get the same refusal from every holder-only route."""
    c = client_for(role)
    (_, env), sealed = trial["reps"]["control"], trial["sealed"]
    for template in ("/pharmacy/envelopes/{}/", "/pharmacy/envelopes/{}/label/", "/pharmacy/envelopes/{}/letter/",
                     "/pharmacy/envelopes/{}/letter/?format=pdf", "/api/v1/allocation/pharmacy/envelopes/{}"):
        answers = {(r.status_code, _normalise(r.content.decode()))
                   for r in (c.get(template.format(i)) for i in (env.pk, sealed.pk, MISSING))}
        assert len(answers) == 1 and next(iter(answers))[0] == 403, template
    for url in ("/pharmacy/level2-key.csv", "/api/v1/allocation/level2", "/allocation/",
                "/allocation/documents/level1-key.csv", "/allocation/documents/nothing.csv",
                "/api/v1/allocation/list", "/api/v1/allocation/level1", "/api/v1/allocation/unblinded",
                "/api/v1/allocation/list/documents/pharmacy", "/api/v1/allocation/pharmacy/envelopes"):
        assert c.get(url).status_code == 403, url


@pytest.mark.req("X-3.8", "P-3.2")
def test_no_role_sees_a_future_envelope(users, trial):
    sealed = trial["sealed"]
    for role in list(users):
        c = Client()
        c.force_login(users[role])
        for url in ("/allocation/", "/pharmacy/", "/api/v1/allocation/level1", "/api/v1/allocation/pharmacy/envelopes",
                    "/unblinding/"):
            r = c.get(url)
            assert sealed.drug_code.encode() not in r.content, (role, url)
    assert selectors.envelope_for_pharmacy(users["pharmacist"], sealed.pk) is None


@pytest.mark.req("X-3.8", "X-7.5")
@pytest.mark.parametrize("role", BLINDED)
def test_casebook_page_and_pdf_show_no_arm(role, users, trial, tmp_path):
    """The casebook (page, printable PDF, API) of participants in different arms reads the same
    for every blinded role: nothing names an arm, and the texts differ only in numbers and codes.
    The PDF (``?format=pdf``, which the route crawl does not request) is read as text."""
    import shutil
    import subprocess

    from annulus.casebooks import services as casebooks

    for p, _env in trial["reps"].values():  # a signed casebook manifests its signature too
        casebooks.sign_casebook(actor=users["pi"], participant_id=p.pk, username=users["pi"].username,
                                password=TEST_PASSWORD)
    client = Client()
    client.force_login(users[role])
    forbidden = _forbidden(active_protocol())
    pages, pdfs, apis, problems = {}, {}, {}, []
    for arm, (p, _env) in trial["reps"].items():
        for kind, url, store in (("page", f"/participants/{p.pk}/casebook/", pages),
                                 ("api", f"/api/v1/casebooks/participants/{p.pk}", apis)):
            resp = client.get(url)
            text = resp.content.decode("utf-8", "replace")
            problems += [f"{role} {kind} {arm}: reveals {leak!r}" for leak in _leaks(resp, forbidden, text)]
            store[arm] = (resp.status_code, _normalise(text))
        if pages[arm][0] != 200 or not shutil.which("pdftotext"):
            continue
        resp = client.get(f"/participants/{p.pk}/casebook/?format=pdf")
        path = tmp_path / f"{arm}.pdf"
        path.write_bytes(resp.content)
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
        problems += [f"{role} pdf {arm}: reveals {leak!r}" for leak in _leaks(resp, forbidden, text)]
        pdfs[arm] = _normalise(text)
    for kind, got in (("page", pages), ("api", apis)):
        if len({(s, len(t)) for s, t in got.values()}) > 1:
            problems.append(f"{role} casebook {kind} differs by arm: {_first_difference([t for _, t in got.values()])}")
    if pdfs and len({len(t) for t in pdfs.values()}) > 1:
        problems.append(f"{role} casebook PDF differs by arm: {_first_difference(list(pdfs.values()))}")
    assert not problems, "\n".join(problems)
