"""The source-data verification plan (P-7.1), as pure functions: which data points need
verification against source. No Django import.

A data point is addressed as (participant, visit, form, record, item). Critical items are always
verified; of everything else, ``sample_percent`` is drawn per (participant, visit, form) from a
SHA-256 of the plan's seed and that address, so the draw is the same on every machine and every
run (Python's ``hash()`` is salted per process and is never used).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class CriticalRule:
    form: str
    items: frozenset = frozenset()  # empty: every item of the form
    serious_only: bool = False


@dataclass(frozen=True)
class Plan:
    seed: str
    sample_percent: float
    critical: tuple[CriticalRule, ...] = ()

    @classmethod
    def from_protocol(cls, sdv) -> Plan | None:
        """The plan of a protocol's ``sdv`` section (None: the protocol has no plan)."""
        if sdv is None:
            return None
        return cls(seed=sdv.seed, sample_percent=float(sdv.sample_percent),
                   critical=tuple(CriticalRule(c.form, frozenset(c.items), c.serious_only) for c in sdv.critical))

    def is_critical(self, form: str, item: str, *, serious: bool = False) -> bool:
        for rule in self.critical:
            if rule.form != form:
                continue
            if rule.serious_only and not serious:
                return False
            return not rule.items or item in rule.items
        return False


def draw(seed: str, participant: str, visit: str, form: str) -> float:
    """A number in [0, 1) fixed by the seed and the address: the first 8 bytes of
    SHA-256("seed|participant|visit|form") over 2**64."""
    digest = hashlib.sha256(f"{seed}|{participant}|{visit}|{form}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sampled(plan: Plan, participant: str, visit: str, form: str) -> bool:
    """Whether this participant's form at this visit is in the declared share of the rest."""
    return draw(plan.seed, participant, visit, form) < plan.sample_percent / 100.0


def required(plan: Plan, participant: str, visit: str, form: str, item: str, *, critical: bool | None = None,
             serious: bool = False) -> bool:
    """Whether (participant, visit, form, item) needs verification. ``critical`` is the data
    dictionary's ``sdv_critical`` flag when known; otherwise the plan's critical list decides."""
    if critical is None:
        critical = plan.is_critical(form, item, serious=serious)
    return critical or sampled(plan, participant, visit, form)


def value_hash(value) -> str:
    """SHA-256 of a value's canonical JSON (what a verification mark keeps of the value)."""
    import json

    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
