"""The items of an eCRF form, declared once beside the instrument that scores them (no Django).

An ``Item`` is one question: its id as it appears on the form and in the stored answers, its
label in English and Simplified Chinese, its kind, unit, range and codes, and its SDTM test code.
A ``FormSpec`` is the ordered items of one form. The data dictionary (``annulus.dictionary``) reads these specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    id: str
    en: str
    zh: str
    kind: str = "number"  # number | code | choice | text | bool
    choices: tuple = ()  # (value, en, zh)
    unit: str = ""
    min: float | None = None
    max: float | None = None
    step: str = "any"
    required: bool = True  # needed to complete the form
    group: str = ""
    sdtm_code: str = ""  # the item's SDTM test code when it is not the form's prefix and number


    def label(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en


@dataclass(frozen=True)
class Ask:
    """How an item is put to the participant who answers on their own (the self-entry pages),
    where the eCRF's label is the investigator's short name for it: the question in full, an
    optional lead shared by a run of items ("During the past 4 weeks, ..."), and the answers in
    words without their points (value -> (en, zh); values not listed keep the eCRF's words).
    An empty Chinese text falls back to the eCRF's Chinese label: no translation is made up."""

    en: str
    zh: str = ""
    lead_en: str = ""
    lead_zh: str = ""
    choices: dict = field(default_factory=dict)

    def text(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en

    def lead(self, language: str | None) -> str:
        return self.lead_zh if (language or "").lower().startswith("zh") else self.lead_en


def in_language(words: tuple[str, str], language: str | None) -> str:
    """The English or the Chinese of an (en, zh) pair."""
    return words[1] if (language or "").lower().startswith("zh") else words[0]


# how a patient-reported instrument is put to the participant (``SelfReport.way``)
CHOICE = "choice"  # each item a list of answers in words, one to tick
LINE = "line"  # one item: a 100 mm line marked with a touch (the VAS); a number field without script
SCALE = "scale"  # one item: a row of numbered buttons from ``min`` to ``max`` (the NRS), none chosen
WAYS = (CHOICE, LINE, SCALE)


@dataclass(frozen=True)
class SelfReport:
    """That an instrument is patient-reported, and how the participant's own pages (self-entry)
    ask it: which item groups the participant answers (empty: every item; the rest of the form is
    the investigator's, and the participant's part is then saved as a draft), the way it is asked,
    the introduction shown before its first question, and for a line or a scale its question and
    the words at its two ends. Every text is an (English, Chinese) pair; ``words`` holds the
    line's further texts: ``name`` (what a screen reader calls it), ``number`` (the number
    field's label where the page runs no script) and ``unmarked`` (before the first touch)."""

    intro: tuple[str, str]
    groups: tuple[str, ...] = ()
    way: str = CHOICE
    question: tuple[str, str] = ("", "")
    ends: tuple[tuple[str, str], ...] = ()
    words: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.way not in WAYS:
            raise ValueError(f"way must be one of {', '.join(WAYS)}, got {self.way!r}")
        if self.way != CHOICE and len(self.ends) != 2:
            raise ValueError(f"a {self.way} needs the words at its two ends")

    def text(self, key: str, language: str | None) -> str:
        """``intro``, ``question``, ``low`` and ``high`` (the ends) or a key of ``words``, in
        ``language`` ("" when not declared)."""
        if key in ("intro", "question"):
            pair = getattr(self, key)
        elif key in ("low", "high"):
            pair = self.ends[0 if key == "low" else 1] if self.ends else ("", "")
        else:
            pair = self.words.get(key, ("", ""))
        return in_language(pair, language)


@dataclass(frozen=True)
class FormSpec:
    id: str
    items: tuple[Item, ...]
    intro_en: str = ""
    intro_zh: str = ""
    extra: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)  # item id -> Ask, for the items a participant answers
    self_report: SelfReport | None = None  # patient-reported: how the participant is asked
    # where the items go in an SDTM export: the domain of a form that is not a questionnaire of the
    # library (a questionnaire's is QS, ``annulus.instruments.qs``), and the prefix of the items'
    # test codes, followed by the item's number (``ODI`` + s1 -> ODI01), for items without a code
    sdtm_domain: str = ""
    sdtm_prefix: str = ""

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)

    @property
    def patient_reported(self) -> bool:
        return self.self_report is not None

    def patient_items(self) -> tuple[Item, ...]:
        """The items the participant answers, in the form's order (none when the form is not
        patient-reported)."""
        if self.self_report is None:
            return ()
        groups = self.self_report.groups
        return tuple(i for i in self.items if not groups or i.group in groups)

    @property
    def patient_answers_all(self) -> bool:
        """Whether the participant's answers are the whole form (else the rest is the staff's)."""
        return self.patient_reported and len(self.patient_items()) == len(self.items)


def codes(*pairs) -> tuple:
    return tuple((str(v), en, zh) for v, en, zh in pairs)
