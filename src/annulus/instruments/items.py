"""The items of an eCRF form, declared once beside the instrument that scores them (no Django).

An ``Item`` is one question: its id as it appears on the form and in the stored answers, its
label in English and Simplified Chinese, its kind, unit, range and codes. A ``FormSpec`` is the
ordered items of one form. The data dictionary (``annulus.dictionary``) reads these specs.
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


@dataclass(frozen=True)
class FormSpec:
    id: str
    items: tuple[Item, ...]
    intro_en: str = ""
    intro_zh: str = ""
    extra: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)  # item id -> Ask, for the items a participant answers

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)


def codes(*pairs) -> tuple:
    return tuple((str(v), en, zh) for v, en, zh in pairs)
