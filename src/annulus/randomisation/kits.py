"""The kit list of a trial whose product comes in identical, numbered kits (active and placebo
look alike): how many kits each arm needs and their numbers, drawn from the list's seed.

The numbers come from a fourth stream of the seed (``SeedSequence(seed).spawn(4)[3]``; the first
three are the blocks, labels and drug codes of ``sequence.streams``, which it leaves unchanged),
so the same seed always gives the same kit list. A kit number is the prefix and
``KIT_NUMBER_DIGITS`` random digits; which group label a kit holds is a random permutation drawn
from the same stream, so neither the number nor its place in the list follows the arm. The list
names group labels, never arms (the level-2 key gives label -> arm).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .documents import _csv_bytes
from .sequence import RandomisationError

KIT_NUMBER_DIGITS = 6
# kits beyond the sample size x the dispensing visits, for breakage, loss and uneven recruitment
KIT_SPARE_FRACTION = 0.10
KIT_COLUMNS = ("serial_number", "kit_number", "group_label")
KIT_GENERATOR = "numpy.random.Generator(PCG64), SeedSequence(seed).spawn(4)[3]: kit numbers and kit labels"


def kit_counts(arms: Iterable[tuple[str, int]], per_unit: int, dispensing_visits: int,
               spare: float = KIT_SPARE_FRACTION) -> dict[str, int]:
    """Kits per arm: one ratio unit needs ``per_unit`` participants x ``dispensing_visits`` kits
    plus the spare fraction, rounded up; an arm of ratio r has r units (so 2:1 stays exactly 2:1)."""
    arms = list(arms)
    if per_unit <= 0 or dispensing_visits <= 0:
        raise RandomisationError("kits: the sample size and the number of dispensing visits must be positive")
    unit = math.ceil(per_unit * dispensing_visits * (1 + spare) - 1e-9)
    return {arm: int(ratio) * unit for arm, ratio in arms}


def kit_stream(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed)).spawn(4)[3]))


def generate_kits(counts: dict[str, int], arm_to_label: dict[str, str], seed: int, prefix: str,
                  exclude: Iterable[str] = ()) -> list[dict]:
    """The kit list: ``{"serial", "kit_number", "group_label"}`` per kit, serial 1, 2, ... in the
    order drawn. Kit numbers are unique and none is in ``exclude`` (the list's drug codes)."""
    total = sum(counts.values())
    capacity = 10**KIT_NUMBER_DIGITS
    if total > capacity // 4:
        raise RandomisationError(f"kits: {total} kits are too many for {KIT_NUMBER_DIGITS}-digit kit numbers")
    rng = kit_stream(seed)
    taken = set(exclude)
    numbers: list[str] = []
    while len(numbers) < total:
        number = f"{prefix}{int(rng.integers(capacity)):0{KIT_NUMBER_DIGITS}d}"
        if number not in taken:  # a collision is redrawn from the same stream: still reproducible
            taken.add(number)
            numbers.append(number)
    labels = [arm_to_label[arm] for arm, n in counts.items() for _ in range(n)]
    order = rng.permutation(total)
    return [{"serial": i + 1, "kit_number": numbers[i], "group_label": labels[int(order[i])]} for i in range(total)]


def kit_table_bytes(kits: list[dict]) -> bytes:
    """The sealed form of the kit list (its SHA-256 is fixed when the list is generated)."""
    rows = sorted(((k["serial"], k["kit_number"], k["group_label"]) for k in kits), key=lambda r: r[0])
    return _csv_bytes(KIT_COLUMNS, rows)
