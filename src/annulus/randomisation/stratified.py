"""Stratified permuted blocks: one sealed allocation list per stratum.

A *stratum* is one combination of factor levels, for example ``(site=bj, pain=severe)``. Each
stratum has its own list, generated exactly like the unstratified list of
``annulus.randomisation.sequence`` (randomly mixed block sizes, complete blocks, the same
ratios), so the arms are balanced within every stratum at the end of every block.

Where the randomness comes from, all from the one seed:

- each stratum's block stream is ``SeedSequence(seed, spawn_key=(0, w1, ..., w8))``, where
  ``w1..w8`` are the SHA-256 digest of the stratum's canonical text (``stratum_key``) read as
  eight 32-bit big-endian words. The stream depends only on the seed and on the stratum itself,
  not on how many other strata there are or their order;
- the label stream (level-2 key) is child 1 of ``SeedSequence(seed).spawn(3)``, as for the
  unstratified list: one label permutation for the whole trial, the same as the unstratified
  list of the same seed would give;
- the drug-code stream is child 2: the codes of all strata are drawn from it in stratum order,
  so no code appears twice in the trial.

Random numbers are ``<stratum number>-<serial in the stratum>`` (``2-014``), unique in the trial.
Regenerating from the seed, arms, factors and list length reproduces every stratum's list byte
for byte; the documents (``annulus.randomisation.documents``) are sealed with the same
checksums as the unstratified list.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from .sequence import (
    DRUG_CODE_PREFIX,
    RandomisationError,
    _draw_drug_codes,
    _label_map,
    _validate,
    permuted_blocks,
    streams,
)

STRATIFIED_GENERATOR = (
    "numpy.random.Generator(PCG64); per stratum SeedSequence(seed, spawn_key=(0, SHA-256 of the "
    "stratum as 8 words)) for the blocks; SeedSequence(seed).spawn(3)[1] labels, [2] drug codes"
)

STRATIFIED_ALGORITHM = (
    "Stratified permuted blocks. Each stratum (one combination of factor levels) has its own list "
    "of permuted blocks with randomly mixed block sizes, made exactly as the unstratified list, "
    "from its own stream derived from the seed and the stratum. One group-label permutation "
    "serves the whole trial; drug codes are unique across all strata."
)


def stratum_key(levels: Mapping[str, str], factor_ids: Iterable[str]) -> str:
    """The canonical text of a stratum: JSON ``[[factor, level], ...]`` in protocol factor order,
    without spaces. It is what the stratum's stream is derived from."""
    return json.dumps([[f, levels[f]] for f in factor_ids], separators=(",", ":"), ensure_ascii=False)


def stratum_label(levels: Mapping[str, str], factor_ids: Iterable[str]) -> str:
    """``site=bj; pain=severe``: the stratum as printed in tables."""
    return "; ".join(f"{f}={levels[f]}" for f in factor_ids)


def stratum_block_stream(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(0, *words))))


def validate_factors(factors: Any, where: str = "factors") -> list[tuple[str, tuple[str, ...]]]:
    """``[(factor_id, (level, ...)), ...]`` or a mapping id -> levels; ids and levels unique."""
    if isinstance(factors, Mapping):
        factors = list(factors.items())
    try:
        items = list(factors)
    except TypeError:
        raise RandomisationError(f"{where}: must be a list of (id, levels) pairs (got {factors!r})") from None
    if not items:
        raise RandomisationError(f"{where}: at least one factor is needed")
    clean: list[tuple[str, tuple[str, ...]]] = []
    for i, item in enumerate(items):
        try:
            fid, levels = item
        except (TypeError, ValueError):
            raise RandomisationError(f"{where}[{i}]: must be an (id, levels) pair (got {item!r})") from None
        if not isinstance(fid, str) or not fid:
            raise RandomisationError(f"{where}[{i}].id: must be a non-empty string (got {fid!r})")
        if isinstance(levels, str):
            raise RandomisationError(f"{where}[{i}].levels: must be a list of strings (got {levels!r})")
        levels = tuple(levels)
        if len(levels) < 2 or not all(isinstance(v, str) and v for v in levels):
            raise RandomisationError(f"{where}[{i}].levels: at least 2 non-empty strings (got {list(levels)!r})")
        if len(set(levels)) != len(levels):
            raise RandomisationError(f"{where}[{i}].levels: levels must be unique")
        clean.append((fid, levels))
    ids = [f for f, _ in clean]
    if len(set(ids)) != len(ids):
        raise RandomisationError(f"{where}: factor ids must be unique")
    return clean


