"""The causalities an adverse event is assessed for: one to each procedure the protocol names
(``safety.causality_of``, stored in ``AdverseEvent.causality`` by the item's id) and the one to
the study product (``causality_product``, always). Outward - forms, API, exports, casebook,
audit - each is a flat field ``causality_<id>``."""

from __future__ import annotations

from .models import PRODUCT_CAUSALITY

PREFIX = "causality_"


def items(protocol) -> list:
    """The protocol's causality items (``CausalityItem``), in the protocol's order."""
    safety = getattr(protocol, "safety", None)
    return list(getattr(safety, "causality_of", None) or [])


def fields(protocol) -> list[str]:
    """The flat field names an adverse event of ``protocol`` has: each item's, then the product's."""
    return [c.field for c in items(protocol)] + [PRODUCT_CAUSALITY]


def is_causality_field(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def flat(ae, protocol) -> dict:
    """``causality_<id>`` -> the stored code of each item the protocol declares ("" when the event
    holds none), then any the event holds that the protocol no longer declares (in id order),
    then the product's."""
    stored = ae.causality if isinstance(ae.causality, dict) else {}
    declared = [c.id for c in items(protocol)]
    out = {f"{PREFIX}{i}": stored.get(i, "") for i in declared}
    out.update({f"{PREFIX}{i}": stored[i] for i in sorted(set(stored) - set(declared))})
    out[PRODUCT_CAUSALITY] = ae.causality_product
    return out


def stored(data: dict) -> dict:
    """Fields in their flat form (``causality_<id>`` among them) as the model stores them: the
    procedures' causalities gathered into ``causality``, the others unchanged."""
    out, causality = {}, {}
    for k, v in data.items():
        if is_causality_field(k) and k != PRODUCT_CAUSALITY:
            causality[k[len(PREFIX):]] = v
        else:
            out[k] = v
    out["causality"] = causality
    return out
