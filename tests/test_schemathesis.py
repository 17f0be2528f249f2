"""Property-based run of the OpenAPI schema against the app in-process: no input gives a 5xx,
and every response conforms to the schema. Authenticated with a token (no session, so no CSRF
token).

* Every operation as the role that may make it (``WRITERS``; reads as an investigator), with the
  most examples: a 403 on such a write is a failure.
* Every operation as every role of the trial (blinded and unblinded, the principal investigator
  beside an investigator), with fewer examples: a role the permission code lets make the call is
  never refused (401/403); a role it does not let make the call is refused (403, or 404 where the
  API hides what exists, or 422 for a request refused by its schema before any look-up) and a
  refused write leaves the audit trail as it was.
* Who may make a call is read from the permission code itself (``route_capabilities``): the
  ``require(user, "capability")`` calls (and ``if not has(user, "capability"): raise``) of the
  route, of its module's helpers and of the service it calls, checked against the capability
  table of ``annulus.accounts.permissions``; the few narrower rules of the services (the principal
  investigator, whoever raised a query, what the body asks for) use the services' own predicates.
* NUL bytes and extreme dates: generated strings may hold NUL (``allow_x00``), and dates and
  date-times are drawn from the extremes (year 1, year 9999, far-future date-times, offsets that
  leave the UTC range, dates with a time zone: ``EXTREME_DATES``) as often as from ordinary values
  (``test_generation_draws_nul_bytes_and_extreme_dates``); both are also sent explicitly, in every
  string and date field of every operation (``test_nul_bytes_and_extreme_dates``).
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from functools import cache
from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from schemathesis.specs.openapi.formats import get_default_format_strategies

from tests.conftest import make_users, participant_maker, shared_rows

pytestmark = pytest.mark.req("P-7.2")

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
SETTINGS = {"deadline": None, "derandomize": True,
            "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.filter_too_much]}

# ---- NUL bytes and extreme dates in what is generated ---------------------------------------------
# Schemathesis allows NUL in generated strings (``allow_x00``, on by default) and draws dates from
# the whole of years 1-9999, but a run of a few examples seldom reaches the edges of the dates:
# they are drawn here as often as ordinary values.
EXTREME_DATES = ["0001-01-01", "9999-12-31", "1899-12-31", "2101-01-01", "2000-02-29", "1900-01-01",
                 "2100-12-31"]
EXTREME_DATETIMES = [
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999-14:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59Z",
    "3000-01-01T00:00:00+05:30",  # far future
    "2100-12-31T23:59:59-12:00",
    "2026-03-29T02:30:00+01:00",
    "2026-01-01T00:00:00",  # no time zone
]
DATES_WITH_ZONES = ["2026-01-01+08:00", "2026-01-01Z", "2026-01-01T00:00:00+08:00"]
NUL_STRINGS = ["\x00", "a\x00b", "\x00" * 3 + "x"]

_defaults = get_default_format_strategies()
schemathesis.openapi.format("date", st.one_of(_defaults["date"], st.sampled_from(EXTREME_DATES + DATES_WITH_ZONES)))
schemathesis.openapi.format("date-time", st.one_of(_defaults["date-time"], st.sampled_from(EXTREME_DATETIMES)))


@pytest.fixture
def in_process_requests():
    # Django's test client keeps the test's database connection across requests; a bare WSGI
    # call would close it at request start (on PostgreSQL that ends the test transaction)
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def _dataset(request, django_db_setup, django_db_blocker):
    """Built once for the module; each test (each operation's examples) runs in its own savepoint,
    so what one operation's calls write is undone before the next operation."""
    from annulus.accounts.services import issue_token
    from annulus.trial.services import load_default_protocol

    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            make_participant = participant_maker(users)
            pks = [make_participant(stage).pk for stage in ("pre_screened", "consented", "screening", "eligible",
                                                            "enrolled", "screen_failed")]
            tokens = {role: issue_token(user=user, name="schemathesis") for role, user in users.items()}
        yield {"tokens": tokens, "pks": pks, "users": users}


@pytest.fixture
def dataset(_dataset, db, in_process_requests):
    return _dataset


@pytest.fixture
def routes_entered(monkeypatch):
    """The routes each request reached. A request refused before its route runs (a NUL byte,
    django-ninja's parsing and validation of the schema) is refused alike for every role and
    tells the caller nothing but the public schema."""
    from annulus.site.api import api

    entered = []

    def recording(view):
        def run(request, *args, **kwargs):
            entered.append(view.__name__)
            return view(request, *args, **kwargs)

        return run

    for bound in api._get_bound_routers():
        for path_view in bound.path_operations.values():
            for operation in path_view.operations:
                monkeypatch.setattr(operation, "view_func", recording(operation.view_func))
    return entered


# the role that may make each write (path fragment -> role); every other write: an investigator.
# Checked against the permission code by test_each_writer_may_make_its_write.
WRITERS = {
    "/allocation/list": "designer",
    "/allocation/pharmacy/": "pharmacist",
    "/allocation/unblinding/lock": "pi",
    "/allocation/unblinding/level1": "designer",
    "/allocation/unblinding/analysis-signoff": "statistician",
    "/allocation/unblinding/level2": "pharmacist",
    "/protocol/versions": "admin",
    "/allocation/unblinding/waivers": "pi",
    "/casebooks/participants/": "pi",
    "/monitoring/participants/": "monitor",
    "/monitoring/findings": "auditor",
    "/lock": "data_manager",
    "/unlock": "data_manager",
    "/exports": "statistician",
    "/v1/reports": "statistician",  # the trial report (not the DSMB's reports)
    # someone else's query is closed and re-opened by the raiser's side (queries.close)
    "/close": "data_manager",
    "/reopen": "data_manager",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# writes of a trial whose product comes in numbered kits: the first trial has none, so no role
# may make them here (tests/test_kits.py makes them in the kit trial)
KIT_TRIAL_ONLY = ("/kit", "/kits")


def _writer(case) -> str:
    if case.path.endswith("/dsmb/reports") and isinstance(case.body, dict) and case.body.get("kind") == "closed":
        return "dsmb"
    if case.path.endswith("/v1/exports") and isinstance(case.body, dict) and case.body.get("identifiable") is True:
        return "investigator"
    return next((role for part, role in WRITERS.items() if part in case.path), "investigator")


def _load_schema():
    # the schema document needs a login like every call: it is built in-process, once, at import
    import json

    from annulus.site.api import api
    from annulus.site.wsgi import application

    raw = json.loads(json.dumps(api.get_openapi_schema(path_params={})))
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(raw)))
    loaded.app = application
    loaded.config.generation.update(allow_x00=True)  # NUL in generated strings (schemathesis's default, stated)
    return loaded, raw


