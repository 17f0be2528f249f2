"""The analysis datasets feed the statistics engine as they are: ``annulus mmrm``, ``compare`` and
``dose`` run on the exported ``adeff_vas.csv`` (issue 13: ``annulus export --adam OUT && annulus
mmrm --data OUT/adeff…`` runs the primary analysis), and a blinded export has no treatment column."""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import re
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.dictionary import build
from annulus.interchange import adam, sample
from annulus.protocol import default_protocol_path, load_protocol

pytestmark = pytest.mark.req("X-7.6")

# true mean VAS change at 12 months by group label, and the arm each label stands for
EFFECT = {"A": 0.0, "B": -8.0, "C": -16.0, "D": -30.0}
ARM_OF = {"A": "control", "B": "low", "C": "mid", "D": "high"}


@pytest.fixture(scope="module")
def proto():
    p = load_protocol(default_protocol_path())
    return p, build(p)


def _trial(p, d, n: int, *, arms: bool = False) -> list:
    """Sample participants whose VAS improves by the group's effect (reached by 3 months), with a
    participant-level random intercept, so that an arm and a dose effect exist."""
    rng = random.Random(7)
    out = []
    for s in sample.subjects(p, d, n, seed=3, labels=True):
        level = rng.gauss(0, 8)
        base = round(min(100.0, max(40.0, rng.gauss(65, 10))), 1)
        days = {v.visit: v.day for v in s.visits}
        records = []
        for r in s.records:
            if r.form == "vas" and r.visit in days:
                if r.visit == "baseline":
                    v = base
                else:
                    ramp = min(1.0, (days[r.visit] or 0) / 91)
                    v = base + ramp * (EFFECT[s.group_label] - 10) + level + rng.gauss(0, 6)
                v = round(min(100.0, max(0.0, v)), 1)
                r = dataclasses.replace(r, values={"vas_mm": v}, computed={"vas_mm": v})
            records.append(r)
        extra = {"arm": ARM_OF[s.group_label]} if arms else {}
        out.append(dataclasses.replace(s, records=tuple(records), **extra))
    return out


def _export(tmp_path, p, d, subjects, blinding: str) -> Path:
    out = tmp_path / f"adam-{blinding}"
    out.mkdir()
    adam.write(iter(subjects), sample.context(p, d, "adam", blinding=blinding), out)
    return out


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _itt_with_followup(subjects) -> set:
    """ITT participants with a baseline and at least one post-baseline VAS (those the MMRM fits)."""
    have = set()
    for s in subjects:
        visits = {v.visit for v in s.visits if v.outcome == "attended"}
        vas = {r.visit for r in s.records if r.form == "vas" and r.visit in visits}
        if s.randomised_at and "baseline" in vas and vas - {"baseline"}:
            have.add(s.subject)
    return have


def test_mmrm_runs_the_primary_analysis_on_the_export(tmp_path, capsys, proto):
    p, d = proto
    subjects = _trial(p, d, 48)
    out = _export(tmp_path, p, d, subjects, "labels")
    doc = _run(capsys, ["mmrm", "--data", str(out / "adeff_vas.csv"), "--formula", "CHG ~ BASE + TRT01P*AVISIT",
                        "--subject", "USUBJID", "--visit", "AVISIT", "--cov", "us", "--json"])
    assert doc["n_subjects"] == len(_itt_with_followup(subjects)) > 40
    rows = list(csv.DictReader(open(out / "adeff_vas.csv", encoding="utf-8")))
    assert doc["n_obs"] == len(rows)
    visits = ["w1", "m1", "m3", "m6", "m12", "m18", "m24"]
    assert doc["covariance"]["visits"] == visits
    arms = {r["TRT01P"] for r in doc["lsmeans"]}
    assert arms == {"Group A", "Group B", "Group C", "Group D"}
    assert len(doc["lsmeans"]) == 4 * len(visits)
    at12 = {r["TRT01P"]: r for r in doc["lsmeans"] if r["AVISIT"] == "m12"}
    # the simulated change is -10 + effect: each arm's LS-mean CI holds it
    for label, effect in EFFECT.items():
        r = at12[f"Group {label}"]
        assert r["lower"] < effect - 10 < r["upper"], (label, r)
    d12 = {r["arm"]: r for r in doc["contrasts"] if r["visit"] == "m12"}
    assert d12["Group D"]["control"] == "Group A"
    assert d12["Group D"]["p"] < 0.001


