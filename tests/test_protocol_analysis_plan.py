"""The protocol's analysis plan (``analysis.per_visit``) and ``annulus compare`` run from it
(X-1.3: validated like the rest of the schema; P-8.2: the pre-specified per-visit analysis is
primary, the rank tests with the Hodges–Lehmann shift are sensitivity analyses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from annulus.cli import main
from annulus.cli.compare import METHODS as CLI_METHODS
from annulus.protocol import ProtocolError, default_protocol_path, load_protocol, parse_protocol
from annulus.protocol.schema import PerVisitPlan
from annulus.stats.compare import METHODS

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "per_visit_methods.json").read_text())
TIED = ["--data", str(STATS / "tied_small.csv"), "--subject", "subject", "--arm", "arm",
        "--visit", "visit", "--value", "vas", "--baseline", "baseline", "--control", "control"]


def shipped() -> dict:
    return yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))


def with_plan(tmp_path: Path, per_visit) -> Path:
    data = shipped()
    if per_visit is None:
        data.pop("analysis")
    else:
        data["analysis"] = {"per_visit": per_visit}
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.req("X-1.3", "P-8.2")
def test_shipped_protocol_pre_specifies_ancova_with_rank_sensitivity():
    plan = load_protocol(default_protocol_path()).analysis.per_visit
    assert (plan.primary, plan.endpoint, plan.covariate) == ("ancova", "change", "baseline")
    assert plan.sensitivity == ["rank"]


def test_a_protocol_without_a_plan_still_loads(tmp_path):
    assert load_protocol(with_plan(tmp_path, None)).analysis is None


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize(
    "per_visit, expected",
    [
        ({"primary": "ancova", "covariate": "baseline", "sensitivty": ["rank"]},
         ["analysis.per_visit.sensitivty: Extra inputs are not permitted"]),
        ({"primary": "anova"}, ["analysis.per_visit.primary: Input should be 'ancova', 'welch' or 'auto'"]),
        ({"primary": "rank"}, ["analysis.per_visit.primary: Input should be"]),
        ({"primary": "welch", "sensitivity": ["rank", "bootstrap"]},
         ["analysis.per_visit.sensitivity[1]: Input should be"]),
        ({"primary": "ancova"}, ["analysis.per_visit.covariate: the ANCOVA needs its covariate"]),
        ({"primary": "welch", "covariate": "baseline"},
         ["analysis.per_visit.covariate: only the ANCOVA uses a covariate"]),
        ({"primary": "welch", "sensitivity": ["rank", "welch", "rank"]},
         ["analysis.per_visit.sensitivity[1]: 'welch' is already the primary analysis",
          "analysis.per_visit.sensitivity[2]: 'rank' is listed twice"]),
        ({"primary": "welch", "endpoint": "percent"}, ["analysis.per_visit.endpoint: Input should be"]),
        ({"sensitivity": ["rank"]}, ["analysis.per_visit.primary: Field required"]),
    ],
    ids=["unknown key", "unknown primary", "rank as primary", "unknown sensitivity",
         "ancova without covariate", "covariate without ancova", "repeated sensitivity",
         "unknown endpoint", "no primary"],
)
def test_a_bad_plan_is_refused_naming_the_field(tmp_path, capsys, per_visit, expected):
    path = with_plan(tmp_path, per_visit)
    with pytest.raises(ProtocolError) as info:
        parse_protocol(path.read_bytes())
    assert len(info.value.errors) == len(expected), info.value.errors
    for line, start in zip(info.value.errors, expected, strict=True):
        assert line.startswith(start), (line, start)
    assert main(["protocol", "validate", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[0].startswith(expected[0])


def test_an_empty_analysis_section_is_refused(tmp_path):
    data = shipped()
    data["analysis"] = {"population": ["itt"]}  # a misspelt key (the section is "populations")
    with pytest.raises(ProtocolError) as info:
        parse_protocol(yaml.safe_dump(data, allow_unicode=True))
    assert sorted(info.value.errors) == ["analysis.per_visit: Field required",
                                         "analysis.population: Extra inputs are not permitted"]


# ---- annulus compare --protocol ------------------------------------------------------------------


@pytest.mark.req("P-8.2")
def test_compare_with_the_protocol_runs_the_pre_specified_plan(capsys):
    assert main(["compare", *TIED, "--protocol", str(default_protocol_path())]) == 0
    out = capsys.readouterr().out
    assert out.startswith("analysis plan: protocol ChiCTR2200058291 version 1.0, analysis.per_visit"
                          " — primary ancova, sensitivity rank")
    for block in out.split("== ")[1:]:
        primary = block.index("primary analysis (pre-specified): ANCOVA (change ~ arm + baseline)")
        sensitivity = block.index("sensitivity analysis (pre-specified): rank tests")
        assert primary < sensitivity
        assert "adjusted difference" in block[primary:sensitivity]
        assert "Dunnett p" in block[primary:sensitivity]
        assert "Hodges–Lehmann shift" in block[sensitivity:]
        assert "Shapiro" not in block  # the data-chosen rule is not run


@pytest.mark.req("P-8.2")
def test_compare_with_the_protocol_as_json_matches_r(capsys):
    assert main(["compare", *TIED, "--protocol", str(default_protocol_path()), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["method"], out["sensitivity"], out["endpoint"]) == ("ancova", ["rank"], "change")
    assert out["plan_source"].startswith("protocol ChiCTR2200058291")
    for v, ref in zip(out["visits"], REF["tied_small"]["visits"], strict=True):
        got = {c["arm"]: c["test"] for c in v["vs_control"]}
        for want in ref["ancova"]["vs_control"]:
            assert got[want["arm"]]["estimate"] == pytest.approx(want["estimate"], rel=1e-9)
            assert got[want["arm"]]["upper"] == pytest.approx(want["upper"], rel=1e-9)
        (rank,) = v["sensitivity"]
        hl = {c["arm"]: c["test"] for c in rank["vs_control"]}
        for want in ref["rank"]["vs_control"]:
            assert hl[want["arm"]]["estimate"] == want["median_of_differences"]
            assert hl[want["arm"]]["lower"] == pytest.approx(want["lower"], abs=1.5e-4)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("method, heading", [("welch", "primary analysis: Welch t tests"),
                                             ("rank", "primary analysis: rank tests"),
                                             ("ancova", "primary analysis: ANCOVA")])
def test_compare_method_on_the_command_line(capsys, method, heading):
    assert main(["compare", *TIED, "--method", method]) == 0
    out = capsys.readouterr().out
    assert out.count(heading) == 2 and "sensitivity" not in out


def test_the_command_the_engine_and_the_schema_know_the_same_methods():
    assert CLI_METHODS == METHODS
    sensitivity = PerVisitPlan.model_fields["sensitivity"].annotation.__args__[0].__args__
    assert set(sensitivity) == set(METHODS)


def test_compare_without_plan_or_method_keeps_the_data_chosen_rule(capsys):
    assert main(["compare", *TIED, "--sensitivity", "ancova"]) == 0
    out = capsys.readouterr().out
    assert "primary analysis: test chosen by the data — normal in every arm" in out
    assert "sensitivity analysis: ANCOVA (change ~ arm + baseline)" in out


def one_line_error(capsys, argv, *words):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a --method outside its choices
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


PROTOCOL = str(default_protocol_path())
NO_BASELINE = [*TIED[:-4], "--control", "control"]


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize(
    "argv, words",
    [
        ([*TIED, "--method", "median"], ["--method", "'median'"]),
        ([*TIED, "--sensitivity", "rank,bootstrap"], ["--sensitivity", "'bootstrap'"]),
        ([*TIED, "--method", "rank", "--sensitivity", "rank"], ["--sensitivity", "already the primary"]),
        ([*TIED, "--protocol", PROTOCOL, "--method", "welch"],
         ["--method", "pre-specifies 'ancova'", "analysis.per_visit"]),
        ([*TIED, "--protocol", PROTOCOL, "--endpoint", "value"], ["--endpoint", "pre-specifies 'change'"]),
        ([*NO_BASELINE, "--protocol", PROTOCOL], ["--baseline", "analysis.per_visit.covariate"]),
        ([*NO_BASELINE, "--method", "ancova", "--endpoint", "value"], ["ancova", "baseline"]),
    ],
    ids=["unknown method", "unknown sensitivity", "sensitivity is primary", "method against plan",
         "endpoint against plan", "plan without baseline", "ancova without baseline"],
)
def test_compare_bad_method_is_one_line(capsys, argv, words):
    one_line_error(capsys, ["compare", *argv], *words)


@pytest.mark.req("P-8.2")
def test_compare_with_a_bad_or_missing_plan_is_one_line(tmp_path, capsys):
    bad = with_plan(tmp_path, {"primary": "ancova", "covariate": "baseline", "sensitivty": ["rank"]})
    one_line_error(capsys, ["compare", *TIED, "--protocol", str(bad)],
                   "analysis.per_visit.sensitivty: Extra inputs are not permitted")
    none = with_plan(tmp_path, None)
    one_line_error(capsys, ["compare", *TIED, "--protocol", str(none)],
                   "no analysis plan", "--method")