schema, RAW = _load_schema()


# ---- who may make each call, read from the permission code ------------------------------------------


def _views() -> dict[str, object]:
    """operationId -> the route's function."""
    from annulus.site.api import api

    out = {}
    for bound in api._get_bound_routers():
        for path_view in bound.path_operations.values():
            for operation in path_view.operations:
                out[operation.operation_id or api.get_openapi_operation_id(operation)] = operation.view_func
    return out


def _called(node: ast.Call, module):
    """The annulus function a call names (``helper(...)``, ``services.fn(...)``), or None."""
    target = None
    if isinstance(node.func, ast.Name):
        target = getattr(module, node.func.id, None)
    elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        owner = getattr(module, node.func.value.id, None)
        if inspect.ismodule(owner) and owner.__name__.startswith("annulus."):
            target = getattr(owner, node.func.attr, None)
    if inspect.isfunction(target) and target.__module__.startswith("annulus.") \
            and target.__module__ != "annulus.accounts.permissions":
        return target
    return None


def _refuses(nodes, module) -> bool:
    """Whether these statements raise a refusal (NotPermitted, or a rule broken with a 403)."""
    from annulus.errors import NotPermitted, RuleViolation

    for n in (x for stmt in nodes for x in ast.walk(stmt)):
        if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call) and isinstance(n.exc.func, ast.Name):
            cls = getattr(module, n.exc.func.id, None)
            if isinstance(cls, type) and (issubclass(cls, NotPermitted)
                                          or (issubclass(cls, RuleViolation) and cls.status == 403)):
                return True
    return False


