"""Seeded permuted-block randomisation with randomly mixed block sizes and a two-level key.

The generator is NumPy's ``Generator(PCG64(...))``. One ``SeedSequence(seed)`` is split with
``spawn(3)`` into three independent streams, so each part of the output depends only on the seed
and on its own stream:

1. the block stream chooses each block's size and permutes the arms inside the block;
2. the label stream permutes the arms before letters are handed out, so label "A" is not
   necessarily the first arm of the protocol (level-2 key);
3. the drug-code stream draws the opaque code printed on every label and sachet.

The same seed, arms and ``n`` therefore always give the same sequence, on any machine with the
same NumPy bit generator (PCG64 output is stable across NumPy releases).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence as SequenceType

import numpy as np

GENERATOR = "numpy.random.Generator(PCG64), SeedSequence(seed).spawn(3): blocks, labels, drug codes"

ALGORITHM = (
    "Permuted blocks with randomly mixed block sizes. A block holds k x sum(ratios) slots, each arm "
    "appearing k x ratio times in random order; k is drawn uniformly, block by block, from the "
    "multipliers that still let complete blocks fill the list exactly. If no combination of "
    "complete blocks fills n, the last block is a complete block truncated to the slots left. "
    "Group labels are letters given to the arms in a separately seeded random order."
)

# No 0/O, 1/I/L: codes are read aloud and typed from sachets.
DRUG_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
DRUG_CODE_PREFIX = "DLBP-"
DRUG_CODE_LENGTH = 6


class RandomisationError(ValueError):
    """Invalid input to sequence generation; the message names the field and the rule."""


@dataclass
class Sequence:
    """A generated allocation list with its two keys.

    ``entries`` is in serial (enrolment) order; each entry is
    ``{"serial": 1, "random_number": "001", "group_label": "A", "drug_code": "DLBP-X7K2QM"}``.
    The level-1 key is random number -> group label (``level1_key()``), the level-2 key is
    group label -> arm id (``label_to_arm``). Entries never name the arm.
    """

    entries: list[dict[str, Any]]
    label_to_arm: dict[str, str]
    seed: int
    arms: list[tuple[str, int]]
    n: int
    block_multipliers: tuple[int, ...]
    block_sizes: list[int]
    algorithm: str = ALGORITHM
    generator: str = GENERATOR
    truncated_last_block: bool = False
    arm_counts: dict[str, int] = field(default_factory=dict)

    def level1_key(self) -> dict[str, str]:
        """Random number -> group label."""
        return {e["random_number"]: e["group_label"] for e in self.entries}

    def level2_key(self) -> dict[str, str]:
        """Group label -> arm id."""
        return dict(self.label_to_arm)

    def arm_of(self, random_number: str) -> str:
        """The arm behind one random number (needs both keys; for the unblinded only)."""
        for entry in self.entries:
            if entry["random_number"] == random_number:
                return self.label_to_arm[entry["group_label"]]
        raise KeyError(random_number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n": self.n,
            "arms": [{"id": a, "ratio": r} for a, r in self.arms],
            "block_multipliers": list(self.block_multipliers),
            "block_sizes": list(self.block_sizes),
            "truncated_last_block": self.truncated_last_block,
            "algorithm": self.algorithm,
            "generator": self.generator,
            "entries": [dict(e) for e in self.entries],
            "label_to_arm": dict(self.label_to_arm),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sequence":
        arms = [(a["id"], int(a["ratio"])) for a in data["arms"]]
        label_to_arm = dict(data["label_to_arm"])
        entries = [dict(e) for e in data["entries"]]
        return cls(
            entries=entries,
            label_to_arm=label_to_arm,
            seed=int(data["seed"]),
            arms=arms,
            n=int(data["n"]),
            block_multipliers=tuple(data["block_multipliers"]),
            block_sizes=list(data["block_sizes"]),
            algorithm=data.get("algorithm", ALGORITHM),
            generator=data.get("generator", GENERATOR),
            truncated_last_block=bool(data.get("truncated_last_block", False)),
            arm_counts=_count_arms(entries, label_to_arm, arms),
        )

    @classmethod
    def from_json(cls, text: str) -> "Sequence":
        return cls.from_dict(json.loads(text))


def _count_arms(entries, label_to_arm, arms) -> dict[str, int]:
    counts = {arm_id: 0 for arm_id, _ in arms}
    for e in entries:
        counts[label_to_arm[e["group_label"]]] += 1
    return counts


def default_labels(n_arms: int) -> list[str]:
    """The group labels of a list of ``n_arms`` arms unless given: A, B, C, ..."""
    return list(string.ascii_uppercase[:n_arms])


def _validate(
    arms, n, seed, block_multipliers, labels
) -> tuple[list[tuple[str, int]], tuple[int, ...], list[str]]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RandomisationError(f"seed: must be a non-negative integer (got {seed!r})")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise RandomisationError(f"n: must be a positive integer (got {n!r})")
    arms = list(arms)
    if len(arms) < 2:
        raise RandomisationError(f"arms: at least 2 arms are needed (got {len(arms)})")
    clean: list[tuple[str, int]] = []
    for i, item in enumerate(arms):
        try:
            arm_id, ratio = item
        except (TypeError, ValueError):
            raise RandomisationError(f"arms[{i}]: must be an (arm_id, ratio) pair (got {item!r})") from None
        if not isinstance(arm_id, str) or not arm_id.strip():
            raise RandomisationError(f"arms[{i}].id: must be a non-empty string (got {arm_id!r})")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, np.integer)) or ratio < 1:
            raise RandomisationError(f"arms[{i}].ratio: must be a positive integer (got {ratio!r})")
        clean.append((arm_id, int(ratio)))
    ids = [a for a, _ in clean]
    if len(set(ids)) != len(ids):
        dup = sorted({a for a in ids if ids.count(a) > 1})
        raise RandomisationError(f"arms: ids must be unique (repeated: {', '.join(dup)})")
    mults = tuple(block_multipliers)
    if not mults or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in mults):
        raise RandomisationError(f"block_multipliers: must be positive integers (got {mults!r})")
    mults = tuple(sorted({int(k) for k in mults}))
    if labels is None:
        if len(clean) > 26:
            raise RandomisationError("labels: give labels explicitly for more than 26 arms")
        labels = default_labels(len(clean))
    else:
        labels = list(labels)
        if len(labels) != len(clean) or len(set(labels)) != len(labels) or not all(
            isinstance(lbl, str) and lbl for lbl in labels
        ):
            raise RandomisationError(
                f"labels: need {len(clean)} distinct non-empty strings, one per arm (got {labels!r})"
            )
    return clean, mults, labels


def _fillable(total: int, sizes: SequenceType[int]) -> list[bool]:
    """fillable[r] is True when r slots can be filled exactly with complete blocks."""
    ok = [False] * (total + 1)
    ok[0] = True
    for r in range(1, total + 1):
        ok[r] = any(s <= r and ok[r - s] for s in sizes)
    return ok


def _draw_drug_codes(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    """Unique codes drawn independently of the allocation, so a code says nothing about an arm."""
    alphabet = np.array(list(DRUG_CODE_ALPHABET))
    capacity = len(DRUG_CODE_ALPHABET) ** DRUG_CODE_LENGTH
    if n > capacity // 2:
        raise RandomisationError(f"n: too large for {DRUG_CODE_LENGTH}-character drug codes (got {n})")
    seen: set[str] = set()
    codes: list[str] = []
    while len(codes) < n:
        code = prefix + "".join(rng.choice(alphabet, size=DRUG_CODE_LENGTH))
        if code not in seen:  # a collision is redrawn from the same stream: still reproducible
            seen.add(code)
            codes.append(code)
    return codes


def permuted_blocks(
    block_rng: np.random.Generator, arm_list: list[tuple[str, int]], mults: tuple[int, ...], n: int
) -> tuple[list[str], list[int], bool]:
    """The arm of each of ``n`` slots, the block sizes used and whether the last block was cut.

    This is the block part of ``generate_sequence`` (and of each stratum's list in
    ``annulus.randomisation.stratified``): every draw comes from ``block_rng``.
    """
    unit = sum(r for _, r in arm_list)
    sizes = [k * unit for k in mults]
    fillable = _fillable(n, sizes)
    # With no exact fill, complete blocks fill the largest fillable prefix and one truncated
    # block covers the rest (fewer slots than the smallest block).
    exact_target = n if fillable[n] else max(r for r in range(n + 1) if fillable[r])

    allocations: list[str] = []
    block_sizes: list[int] = []
    remaining = exact_target
    while remaining > 0:
        choices = [k for k in mults if k * unit <= remaining and fillable[remaining - k * unit]]
        k = int(choices[int(block_rng.integers(len(choices)))])
        block = [arm_id for arm_id, ratio in arm_list for _ in range(ratio * k)]
        allocations.extend(block[i] for i in block_rng.permutation(len(block)))
        block_sizes.append(k * unit)
        remaining -= k * unit
    truncated = exact_target < n
    if truncated:
        k = int(mults[int(block_rng.integers(len(mults)))])
        block = [arm_id for arm_id, ratio in arm_list for _ in range(ratio * k)]
        allocations.extend(block[i] for i in block_rng.permutation(len(block))[: n - exact_target])
        block_sizes.append(k * unit)
    return allocations, block_sizes, truncated


def _label_map(label_rng: np.random.Generator, arm_list: list[tuple[str, int]], label_list: list[str]) -> dict[str, str]:
    """Group label -> arm: the arms in a random order from the label stream, then the letters."""
    shuffled_arms = [arm_list[i][0] for i in label_rng.permutation(len(arm_list))]
    return dict(zip(label_list, shuffled_arms))


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """The three generators of ``SeedSequence(seed).spawn(3)``: blocks, labels, drug codes."""
    block_ss, label_ss, code_ss = np.random.SeedSequence(int(seed)).spawn(3)
    return tuple(np.random.Generator(np.random.PCG64(ss)) for ss in (block_ss, label_ss, code_ss))


def generate_sequence(
    arms: Iterable[tuple[str, int]],
    n: int,
    seed: int,
    block_multipliers: Iterable[int] = (1, 2),
    labels: Iterable[str] | None = None,
    drug_code_prefix: str = DRUG_CODE_PREFIX,
    number_width: int | None = None,
) -> Sequence:
    """Generate a reproducible permuted-block allocation list of ``n`` random numbers.

    ``arms`` are ``(arm_id, ratio)`` pairs in protocol order. Block sizes are
    ``k * sum(ratios)`` for each ``k`` in ``block_multipliers`` (4 and 8 for 1:1:1:1 with the
    default ``(1, 2)``). When ``n`` can be filled with complete blocks, the arm counts are exactly
    proportional to the ratios (25 per arm for 1:1:1:1 and 100). ``labels`` default to "A", "B", ...
    Random numbers are zero-padded to ``number_width`` digits (default: the width of ``n``, at
    least 3). Drug codes are ``drug_code_prefix`` plus 6 characters of ``DRUG_CODE_ALPHABET``.
    """
    arm_list, mults, label_list = _validate(arms, n, seed, block_multipliers, labels)
    n = int(n)
    min_width = max(3, len(str(n)))
    if number_width is None:
        number_width = min_width
    elif isinstance(number_width, bool) or not isinstance(number_width, int) or number_width < len(str(n)):
        raise RandomisationError(
            f"number_width: must be an integer of at least {len(str(n))} (got {number_width!r})"
        )
    if not isinstance(drug_code_prefix, str):
        raise RandomisationError(f"drug_code_prefix: must be a string (got {drug_code_prefix!r})")
    seed = int(seed)
    block_rng, label_rng, code_rng = streams(seed)

    allocations, block_sizes, truncated = permuted_blocks(block_rng, arm_list, mults, n)

    label_to_arm = _label_map(label_rng, arm_list, label_list)
    arm_to_label = {arm: label for label, arm in label_to_arm.items()}

    codes = _draw_drug_codes(code_rng, n, drug_code_prefix)
    entries = [
        {
            "serial": i + 1,
            "random_number": str(i + 1).zfill(number_width),
            "group_label": arm_to_label[arm],
            "drug_code": codes[i],
        }
        for i, arm in enumerate(allocations)
    ]
    return Sequence(
        entries=entries,
        label_to_arm=label_to_arm,
        seed=seed,
        arms=arm_list,
        n=n,
        block_multipliers=mults,
        block_sizes=block_sizes,
        truncated_last_block=truncated,
        arm_counts=_count_arms(entries, label_to_arm, arm_list),
    )
