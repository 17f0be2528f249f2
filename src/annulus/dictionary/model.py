"""The data dictionary's records: one ``Entry`` per captured item, grouped in ``FormDef``s, all in
one ``Dictionary`` (no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPES = ("visit", "screening", "log", "participant")
TYPES = ("number", "integer", "code", "choice", "text", "date", "datetime", "bool")


def _zh(language: str | None) -> bool:
    return (language or "").lower().startswith("zh")


@dataclass(frozen=True)
class Entry:
    """One captured item: its address (form, item), what it holds and where it goes in exports.

    ``codelist`` is ``((value, en, zh), ...)``; ``visits`` the protocol visit ids whose schedule
    collects the form ("screening" for the screening records, empty for the adverse-event log and
    participant-level records). ``sdv_critical`` marks items verified against source at 100 %;
    ``sdv_when`` narrows that to records meeting a condition ("serious" for adverse events).
    ``sdtm_domain``/``sdtm_testcd``/``sdtm_variable`` are mapping hints for exports (e.g. LB/HGB/LBORRES);
    ``source`` says where the item is declared; ``ref_low``/``ref_high`` a laboratory value's
    reference range."""

    form: str
    item: str
    label_en: str
    label_zh: str
    type: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    codelist: tuple = ()
    required: bool = False
    visits: tuple = ()
    sdv_critical: bool = False
    sdtm_domain: str = ""
    sdtm_testcd: str = ""
    source: str = ""
    group: str = ""
    sdtm_variable: str = ""
    sdv_when: str = ""
    ref_low: float | None = None  # a laboratory analyte's reference range (protocol file)
    ref_high: float | None = None

    def label(self, language: str | None) -> str:
        return self.label_zh if _zh(language) else self.label_en

    def codes(self, language: str | None) -> list[tuple[str, str]]:
        """The codelist as (value, label in the language)."""
        return [(v, zh if _zh(language) else en) for v, en, zh in self.codelist]

    def codelist_text(self, language: str | None) -> str:
        """``F = female; M = male`` in the language."""
        return "; ".join(self.code_lines(language))

    def code_lines(self, language: str | None) -> list[str]:
        """Each code as ``value = label``, or the label alone when it already starts with the value
        (``3 severe``, ``1.0（2022-03-28 批准）``)."""
        return [label if label == value or label.startswith((f"{value} ", f"{value}（")) else f"{value} = {label}"
                for value, label in self.codes(language)]

    @property
    def range_text(self) -> str:
        return _span(self.min, self.max)

    @property
    def reference_text(self) -> str:
        return _span(self.ref_low, self.ref_high)

    @property
    def sdtm(self) -> str:
        """``QS/VAS``, ``AE/AETERM``: domain and test code (or variable when there is no test code)."""
        second = self.sdtm_testcd or self.sdtm_variable
        return f"{self.sdtm_domain}/{second}" if self.sdtm_domain and second else self.sdtm_domain


@dataclass(frozen=True)
class FormDef:
    id: str
    name_en: str
    name_zh: str
    scope: str
    visits: tuple = ()
    items: tuple = ()
    source: str = ""

    def name(self, language: str | None) -> str:
        return self.name_zh if _zh(language) else self.name_en

    def item(self, item_id: str) -> Entry | None:
        return next((e for e in self.items if e.item == item_id), None)


@dataclass(frozen=True)
class Dictionary:
    """Every captured item of a protocol version, form by form, in the order of capture."""

    forms: tuple = ()
    protocol_version: str = ""
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._index.update({f.id: f for f in self.forms})

    def form(self, form_id: str) -> FormDef | None:
        return self._index.get(form_id)

    def entry(self, form_id: str, item_id: str) -> Entry | None:
        form = self.form(form_id)
        return form.item(item_id) if form is not None else None

    @property
    def entries(self) -> tuple:
        return tuple(e for f in self.forms for e in f.items)

    def forms_at(self, visit: str) -> tuple:
        """The forms a visit (or "screening") collects."""
        return tuple(f for f in self.forms if visit in f.visits)


def _span(low, high) -> str:
    """``0–100``, ``–25``, ``0.5–``; empty when neither bound is set."""
    if low is None and high is None:
        return ""
    return f"{'' if low is None else f'{low:g}'}–{'' if high is None else f'{high:g}'}"
