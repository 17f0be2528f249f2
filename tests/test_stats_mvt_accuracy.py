"""How accurate the multivariate t integration is (statistics issue item 7b): the standard error
of the quasi-Monte Carlo estimate, from the spread of its 8 independent scramblings, on the
probabilities behind the MCP-Mod adjusted p-values of the R fixtures (DoseFinding's biom example,
nearly collinear contrasts; the simulated trial, four contrasts in a three-dimensional space) and
on a Dunnett-type correlation. The comparison with R itself is in test_stats_mcpmod.py (1e-4) and
test_stats_dunnett.py (5e-5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annulus.stats.dose_response import _mvt_box, _mvt_box_shifts

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("key", ["mcpmod_biom", "mcpmod_trial"])
def test_mcpmod_p_values_have_a_standard_error_of_about_1e_5(key):
    ref = REF[key]
    corr = np.asarray(ref["corr"], float)
    k = corr.shape[0]
    # the contrasts are nearly collinear (biom) or exactly so (trial)
    assert np.linalg.eigvalsh(corr).min() < 1e-5
    for t, p_r in zip(ref["t"], ref["p"], strict=True):
        shifts = _mvt_box_shifts(corr, np.full(k, -np.inf), np.full(k, float(t)), float(ref["df"]))
        se = shifts.std(ddof=1) / np.sqrt(len(shifts))
        assert se < 2.5e-5
        p = 1 - _mvt_box(corr, np.full(k, -np.inf), np.full(k, float(t)), float(ref["df"]))
        assert p == pytest.approx(1 - shifts.mean(), abs=1e-15)
        # R's own value carries mvtnorm's error too (up to 4e-5 by its estimate): 1e-4 in all
        assert p == pytest.approx(p_r, abs=1e-4)


def test_dunnett_type_probabilities_are_far_tighter():
    corr = np.full((3, 3), 0.5)
    np.fill_diagonal(corr, 1.0)
    for c in (2.0, 2.5, 3.0):
        shifts = _mvt_box_shifts(corr, np.full(3, -c), np.full(3, c), 96.0)
        assert shifts.std(ddof=1) / np.sqrt(len(shifts)) < 1e-6