@dataclass
class StratifiedSequence:
    """The lists of all strata with one level-2 key.

    ``entries`` holds every stratum's list, stratum after stratum; each entry is
    ``{"stratum": 2, "serial": 14, "random_number": "2-014", "group_label": "B",
    "drug_code": "DLBP-..."}`` and never names the arm. ``strata`` describes each stratum:
    ``{"number": 2, "levels": {...}, "key": ..., "label": ..., "block_sizes": [...],
    "truncated_last_block": False}``.
    """

    entries: list[dict[str, Any]]
    strata: list[dict[str, Any]]
    label_to_arm: dict[str, str]
    seed: int
    arms: list[tuple[str, int]]
    factors: list[tuple[str, tuple[str, ...]]]
    per_stratum: int
    block_multipliers: tuple[int, ...]
    algorithm: str = STRATIFIED_ALGORITHM
    generator: str = STRATIFIED_GENERATOR
    arm_counts: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.entries)

    @property
    def factor_ids(self) -> list[str]:
        return [f for f, _ in self.factors]

    def level1_key(self) -> dict[str, str]:
        return {e["random_number"]: e["group_label"] for e in self.entries}

    def level2_key(self) -> dict[str, str]:
        return dict(self.label_to_arm)

    def stratum_of(self, levels: Mapping[str, str]) -> dict[str, Any]:
        """The stratum a participant with these factor levels belongs to."""
        for fid, allowed in self.factors:
            if levels.get(fid) not in allowed:
                raise RandomisationError(
                    f"levels.{fid}: must be one of {', '.join(allowed)} (got {levels.get(fid)!r})"
                )
        key = stratum_key(levels, self.factor_ids)
        return next(s for s in self.strata if s["key"] == key)

    def entries_for(self, levels: Mapping[str, str]) -> list[dict[str, Any]]:
        """One stratum's list, in serial order."""
        number = self.stratum_of(levels)["number"]
        return [e for e in self.entries if e["stratum"] == number]

    def arm_of(self, random_number: str) -> str:
        for entry in self.entries:
            if entry["random_number"] == random_number:
                return self.label_to_arm[entry["group_label"]]
        raise KeyError(random_number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "stratified_blocks",
            "seed": self.seed,
            "per_stratum": self.per_stratum,
            "arms": [{"id": a, "ratio": r} for a, r in self.arms],
            "factors": [{"id": f, "levels": list(levels)} for f, levels in self.factors],
            "block_multipliers": list(self.block_multipliers),
            "algorithm": self.algorithm,
            "generator": self.generator,
            "strata": [dict(s, levels=dict(s["levels"])) for s in self.strata],
            "entries": [dict(e) for e in self.entries],
            "label_to_arm": dict(self.label_to_arm),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StratifiedSequence":
        arms = [(a["id"], int(a["ratio"])) for a in data["arms"]]
        entries = [dict(e) for e in data["entries"]]
        label_to_arm = dict(data["label_to_arm"])
        return cls(
            entries=entries,
            strata=[dict(s) for s in data["strata"]],
            label_to_arm=label_to_arm,
            seed=int(data["seed"]),
            arms=arms,
            factors=[(f["id"], tuple(f["levels"])) for f in data["factors"]],
            per_stratum=int(data["per_stratum"]),
            block_multipliers=tuple(data["block_multipliers"]),
            algorithm=data.get("algorithm", STRATIFIED_ALGORITHM),
            generator=data.get("generator", STRATIFIED_GENERATOR),
            arm_counts=_count(entries, label_to_arm, arms),
        )

    @classmethod
    def from_json(cls, text: str) -> "StratifiedSequence":
        return cls.from_dict(json.loads(text))


def _count(entries, label_to_arm, arms) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for e in entries:
        per = counts.setdefault(e["stratum"], {a: 0 for a, _ in arms})
        per[label_to_arm[e["group_label"]]] += 1
    return counts


def generate_stratified(
    arms: Iterable[tuple[str, int]],
    factors: Any,
    per_stratum: int,
    seed: int,
    block_multipliers: Iterable[int] = (1, 2),
    labels: Iterable[str] | None = None,
    drug_code_prefix: str = DRUG_CODE_PREFIX,
    number_width: int | None = None,
) -> StratifiedSequence:
    """One permuted-block list of ``per_stratum`` random numbers for every stratum.

    ``factors`` are ``(factor_id, levels)`` pairs in protocol order; the strata are every
    combination of levels, numbered 1, 2, ... with the last factor varying fastest. Each list is
    long enough for a stratum that takes the whole trial when ``per_stratum`` is the sample size.
    """
    arm_list, mults, label_list = _validate(arms, per_stratum, seed, block_multipliers, labels)
    factor_list = validate_factors(factors)
    per_stratum = int(per_stratum)
    if number_width is None:
        number_width = max(3, len(str(per_stratum)))
    elif isinstance(number_width, bool) or not isinstance(number_width, int) or number_width < len(str(per_stratum)):
        raise RandomisationError(
            f"number_width: must be an integer of at least {len(str(per_stratum))} (got {number_width!r})"
        )
    if not isinstance(drug_code_prefix, str):
        raise RandomisationError(f"drug_code_prefix: must be a string (got {drug_code_prefix!r})")
    seed = int(seed)
    factor_ids = [f for f, _ in factor_list]
    combos = list(itertools.product(*(levels for _, levels in factor_list)))
    total = len(combos) * per_stratum
    _, label_rng, code_rng = streams(seed)
    label_to_arm = _label_map(label_rng, arm_list, label_list)
    arm_to_label = {arm: label for label, arm in label_to_arm.items()}
    codes = _draw_drug_codes(code_rng, total, drug_code_prefix)
    stratum_width = len(str(len(combos)))

    entries: list[dict[str, Any]] = []
    strata: list[dict[str, Any]] = []
    for number, combo in enumerate(combos, start=1):
        levels = dict(zip(factor_ids, combo))
        key = stratum_key(levels, factor_ids)
        allocations, block_sizes, truncated = permuted_blocks(
            stratum_block_stream(seed, key), arm_list, mults, per_stratum
        )
        strata.append({
            "number": number,
            "levels": levels,
            "key": key,
            "label": stratum_label(levels, factor_ids),
            "block_sizes": block_sizes,
            "truncated_last_block": truncated,
        })
        offset = (number - 1) * per_stratum
        for i, arm in enumerate(allocations):
            entries.append({
                "stratum": number,
                "serial": i + 1,
                "random_number": f"{str(number).zfill(stratum_width)}-{str(i + 1).zfill(number_width)}",
                "group_label": arm_to_label[arm],
                "drug_code": codes[offset + i],
            })
    return StratifiedSequence(
        entries=entries,
        strata=strata,
        label_to_arm=label_to_arm,
        seed=seed,
        arms=arm_list,
        factors=factor_list,
        per_stratum=per_stratum,
        block_multipliers=mults,
        arm_counts=_count(entries, label_to_arm, arm_list),
    )
