"""A data point's value as a reader sees it, in the page's language: coded answers by the data
dictionary's label, numbers as typed into the form (an integer item never as "52.0"), with the
item's unit when asked, times in local time, yes/no."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext as _


def number_text(value, kind: str = "number") -> str:
    """A number as the form writes it: no ".0" on a whole number, no exponent, no trailing zeros
    the typist did not type (the stored float keeps none)."""
    if isinstance(value, bool):
        return str(value)
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not d.is_finite():
        return str(value)
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d.normalize(), "f")
    return text


def shown_value(value, entry=None, language=None, *, unit: bool = False) -> str:
    if value is None or value == "":
        return "—"
    codes = {}
    if entry is not None and entry.codelist:
        zh = (language or "").lower().startswith("zh")
        codes = {str(c[0]).lower() if isinstance(c[0], bool) else str(c[0]): (c[2] if zh else c[1])
                 for c in entry.codelist}
    if isinstance(value, bool):
        return codes.get(str(value).lower()) or (_("yes") if value else _("no"))
    if isinstance(value, list):
        return ", ".join(codes.get(str(v), str(v)) for v in value) or "—"
    if str(value) in codes:
        return codes[str(value)]
    kind = getattr(entry, "type", "") if entry is not None else ""
    if isinstance(value, (int, float)) or (kind in ("number", "integer") and _numeric(value)):
        text = number_text(value, kind)
        item_unit = getattr(entry, "unit", "") if entry is not None else ""
        return f"{text} {item_unit}" if unit and item_unit else text
    text = str(value)
    if len(text) >= 19 and text[4] == "-" and text[10] == "T":
        from datetime import datetime

        from django.utils import timezone

        try:
            return timezone.localtime(datetime.fromisoformat(text)).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return text
    return text


def _numeric(value) -> bool:
    try:
        Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    return True
