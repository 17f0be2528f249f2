"""The derived scores an export carries, declared once (no Django).

The eCRF computes each scored form's results when it is saved (``annulus.visits.crf.compute``)
and keeps them nested as the instruments return them. An export wants one number per score:
``flatten(form_id, computed)`` turns the stored dict into ``{score id: number}`` and
``SCORES[form_id]`` declares each id with its labels and unit, so a writer can name its columns,
variable labels and QS test codes without reading the nesting. Both come from the instruments
library (``annulus.instruments.results``: each instrument's results, keyed by the instrument,
which is the id of the form that uses it).

A score that cannot be computed (an unanswered form, no adjacent normal disc) is ``None``; a
score the stored dict does not hold at all (``change_from_baseline`` before a baseline VAS) is
left out.
"""

from __future__ import annotations

from annulus.instruments import results
from annulus.instruments.results import MODIC_ORDINAL, SF36_SCALES, finite
from annulus.instruments.results import ResultScore as Score

SCORES: dict[str, tuple[Score, ...]] = results.RESULTS

__all__ = ["MODIC_ORDINAL", "SCORES", "SF36_SCALES", "Score", "flatten", "flatten_keys", "flatten_record", "score"]


def score(form_id: str, score_id: str) -> Score | None:
    """The declaration of one score (None when the form has no such score)."""
    return results.result_score(form_id, score_id)


def flatten(form_id: str, computed) -> dict:
    """The stored (nested) results of one form as ``{score id: number}`` for the ids ``SCORES``
    declares for that form; ``{}`` for a form without scores or without computed results."""
    return results.flatten(form_id, computed)


def flatten_keys(computed, keys) -> dict:
    """An instrument's stored results reduced to the score keys a protocol's analysis declares
    (``analysis.parameters``: the NRS's ``score``, the KOOS subscales ``pain`` ...) as ``{key:
    number}``; a key the results hold without a number (a subscale not scored) is None."""
    if not isinstance(computed, dict) or not computed:
        return {}
    return {k: finite(computed.get(k)) for k in keys if k in computed}


def flatten_record(computed) -> dict:
    """A procedure record's stored results (a kit return's ``compliance``: percent, days, units,
    acceptable) as ``{key_part: number or yes/no}``; text parts (the kit number, dates) are the
    record's own items and left out."""
    if not isinstance(computed, dict):
        return {}
    out = {}
    for key, value in computed.items():
        parts = value.items() if isinstance(value, dict) else ((None, value),)
        for part, v in parts:
            if isinstance(v, bool) or finite(v) is not None:
                out[key if part is None else f"{key}_{part}"] = v
    return out
