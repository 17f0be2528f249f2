"""Every number of the trial report equals what the command-line engines give on the same exported
analysis datasets (issue 15): ``annulus mmrm`` (LS-means, Type 3 tests, contrasts, dose trend),
``annulus dose --mmrm`` (Dunnett-adjusted contrasts, MCP-Mod); the safety and conduct tables are
recounted from the CSV files; and the document shows those numbers, rounded as it says. The same
datasets give the same bytes, and a blinded export gives a report with nothing by arm."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.dictionary import build
from annulus.interchange import adam, sample
from annulus.protocol import default_protocol_path, load_protocol
from annulus.report import document

from . import test_adam_statistics as trial

pytestmark = [pytest.mark.req("X-8.5"), pytest.mark.req("P-8.3")]


@pytest.fixture(scope="module")
def proto():
    p = load_protocol(default_protocol_path())
    return p, build(p)


def _export(root: Path, p, d, subjects, blinding: str) -> Path:
    out = root / blinding
    out.mkdir()
    ctx = sample.context(p, d, "adam", blinding=blinding)
    adam.write(iter(subjects), ctx, out)
    (out / "manifest.json").write_text(json.dumps({"format": "adam", "stamp": ctx.stamp,
                                                   "scope": {"blinding": blinding}}), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, proto):
    p, d = proto
    subjects = trial._trial(p, d, 100, arms=True)
    root = tmp_path_factory.mktemp("report-numbers")
    return {b: _export(root, p, d, subjects, b) for b in ("blinded", "labels", "arms")}


@pytest.fixture(scope="module")
def results(exported, proto):
    p, _ = proto
    return {b: document.compute(folder, p, language="en", code_version="test") for b, folder in exported.items()}


def _cli(capsys, argv) -> dict:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _close(a, b, rel=1e-9, abs_=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def _arms(folder: Path) -> dict[str, float]:
    with open(folder / "adsl.csv", encoding="utf-8") as fh:
        return {r["TRT01P"]: float(r["TRT01PN"]) for r in csv.DictReader(fh) if r["TRT01P"]}


def test_primary_mmrm_equals_annulus_mmrm(results, exported, proto, capsys):
    p, _ = proto
    plan = p.analysis
    ep = results["arms"]["endpoints"][0]
    assert ep["parameter"] == plan.primary.parameter == "VAS" and ep["role"] == "primary"
    doses = _arms(exported["arms"])
    control = results["arms"]["control"]
    assert doses[control] == 0
    trend = ",".join(f"{a}={d:g}" for a, d in doses.items())
    cli = _cli(capsys, ["mmrm", "--data", str(exported["arms"] / "adeff_vas.csv"), "--formula",
                        "CHG ~ BASE + TRT01P*AVISIT", "--subject", "USUBJID", "--visit", "AVISIT",
                        "--cov", plan.primary.model.covariance, "--df", plan.primary.model.df,
                        "--method", plan.primary.model.estimation, "--arm", "TRT01P", "--control", control,
                        "--trend", trend, "--json"])
    assert ep["model"]["n_subjects"] == cli["n_subjects"] and ep["model"]["n_obs"] == cli["n_obs"]
    assert _close(ep["model"]["neg2_loglik"], cli["neg2_loglik"])
    mine = {(r["arm"], r["visit"]): r for r in ep["lsmeans"]}
    assert len(mine) == len(cli["lsmeans"]) == 4 * len(plan.primary.visits)
    for r in cli["lsmeans"]:
        m = mine[(r["TRT01P"], r["AVISIT"])]
        for k in ("estimate", "se", "df", "lower", "upper"):
            assert _close(m[k], r[k]), (k, m, r)
    mine = {(r["arm"], r["visit"]): r for r in ep["contrasts"]}
    assert len(mine) == len(cli["contrasts"]) == 3 * len(plan.primary.visits)
    for r in cli["contrasts"]:
        m = mine[(r["arm"], r["visit"])]
        for k in ("estimate", "se", "df", "t", "p", "lower", "upper"):
            assert _close(m[k], r[k]), (k, m, r)
    assert [(t["effect"], t["num_df"]) for t in ep["type3"]] == [(t["effect"], t["num_df"]) for t in cli["type3"]]
    for a, b in zip(ep["type3"], cli["type3"]):
        assert _close(a["F"], b["F"]) and _close(a["p"], b["p"]) and _close(a["den_df"], b["den_df"])
    assert len(ep["trend"]) == len(cli["trend"]) == len(plan.primary.visits)
    for a, b in zip(ep["trend"], cli["trend"]):
        assert a["visit"] == b["visit"]
        for k in ("estimate", "se", "df", "t", "p", "lower", "upper"):
            assert _close(a[k], b[k]), (k, a, b)


def test_dunnett_and_mcpmod_equal_annulus_dose(results, exported, proto, capsys):
    p, _ = proto
    plan = p.analysis
    ep = results["arms"]["endpoints"][0]
    doses = _arms(exported["arms"])
    control = results["arms"]["control"]
    spec = plan.dose_response.mcpmod
    day = {v.id: v.offset_days for v in p.schedule.visits}
    models = [f"{k}" if v is None else f"{k}={v:g}" for k, v in dict(spec.models).items()]
    argv = ["dose", "--data", str(exported["arms"] / "adeff_vas.csv"), "--subject", "USUBJID", "--arm", "TRT01P",
            "--visit", "AVISITN", "--value", "AVAL", "--baseline", "BASE", "--control", control,
            "--dose", ",".join(f"{a}={d:g}" for a, d in doses.items()), "--at", f"{day[spec.visit]:g}",
            "--alpha", f"{spec.alpha:g}", "--lower-is-better", "true", "--mmrm", "--df", plan.primary.model.df,
            "--json"]
    for m in models:
        argv += ["--model", m]
    if spec.delta is not None:
        argv += ["--delta", f"{spec.delta:g}"]
    cli = _cli(capsys, argv)
    visit_of_day = {float(d): v for v, d in ep["visit_days"].items()}
    adjusted = {(visit_of_day[float(r["visit"])], r["arm"]): r for r in cli["mmrm_dunnett"]["contrasts"]}
    assert len(adjusted) == len(ep["contrasts"])
    for c in ep["contrasts"]:
        r = adjusted[(c["visit"], c["arm"])]
        assert _close(c["estimate"], r["estimate"], 1e-7)
        # the quasi-Monte-Carlo integration of the multivariate t is deterministic: same numbers
        assert _close(c["p_dunnett"], r["p"], 1e-9, 1e-9), (c, r)
        assert _close(c["lower_dunnett"], r["lower"], 1e-9) and _close(c["upper_dunnett"], r["upper"], 1e-9)
    mine, theirs = ep["mcpmod"], cli["mcpmod"]
    assert mine["selected"] == theirs["selected"] and _close(mine["critical_value"], theirs["critical_value"])
    for a, b in zip(mine["tests"], theirs["tests"]):
        assert a["model"] == b["model"] and _close(a["t"], b["t"]) and _close(a["p"], b["p"])


def test_the_document_shows_the_numbers_rounded(results):
    html = document.render(results["arms"])
    ep = results["arms"]["endpoints"][0]
    for c in ep["contrasts"]:
        assert document.num(c["estimate"]) in html
        assert document.ci(c["lower"], c["upper"]) in html
    for r in ep["lsmeans"]:
        assert f'{document.num(r["estimate"])}<br><span class="ci">({document.ci(r["lower"], r["upper"])})</span>' in html
    assert document.results_digest(results["arms"]) in html


def test_same_datasets_give_the_same_bytes(exported, proto, tmp_path):
    p, _ = proto
    copy = tmp_path / "again"
    shutil.copytree(exported["labels"], copy)  # a column and a line per group, and no Dunnett to wait for
    first = document.build(exported["labels"], p, language="zh-hans", fmt="html", code_version="test")
    second = document.build(copy, p, language="zh-hans", fmt="html", code_version="test")
    assert first == second and len(first) > 50_000


def test_blinded_report_has_nothing_by_arm(results, exported, proto):
    r = results["blinded"]
    assert r["blinding"] == "blinded" and r["arms"] is None
    for ep in r["endpoints"]:
        assert ep["contrasts"] == [] and ep["trend"] == [] and ep["mcpmod"] is None and ep["responders"] is None
        assert {x["arm"] for x in ep["lsmeans"]} <= {None}
    assert {x["arm"] for x in r["endpoints"][0]["lsmeans"]} == {None}  # the primary model is fitted, pooled
    assert [c["arm"] for c in r["safety"]["columns"]] == [None]
    assert [c["arm"] for c in r["conduct"]["columns"]] == [None]
    html = document.render(r)
    p, _ = proto
    for arm in p.arms:
        assert arm.name.en not in html and arm.name.zh not in html
    assert not re.search(r"Group [A-D]", html)
    # the pooled numbers are the same whatever the blind of the export
    assert r["baseline"]["rows"][0]["cells"][-1] == results["arms"]["baseline"]["rows"][0]["cells"][-1]


def test_labels_report_compares_no_group_with_placebo(results):
    r = results["labels"]
    assert r["blinding"] == "labels" and r["arms"] == ["Group A", "Group B", "Group C", "Group D"]
    ep = r["endpoints"][0]
    assert {x["arm"] for x in ep["lsmeans"]} == set(r["arms"])
    assert ep["contrasts"] == [] and ep["trend"] == [] and ep["mcpmod"] is None
    # the same model as the treatment report: the LS-means per group equal those per arm
    arms = results["arms"]["endpoints"][0]["lsmeans"]
    assert len(arms) == len(ep["lsmeans"]) == 28
    assert sorted(round(x["estimate"], 6) for x in ep["lsmeans"]) == sorted(round(x["estimate"], 6) for x in arms)


def test_annulus_report_from_an_export_folder(exported, results, tmp_path, capsys):
    """``annulus report --from DIR`` builds the document from the files alone and writes its numbers."""
    out, numbers = tmp_path / "blinded.html", tmp_path / "blinded.json"
    assert main(["report", "--from", str(exported["blinded"]), "--out", str(out), "--json", str(numbers),
                 "--no-progress"]) == 0
    assert "html report (blinded)" in capsys.readouterr().out
    got = json.loads(numbers.read_text(encoding="utf-8"))
    want = json.loads(json.dumps(document.public(results["blinded"])))
    want["code_version"] = got["code_version"]  # the command names the installed version
    assert got == want
    assert document.results_digest(results["blinded"]) != "" and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_analyses_in_worker_processes_give_the_same_report(results, exported, proto):
    """A large trial's end points are analysed in worker processes (``document.workers_for``): the
    numbers and the document are those of one process."""
    p, _ = proto
    assert document.workers_for(100) == 1 and document.workers_for(10_000) >= 1
    two = document.compute(exported["arms"], p, language="en", code_version="test", workers=2)
    assert json.dumps(two, sort_keys=True) == json.dumps(results["arms"], sort_keys=True)
    assert document.render(two) == document.render(results["arms"])


def test_worker_processes_that_fail_leave_the_analyses_to_this_process(results, exported, proto, monkeypatch):
    import concurrent.futures
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, *args):
            raise BrokenProcessPool("a worker could not start")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Broken)
    p, _ = proto
    again = document.compute(exported["arms"], p, language="en", code_version="test", workers=2)
    assert json.dumps(again, sort_keys=True) == json.dumps(results["arms"], sort_keys=True)