def _is_role_of(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "role_of"


@cache
def _function_rules(func, bound: tuple = (), depth: int = 0) -> tuple[frozenset, frozenset, bool]:
    """What every path through ``func`` asks of its caller: (the capabilities it requires, the
    expressions the caller's role must equal, whether a narrower refusal may follow)."""
    module = sys.modules[func.__module__]
    node = ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]
    names = dict(bound)
    caps: set[str] = set()
    role_is: set[tuple[str, str]] = set()  # (module, expression)
    narrower = False

    def literal(arg):
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        return names.get(arg.id) if isinstance(arg, ast.Name) else None

    def follow(call: ast.Call):
        nonlocal narrower
        target = _called(call, module)
        if target is None or depth >= 3:
            return
        params = list(inspect.signature(target).parameters)
        passed = {p: literal(a) for p, a in zip(params, call.args)}
        passed.update({k.arg: literal(k.value) for k in call.keywords if k.arg})
        sub_caps, sub_roles, sub_narrower = _function_rules(
            target, tuple(sorted((k, v) for k, v in passed.items() if v)), depth + 1)
        caps.update(sub_caps)
        role_is.update(sub_roles)
        narrower = narrower or sub_narrower

    def visit(child, conditional: bool):
        nonlocal narrower
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        if isinstance(child, ast.If):
            t = child.test
            refusal = _refuses(child.body, module)
            if (refusal and isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not)
                    and isinstance(t.operand, ast.Call) and isinstance(t.operand.func, ast.Name)
                    and t.operand.func.id == "has" and len(t.operand.args) == 2 and literal(t.operand.args[1])):
                caps.add(literal(t.operand.args[1])) if not conditional else None
                narrower = narrower or conditional
            elif (refusal and isinstance(t, ast.Compare) and _is_role_of(t.left) and len(t.ops) == 1
                  and isinstance(t.ops[0], ast.NotEq)):
                role_is.add((module.__name__, ast.unparse(t.comparators[0]))) if not conditional else None
                narrower = narrower or conditional
            elif _refuses(child.body + child.orelse, module):
                narrower = True
            visit(t, conditional)
            for stmt in child.body + child.orelse:
                visit(stmt, True)
            return
        if isinstance(child, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            visit(child.generators[0].iter, conditional)  # evaluated once, whatever it yields
            for part in ast.iter_child_nodes(child):
                if part is not child.generators[0]:
                    visit(part, True)
            for part in ast.iter_child_nodes(child.generators[0]):
                if part is not child.generators[0].iter:
                    visit(part, True)
            return
        if isinstance(child, ast.IfExp):
            visit(child.test, conditional)
            visit(child.body, True)
            visit(child.orelse, True)
            return
        if isinstance(child, ast.Call):
            if isinstance(child.func, ast.Name) and child.func.id == "require" and len(child.args) == 2:
                if not conditional and literal(child.args[1]):
                    caps.add(literal(child.args[1]))
                else:
                    narrower = True
            elif not conditional:
                follow(child)
        inner = conditional or isinstance(child, (ast.For, ast.While, ast.BoolOp, ast.ExceptHandler))
        for grandchild in ast.iter_child_nodes(child):
            visit(grandchild, inner)

    for stmt in node.body:
        visit(stmt, False)
    return frozenset(caps), frozenset(role_is), narrower


def route_capabilities() -> dict[str, tuple[frozenset, bool]]:
    """operationId -> (the capabilities the route requires, whether its services refuse some holders)."""
    return {op_id: _function_rules(view) for op_id, view in _views().items()}


ROUTE_RULES = route_capabilities()
MAY, MAY_NOT, DEPENDS = "may", "may not", "depends"


def _narrower_rule(op_id: str, case, user):
    """The services' own predicates where they refuse some holders of the route's capabilities:
    MAY / MAY_NOT, or DEPENDS where the answer rests on the data (who raised a query)."""
    from annulus.accounts.permissions import has, role_of
    from annulus.allocation.services import _is_pi
    from annulus.casebooks.services import may_sign

    body = case.body if isinstance(case.body, dict) else {}
    if op_id.endswith("casebooks_api_sign"):
        return MAY if may_sign(user) else MAY_NOT
    if op_id.endswith("allocation_api_waive"):
        return MAY if _is_pi(user) else MAY_NOT
    if op_id.endswith("allocation_api_sign_lock"):
        return MAY if role_of(user) == "statistician" or _is_pi(user) else MAY_NOT
    if op_id.endswith(("queries_api_close", "queries_api_reopen")):
        return MAY if has(user, "queries.close") else DEPENDS  # or whoever raised the query
    if op_id.endswith("safety_api_dsmb_generate"):
        return MAY if has(user, "dsmb.closed" if body.get("kind") == "closed" else "dsmb.open") else MAY_NOT
    if op_id.endswith("exports_api_request_export") and body.get("identifiable") is True:
        return MAY if has(user, "export.identifiable") else MAY_NOT
    if op_id.endswith(("allocation_api_release", "allocation_api_dispense", "allocation_api_recipe")):
        from annulus.allocation.selectors import holds_key

        return MAY if holds_key(user, 2) else MAY_NOT  # the capability's holder must hold the key too
    if op_id.endswith(("allocation_api_allocate_kit", "allocation_api_visit_kit")):
        from annulus.allocation.selectors import may_allocate_kit

        return MAY if may_allocate_kit(user, str((getattr(case, "path_parameters", None) or {}).get("key", ""))) \
            else MAY_NOT
    if op_id.endswith("visits_api_save_form"):
        from annulus.trial.selectors import active_protocol
        from annulus.visits.procedures import may_save

        form_id = str((getattr(case, "path_parameters", None) or {}).get("form_id", ""))
        return MAY if may_save(user, active_protocol(), form_id) else MAY_NOT
    if op_id.endswith("visits_api_save_visit_forms"):
        from annulus.trial.selectors import active_protocol
        from annulus.visits.procedures import may_save

        forms = body.get("forms") if isinstance(body.get("forms"), dict) else {}
        return MAY if all(may_save(user, active_protocol(), str(f)) for f in forms) else MAY_NOT
    return None


def may_call(case, user) -> str:
    from annulus.accounts.permissions import has, role_of

    op_id = case.operation.definition.raw["operationId"]
    caps, role_is, narrower = ROUTE_RULES[op_id]
    if not all(has(user, cap) for cap in caps):
        return MAY_NOT
    for module, expression in role_is:  # ``if role_of(actor) != <expression>: raise NotPermitted``
        namespace = vars(sys.modules[module])
        expected = eval(expression, namespace, {"protocol": namespace["active_protocol"]()})  # noqa: S307
        if role_of(user) != expected:
            return MAY_NOT
    rule = _narrower_rule(op_id, case, user)
    if rule is not None:
        return rule
    return DEPENDS if narrower else MAY


def _operations():
    return [result.ok() for result in schema.get_all_operations()]


def _address_existing(case, dataset):
    pk = case.path_parameters.get("pk") if case.path_parameters else None
    if isinstance(pk, int) and pk % 2 == 0:
        # half the cases address a participant that exists, at some stage of the journey
        case.path_parameters["pk"] = dataset["pks"][(pk // 2) % len(dataset["pks"])]


def _audit_count() -> int:
    from annulus.audit.models import AuditEvent

    return AuditEvent.objects.count()


def _errors_name_their_field(response):
    if response.status_code >= 400:
        body = response.json()
        # every error is JSON naming the field (possibly "" when no single field is at fault)
        assert isinstance(body["detail"], list) and body["detail"]
        assert all("field" in d and d["message"] for d in body["detail"]), body


def _call_as(case, role, dataset, entered):
    """One call as ``role``, checked for that role: returns the response."""
    user = dataset["users"][role]
    # a case may send another method than the operation's (a 405 for every role)
    verdict = may_call(case, user) if case.method.upper() == case.operation.method.upper() else None
    write = case.method.upper() in WRITE_METHODS
    before = _audit_count() if write else None
    del entered[:]
    response = case.call_and_validate(headers={"Authorization": f"Bearer {dataset['tokens'][role]}"}, checks=CHECKS)
    where = (f"{case.method} {case.formatted_path} as {role} ({verdict}): {response.status_code} {response.text[:300]}"
             f" body={case.body!r:.300}")
    if verdict == MAY:
        assert response.status_code not in (401, 403), where
    elif verdict == MAY_NOT:
        # refused before anything is looked up: nothing about the data reaches this role
        assert response.status_code in (403, 404) or (400 <= response.status_code < 500 and not entered), where
    if write and response.status_code in (401, 403, 404) or verdict == MAY_NOT and write:
        assert _audit_count() == before, f"a refused write was audited: {where}"
    _errors_name_their_field(response)
    return response


# ---- the tests ----------------------------------------------------------------------------------------


def test_the_permission_code_is_read():
    """The derivation finds the routes' capabilities (a route it could not read would be open to all)."""
    assert len(ROUTE_RULES) == len(_operations())
    caps = {op.rsplit("_api_", 1)[-1]: rules[0] for op, rules in ROUTE_RULES.items()}
    assert "allocation.generate" in caps["generate"]
    assert caps["recipe"] == {"allocation.recipe"}  # through a helper given the capability
    assert {"export.run"} <= caps["request_export"]
    assert caps["lock_visit"] == {"record.lock"}
    assert "queries.raise" in caps["create_query"]  # in the service the route calls
    assert "casebook.sign" in caps["sign"]
    unguarded = sorted(op for op, (caps, _r, _n) in ROUTE_RULES.items() if not caps)
    # every route asks for a capability, except the DSMB reports read back (the selector answers
    # 404 for a report the caller may not read) and re-opening/closing a query (raiser or closer)
    assert unguarded == sorted(op for op in ROUTE_RULES if op.endswith(
        ("dsmb_report", "dsmb_report_html", "queries_api_close", "queries_api_reopen"))), unguarded


def test_each_writer_may_make_its_write(_dataset, db):
    """WRITERS (the role that runs each write with the most examples) agrees with the permission code."""
    wrong = []
    for operation in _operations():
        if operation.method.upper() not in WRITE_METHODS or operation.path.endswith(KIT_TRIAL_ONLY):
            continue
        case = SimpleNamespace(operation=operation, path=operation.path, method=operation.method, body={})
        role = _writer(case)
        if may_call(case, _dataset["users"][role]) != MAY:
            wrong.append((operation.method, operation.path, role))
    assert not wrong


@schema.parametrize()
@settings(max_examples=15, **SETTINGS)
def test_api_never_fails_and_matches_its_schema(case, dataset, routes_entered):
    """As the role that may make the call (reads: an investigator), with the most examples."""
    _address_existing(case, dataset)
    write = case.method.upper() in WRITE_METHODS
    role = _writer(case) if write else "investigator"
    response = _call_as(case, role, dataset, routes_entered)
    if write and not case.operation.path.endswith(KIT_TRIAL_ONLY):
        # the token's role may make this call: refusing it (e.g. a CSRF check) is a failure
        assert response.status_code not in (401, 403), (case.method, case.path, role, response.text)


@schema.parametrize()
@settings(max_examples=3, **SETTINGS)
def test_every_role(case, dataset, routes_entered):
    """The same calls as every role of the trial, blinded and unblinded alike, with fewer examples."""
    _address_existing(case, dataset)
    for role in sorted(dataset["users"]):
        _call_as(case, role, dataset, routes_entered)


def test_a_refused_identifiable_export_is_403_whatever_else_is_wrong(dataset):
    """Regression: an identifiable export asked for by a role that may export but not see
    identities, together with another problem (an unknown format), was answered 400: the refusal
    for the role must be the answer (403), as when it is the only problem."""
    from annulus.errors import RuleViolation, RuleViolations
    from annulus.exports.services import IdentifiableNotPermitted

    both = RuleViolations([RuleViolation("format", "unknown"), IdentifiableNotPermitted("identifiable", "no")])
    assert both.status == 403
    assert RuleViolations([RuleViolation("a", "x"), RuleViolation("b", "y")]).status == 400
    from django.test import Client

    response = Client().post("/api/v1/exports", {"format": "", "identifiable": True}, content_type="application/json",
                             headers={"Authorization": f"Bearer {dataset['tokens']['auditor']}"})
    assert response.status_code == 403, response.content
    assert {d["field"] for d in response.json()["detail"]} == {"identifiable", "format"}


def test_generation_draws_nul_bytes_and_extreme_dates():
    """What the property runs send may hold NUL bytes and draws the extreme dates (not only the
    explicit cases): the formats schemathesis uses for date and date-time fields are these."""
    from hypothesis import find
    from schemathesis.specs.openapi.formats import STRING_FORMATS

    assert schema.config.generation.allow_x00
    quick = settings(max_examples=200, database=None, derandomize=True)
    for name, edges in (("date", ["0001-01-01", "9999-12-31", "2026-01-01+08:00"]),
                        ("date-time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-14:00",
                                       "3000-01-01T00:00:00+05:30"])):
        for edge in edges:
            assert find(STRING_FORMATS[name], lambda value, edge=edge: value == edge, settings=quick)


# ---- NUL bytes and extreme dates, explicitly -------------------------------------------------------


def _deref(node):
    if isinstance(node, dict) and "$ref" in node:
        target = RAW
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _deref(target)
    return node


def _value(node, variant: dict, depth=0):
    """A value for a schema node: its strings, dates and date-times from the variant."""
    node = _deref(node)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            options = [_deref(o) for o in node[key] if _deref(o).get("type") != "null"]
            return _value(options[0], variant, depth) if options else None
    kind, fmt = node.get("type"), node.get("format")
    if "enum" in node:
        return node["enum"][0]
    if kind == "string":
        return {"date": variant["date"], "date-time": variant["datetime"]}.get(fmt, variant["string"])
    if kind == "integer":
        return variant["integer"]
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    if kind == "array":
        return [_value(node.get("items", {}), variant, depth + 1)] if depth < 4 else []
    if kind == "object" or "properties" in node:
        out = {name: _value(sub, variant, depth + 1) for name, sub in node.get("properties", {}).items()}
        if not node.get("properties") and node.get("additionalProperties", True) is not False:
            extra = node.get("additionalProperties")
            out[variant["string"]] = _value(extra, variant, depth + 1) if isinstance(extra, dict) else variant["string"]
        return out
    return variant["string"]


VARIANTS = {
    "nul": {"string": "a\x00b", "date": "2026-01-15", "datetime": "2026-01-15T10:00:00+08:00"},
    "only-nul": {"string": "\x00", "date": "2026-01-15", "datetime": "2026-01-15T10:00:00Z"},
    "year-1": {"string": "x", "date": "0001-01-01", "datetime": "0001-01-01T00:00:00+14:00"},
    "year-9999": {"string": "x", "date": "9999-12-31", "datetime": "9999-12-31T23:59:59.999999-14:00"},
    "far-future": {"string": "x", "date": "2100-12-31", "datetime": "3000-01-01T00:00:00+05:30"},
    "zoned-date": {"string": "x", "date": "2026-01-01+08:00", "datetime": "2026-01-01T00:00:00"},
}


def _explicit_case(operation, variant: dict, pk: int):
    path = {}
    query = {}
    for param in operation.definition.raw.get("parameters", []):
        value = _value(param.get("schema", {}), {**variant, "integer": pk})
        if param["in"] == "path":
            path[param["name"]] = value
        elif param["in"] == "query":
            query[param["name"]] = value
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    kwargs = {}
    if "application/json" in content:
        kwargs = {"body": _value(content["application/json"]["schema"], {**variant, "integer": pk}),
                  "media_type": "application/json"}
    return operation.Case(path_parameters=path or None, query=query or None, **kwargs)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_nul_bytes_and_extreme_dates(variant, dataset, routes_entered):
    """Every operation, as a role that may make it, with NUL bytes in every string (path, query and
    body) or extreme dates and date-times in every date field: never a 5xx, always the schema."""
    enrolled = dataset["pks"][4]
    for operation in _operations():
        case = _explicit_case(operation, VARIANTS[variant], enrolled)
        candidates = [_writer(case), "investigator", *sorted(dataset["users"])]
        verdicts = {r: may_call(case, dataset["users"][r]) for r in candidates}
        if operation.path.endswith(KIT_TRIAL_ONLY) and not {MAY, DEPENDS} & set(verdicts.values()):
            continue  # no role of this trial may: the kit trial's tests make these calls
        # a role that may make it; where the data decide (the blind's state), one that might
        role = next((r for r in candidates if verdicts[r] == MAY), None) \
            or next((r for r in candidates if verdicts[r] == DEPENDS), None)
        assert role is not None, (operation.method, operation.path, verdicts)
        _call_as(case, role, dataset, routes_entered)
