"""Responders exactly at the threshold (issue 14, item 3): compared at the data's precision.

Reference by exact arithmetic: 16.4 − 1.4 = 15 exactly, so an improvement of 15 mm with a
threshold of 15 is a response (binary floating point gives 14.999999999999998).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats.compare import compare_visits, decimal_places


def _table(rows):
    return pd.DataFrame(rows, columns=["subject", "arm", "visit", "value", "baseline"])


@pytest.mark.req("P-8.2")
def test_improvement_of_exactly_the_threshold_counts():
    assert 16.4 - 1.4 < 15  # the trap: binary floating point
    rows = []
    for i in range(8):  # every subject improves by exactly 15 mm (one decimal recorded)
        rows.append((f"C{i}", "control", "m1", 1.4 + i, 16.4 + i))
        rows.append((f"H{i}", "high", "m1", 2.3 + i, 17.3 + i if i % 2 else 17.2 + i))
    res = compare_visits(_table(rows), "control", responder_threshold=15)
    rates = {r["arm"]: r["responders"] for r in res["visits"][0]["responders"]["rates"]}
    assert rates["control"] == 8  # 15.0 >= 15, every one of them
    assert rates["high"] == 4  # 15.0 four times, 14.9 four times


@pytest.mark.req("P-8.2")
def test_precision_is_read_from_the_data():
    assert decimal_places([16.4, 1.4, 70]) == 1
    assert decimal_places([15, 30]) == 0
    assert decimal_places([0.125, 3]) == 3
    rows = [(f"C{i}", "control", "m1", 0.3, 0.3 + 0.15 + d) for i, d in enumerate([0, 0, 0.01, -0.01])]
    rows += [(f"H{i}", "high", "m1", 0.1, 0.55) for i in range(4)]
    res = compare_visits(_table(rows), "control", responder_threshold=0.15)
    rates = {r["arm"]: r["responders"] for r in res["visits"][0]["responders"]["rates"]}
    assert rates == {"control": 3, "high": 4}  # 0.15, 0.15, 0.16 yes; 0.14 no


@pytest.mark.req("P-8.2")
def test_cli_counts_responders_at_the_threshold(tmp_path, capsys):
    lines = ["subject,arm,visit,vas,baseline"]
    for i in range(4):
        lines += [f"C{i},control,w1,1.4,16.4", f"H{i},high,w1,{30 + i}.5,40.1"]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    argv = ["compare", "--data", str(path), "--subject", "subject", "--arm", "arm", "--visit",
            "visit", "--value", "vas", "--baseline", "baseline", "--control", "control",
            "--responder-threshold", "15", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    rates = {r["arm"]: r["responders"] for r in out["visits"][0]["responders"]["rates"]}
    assert rates == {"control": 4, "high": 0}