def test_compare_and_dose_run_on_the_export(tmp_path, capsys, proto):
    p, d = proto
    subjects = _trial(p, d, 48)
    out = _export(tmp_path, p, d, subjects, "labels")
    data = str(out / "adeff_vas.csv")
    table = ["--data", data, "--subject", "USUBJID", "--arm", "TRT01P", "--visit", "AVISITN", "--value", "AVAL",
             "--baseline", "BASE", "--control", "Group A"]
    doc = _run(capsys, ["compare", *table, "--responder-threshold", "15", "--json"])
    assert [v["visit"] for v in doc["visits"]] == ["7", "30", "91", "182", "365", "547", "730"]
    m12 = next(v for v in doc["visits"] if v["visit"] == "365")
    assert m12["endpoint"] == "change"
    by_arm = {s["arm"]: s for s in m12["summary"]}
    assert set(by_arm) == {"Group A", "Group B", "Group C", "Group D"}
    rows = [r for r in csv.DictReader(open(data, encoding="utf-8")) if r["AVISIT"] == "m12"]
    assert sum(s["value"]["n"] for s in by_arm.values()) == len(rows)
    assert by_arm["Group D"]["change"]["mean"] < by_arm["Group A"]["change"]["mean"] - 15
    assert "responders" in m12

    doc = _run(capsys, ["dose", *table, "--dose", "Group A=0,Group B=5,Group C=10,Group D=20", "--at", "365",
                        "--json"])
    assert doc["mcpmod"]["visit"] == "365"
    assert any(t["significant"] for t in doc["mcpmod"]["tests"])
    m12 = next(v for v in doc["visits"] if v["visit"] == "365")
    high = next(r for r in m12["dunnett"] if r["arm"] == "Group D")
    assert high["lower"] < EFFECT["D"] < high["upper"]
    assert m12["trend"]["p"] < 0.001


def test_treatment_level_export_gives_dose_scores_to_dose(tmp_path, capsys, proto):
    p, d = proto
    subjects = _trial(p, d, 48, arms=True)
    out = _export(tmp_path, p, d, subjects, "arms")
    data = str(out / "adeff_vas.csv")
    rows = list(csv.DictReader(open(data, encoding="utf-8")))
    assert {(r["GRPLBL"], r["TRT01PN"]) for r in rows} == {("Group A", "0"), ("Group B", "5"),
                                                           ("Group C", "10"), ("Group D", "20")}
    doc = _run(capsys, ["dose", "--data", data, "--subject", "USUBJID", "--arm", "TRT01PN", "--visit", "AVISITN",
                        "--value", "AVAL", "--baseline", "BASE", "--control", "0", "--dose", "0=0,5=5,10=10,20=20",
                        "--at", "365", "--json"])
    assert doc["doses"] == {"0": 0.0, "5": 5.0, "10": 10.0, "20": 20.0}
    assert any(t["significant"] for t in doc["mcpmod"]["tests"])
    doc = _run(capsys, ["mmrm", "--data", data, "--formula", "CHG ~ BASE + TRT01P*AVISIT", "--subject", "USUBJID",
                        "--visit", "AVISIT", "--cov", "us", "--control", "Placebo (2 mL normal saline)", "--json"])
    assert {r["TRT01P"] for r in doc["lsmeans"]} == {a.name.en for a in p.arms}
    high = next(r for r in doc["contrasts"] if r["visit"] == "m12" and r["arm"].startswith("High"))
    assert high["estimate"] == pytest.approx(EFFECT["D"], abs=10)


@pytest.mark.req("X-7.6", "X-3.8")
def test_blinded_export_has_no_treatment_column(tmp_path, proto):
    import pyreadstat

    p, d = proto
    subjects = _trial(p, d, 8)
    out = _export(tmp_path, p, d, subjects, "blinded")
    files = sorted(out.iterdir())
    assert {f.name for f in files} >= {"adsl.csv", "adsl.xpt", "adeff.csv", "adeff.xpt", "adeff_vas.csv"}
    for f in files:
        if f.suffix == ".csv":
            header = next(csv.reader(open(f, encoding="utf-8")))
        else:
            header = pyreadstat.read_xport(str(f), encoding="utf-8", metadataonly=True)[1].column_names
        assert "USUBJID" in header
        # TRTxxP/TRTxxA (planned/actual treatment, N or not), arm, group label, dose; TRTSDT (the
        # transplantation date) is the same for every arm
        leaked = [c for c in header if re.match(r"^(TRT\d\d[PA]|TRTP|TRTA|ARM|ACTARM|GRPLBL|DOSE)", c.upper())]
        assert not leaked, (f.name, leaked)
        if f.suffix == ".csv":
            text = f.read_text(encoding="utf-8")
            assert "Group " not in text and not any(a.name.en in text for a in p.arms), f.name
    # the same participants with labels do get the column: the test would see a leak
    labelled = _export(tmp_path, p, d, subjects, "labels")
    assert "TRT01P" in next(csv.reader(open(labelled / "adeff_vas.csv", encoding="utf-8")))
