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
class FormSpec:
    id: str
    items: tuple[Item, ...]
    intro_en: str = ""
    intro_zh: str = ""
    extra: dict = field(default_factory=dict)

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)


def codes(*pairs) -> tuple:
    return tuple((str(v), en, zh) for v, en, zh in pairs)
