"""``GET /api/v1/dictionary``: the data dictionary of the protocol in force."""

from __future__ import annotations

from ninja import Field, Router, Schema

from annulus.accounts.permissions import require

from .selectors import data_dictionary

PREFIX = "/dictionary"
router = Router(tags=["dictionary"])


class DictionaryCodeOut(Schema):
    value: str = Field(..., description="the value as stored")
    en: str
    zh: str


class DictionaryItemOut(Schema):
    item: str = Field(..., description="item id, unique within its form")
    label_en: str
    label_zh: str
    type: str = Field(..., description="number | integer | code | choice | text | date | datetime | bool")
    unit: str
    min: float | None
    max: float | None
    ref_low: float | None = Field(..., description="reference range of a laboratory value (protocol file)")
    ref_high: float | None
    required: bool = Field(..., description="needed to complete the form")
    codelist: list[DictionaryCodeOut]
    visits: list[str] = Field(..., description="protocol visit ids (\"screening\" for screening records)")
    sdv_critical: bool = Field(..., description="verified against source for every participant")
    sdv_when: str = Field(..., description="\"serious\": only for serious adverse events; empty: always")
    sdtm_domain: str
    sdtm_testcd: str
    sdtm_variable: str
    group: str
    source: str = Field(..., description="where the item is declared")


class DictionaryFormOut(Schema):
    id: str
    name_en: str
    name_zh: str
    scope: str = Field(..., description="visit | screening | log | participant")
    visits: list[str]
    source: str
    items: list[DictionaryItemOut]


class DictionaryOut(Schema):
    protocol_version: str
    forms: list[DictionaryFormOut]


@router.get("", response=DictionaryOut, summary="The data dictionary: every captured item of the protocol in force")
def dictionary(request):
    from annulus.dictionary import as_dict

    require(request.user, "protocol.view")
    return as_dict(data_dictionary())
