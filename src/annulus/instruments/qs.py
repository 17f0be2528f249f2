"""How the library's questionnaires are named in an SDTM QS (Questionnaires) domain (no Django).

Each questionnaire has its category (``QSCAT``) and, for the derived scores an export carries
with a test code of their own, (score id, ``QSTESTCD``, ``QSTEST``, unit); the score ids are
those of ``annulus.interchange.scores`` (``Record.computed``). The items' test codes are declared
on each form (``Item.sdtm_code``, else ``FormSpec.sdtm_prefix`` and the item's number) and reach
the export as the data dictionary's SDTM hints (``annulus.dictionary.mapping``). A score a protocol declares as an
analysis parameter (``analysis.parameters``: code and name) and not listed here takes the
parameter's code and name; the SDTM export derives a sponsor-defined code for whatever is left.
Forms that are not questionnaires (vital signs, imaging, laboratory panels) have no entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import joa, koos, nrs, odi, sf36, vas


@dataclass(frozen=True)
class Questionnaire:
    category: str  # QSCAT
    scores: tuple = ()  # (score id, QSTESTCD, QSTEST, unit)


QUESTIONNAIRES: dict[str, Questionnaire] = {
    vas.NAME: Questionnaire("VAS PAIN"),
    odi.NAME: Questionnaire("OSWESTRY DISABILITY INDEX", (("odi_percent", "ODITOT", "ODI Total Score (%)", "%"),)),
    joa.NAME: Questionnaire("JOA LOW BACK PAIN SCORE", (("joa_total", "JOATOT", "JOA Total Score", ""),)),
    sf36.NAME: Questionnaire("SF-36 HEALTH SURVEY", (
        ("pcs", "SF36PCS", "SF-36 Physical Component Summary", ""),
        ("mcs", "SF36MCS", "SF-36 Mental Component Summary", ""),
        ("pf", "SF36PF", "SF-36 Physical Functioning", ""), ("rp", "SF36RP", "SF-36 Role-Physical", ""),
        ("bp", "SF36BP", "SF-36 Bodily Pain", ""), ("gh", "SF36GH", "SF-36 General Health", ""),
        ("vt", "SF36VT", "SF-36 Vitality", ""), ("sf", "SF36SF", "SF-36 Social Functioning", ""),
        ("re", "SF36RE", "SF-36 Role-Emotional", ""), ("mh", "SF36MH", "SF-36 Mental Health", ""))),
    nrs.NAME: Questionnaire("NRS PAIN"),
    koos.NAME: Questionnaire("KOOS"),
}


def questionnaire(instrument: str | None) -> Questionnaire | None:
    """The QS naming of an instrument, or None when it is not a questionnaire of the library."""
    return QUESTIONNAIRES.get(instrument or "")
