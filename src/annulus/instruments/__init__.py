"""Instrument scoring: a pure-Python core (no Django), used by the eCRF and `annulus score`.

Scores are computed from the raw item answers, never typed in (X-5.7). Every instrument takes
its items as a list in the published order and coding, ``None`` for an unanswered item, and
returns a :class:`Score`; an answer outside the form's codes raises :class:`InstrumentError`
naming the item (``items[6]``). Too many missing answers give ``score=None`` with a reason.

    >>> score("odi", [2, 2, 2, 1, 2, 2, 1, 2, 1, 1]).score
    32.0

Laboratory panels need the protocol's reference ranges, so they are not item lists: see
:func:`annulus.instruments.labs.assess_panel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .base import InstrumentError, Score
from .imaging import score_disc_height, score_modic, score_pfirrmann, score_rom
from .joa import score_joa
from .koos import score_koos
from .nrs import score_nrs
from .odi import score_odi
from .sf36 import score_sf36
from .vas import score_vas
from .vitals import score_vitals


@dataclass(frozen=True)
class Instrument:
    name: str
    title: str
    n_items: int
    items: str  # what the item list holds, in order
    scorer: Callable[..., Score]
    requirement: str

    def score(self, items: list[Any], **options: Any) -> Score:
        return self.scorer(items, **options)


INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("vas", "Visual analogue scale for pain (0–100 mm)", 1,
                   "one value in mm", score_vas, "P-5.1"),
        Instrument("odi", "Oswestry Disability Index 2.1a (%)", 10,
                   "ten section scores 0–5", score_odi, "P-5.2"),
        Instrument("joa", "JOA low back pain score (29 points)", 14,
                   "subjective 3, clinical signs 3, daily activities 7, bladder 1",
                   score_joa, "P-5.3"),
        Instrument("sf36", "SF-36 / RAND 36-Item Health Survey 1.0", 36,
                   "the 36 response codes as printed on the form, 1-based", score_sf36, "P-5.4"),
        Instrument("modic", "Modic type per endplate", 2,
                   "superior and inferior endplate: none, I, II, III", score_modic, "P-5.5"),
        Instrument("pfirrmann", "Pfirrmann grade of the index disc", 1,
                   "grade I–V", score_pfirrmann, "P-5.5"),
        Instrument("disc_height", "Disc height loss against adjacent normal discs (%)", 3,
                   "index disc, disc above, disc below in mm (null: neighbour not normal)",
                   score_disc_height, "P-5.5"),
        Instrument("rom", "Flexion–extension range of motion at L4-5 (degrees)", 2,
                   "segmental angle on flexion and on extension film", score_rom, "P-5.5"),
        Instrument("koos", "Knee injury and Osteoarthritis Outcome Score (five subscales, 0-100)", 42,
                   "42 box codes 0-4: symptoms S1-S7, pain P1-P9, ADL A1-A17, sport/rec SP1-SP5, QOL Q1-Q4",
                   score_koos, "X-5.7"),
        Instrument("nrs", "Numeric rating scale for pain (0-10)", 1,
                   "one whole number 0-10", score_nrs, "X-5.7"),
        Instrument("vitals", "Vital signs with plausibility limits", 5,
                   "temperature °C, pulse /min, respiration /min, systolic and diastolic mmHg",
                   score_vitals, "P-5.6"),
    )
}


def get_instrument(name: str) -> Instrument:
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise InstrumentError(
            "name", f"unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}"
        ) from None


def score(name: str, items: list[Any], **options: Any) -> Score:
    """Score one instrument from its raw items (options, e.g. ODI ``max_missing``)."""
    return get_instrument(name).score(items, **options)


__all__ = ["INSTRUMENTS", "Instrument", "InstrumentError", "Score", "get_instrument", "score"]
