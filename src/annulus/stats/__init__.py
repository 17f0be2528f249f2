"""Statistics engine: a pure-Python library (no Django) that the trial and the CLI both use.

>>> from annulus.stats import sample_size
>>> sample_size(delta=10.6, sd=10.27, power=0.9, dropout=0.2, groups=4).total
100

Modules: ``samplesize`` (P-8.1), ``compare`` (per-visit comparisons, P-8.2, with ``ancova`` and
``hodges_lehmann`` for the pre-specified and sensitivity analyses), ``mmrm`` (mixed model
for repeated measures, P-8.3), ``dose_response`` (Dunnett, trend test, MCP-Mod), ``safety_tables``
(P-8.4) and ``power`` (power by simulation). See docs/statistics.md.
"""

from __future__ import annotations

import importlib

from annulus.stats._io import InputError
from annulus.stats.ancova import ancova
from annulus.stats.compare import (
    choose_test,
    compare_file,
    compare_visits,
    fisher_exact_2xk,
    load_long_table,
    mann_whitney,
    omnibus_test,
    responder_test,
    summarise,
    two_sample_test,
    welch_anova,
)
from annulus.stats.dose_response import (
    adjusted_p_values,
    critical_value,
    dunnett,
    dunnett_contrasts,
    fit_dose_model,
    linear_contrast,
    mcpmod,
    mmrm_dunnett,
    optimal_contrasts,
    target_dose,
    trend_test,
)
from annulus.stats.hodges_lehmann import hodges_lehmann
from annulus.stats.power import analytic_t_power, simulate_power, simulate_trial
from annulus.stats.safety_tables import (
    clopper_pearson,
    load_safety_tables,
    pooled_safety_table,
    safety_table,
)
from annulus.stats.samplesize import achieved_power, power_t, power_z, sample_size

# The MMRM lives in its own module and is loaded on first use, so that everything above works
# without it (and importing the package stays fast).
_LAZY = {"fit_mmrm": "annulus.stats.mmrm", "MmrmError": "annulus.stats.mmrm"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "mmrm":
        return importlib.import_module("annulus.stats.mmrm")
    raise AttributeError(f"module 'annulus.stats' has no attribute '{name}'")


__all__ = [
    "InputError",
    "MmrmError",
    "achieved_power",
    "ancova",
    "adjusted_p_values",
    "analytic_t_power",
    "choose_test",
    "clopper_pearson",
    "compare_file",
    "compare_visits",
    "critical_value",
    "dunnett",
    "dunnett_contrasts",
    "fisher_exact_2xk",
    "fit_dose_model",
    "fit_mmrm",
    "hodges_lehmann",
    "linear_contrast",
    "load_long_table",
    "load_safety_tables",
    "mann_whitney",
    "mcpmod",
    "mmrm_dunnett",
    "omnibus_test",
    "optimal_contrasts",
    "pooled_safety_table",
    "power_t",
    "power_z",
    "responder_test",
    "safety_table",
    "sample_size",
    "simulate_power",
    "simulate_trial",
    "summarise",
    "target_dose",
    "trend_test",
    "two_sample_test",
    "welch_anova",
]
