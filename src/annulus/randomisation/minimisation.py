"""Minimisation (Pocock & Simon 1975) with a random element, factors, weights and ratios.

For a new participant with levels ``(x_1, ..., x_F)`` of the prognostic factors, and for each
candidate arm ``j``:

1. for every factor ``i``, take the numbers ``n_ik`` of earlier participants at level ``x_i``
   allocated to each arm ``k``, add the new participant to arm ``j`` (``n_ij + 1``), and divide
   each count by its arm's ratio (so 2:1 counts as balanced at 2 to 1);
2. the imbalance ``d_i(j)`` is the range (max - min, the default, as in Pocock & Simon) or the
   (population) variance of these ratio-scaled counts;
3. the total imbalance is ``G_j = sum_i w_i * d_i(j)`` with the factor weights ``w_i``.

The arm or arms with the smallest ``G_j`` are *preferred*. The preferred arms together get
probability ``p`` and the others share ``1 - p``; within each group the probability is split in
proportion to the arms' ratios (equally for 1:1). When every arm is preferred (the first
participant, or an exact tie), the probabilities are the ratios. ``p = 1`` is deterministic
minimisation with ties broken at random.

One uniform number decides each allocation. For the participant at position ``k`` (the number
of earlier allocations, 0 for the first) it is the first draw of
``Generator(PCG64(SeedSequence(seed, spawn_key=(3, k))))``: stream 3, after the blocks (0), labels
(1) and drug codes (2) of ``SeedSequence(seed).spawn(3)``. The allocation is therefore a
function of the seed and of the ordered history of (levels, arm) alone: ``Minimiser`` keeps no
state between calls, so the application can read the history from its database and call
``assign`` inside one transaction under a lock.

Blinding: the marginal totals (arm counts per factor level) and the imbalance scores reveal
which arm the next participant will probably get. They are computed inside ``assign`` and never
returned; the application must not show them, or anything derived from them, to blinded users
(an investigator who sees them can predict the next allocation with probability about ``p``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .sequence import RandomisationError
from .stratified import validate_factors

MEASURES = ("range", "variance")
MINIMISATION_STREAM = 3

MINIMISATION_ALGORITHM = (
    "Minimisation (Pocock and Simon 1975): counts at the participant's factor levels divided by "
    "the arm ratios; imbalance per factor by {measure}; weighted sum over factors; the arm(s) with "
    "the smallest imbalance get probability {p}, the others share the rest, in proportion to the "
    "ratios. The k-th allocation uses the first draw of SeedSequence(seed, spawn_key=(3, k))."
)


def position_uniform(seed: int, position: int) -> float:
    """The uniform number in [0, 1) that decides the allocation at ``position`` (0-based)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(MINIMISATION_STREAM, int(position)))
    return float(np.random.Generator(np.random.PCG64(ss)).random())


def _imbalance(values: Sequence[float], measure: str) -> float:
    if measure == "range":
        return max(values) - min(values)
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


class Minimiser:
    """Pocock-Simon minimisation, stateless between calls.

    ``arms``: arm ids in protocol order; ``ratios``: one positive integer per arm (default 1:1);
    ``factors``: ``[(factor_id, levels), ...]`` or a mapping; ``weights``: one positive number per
    factor, as a list in factor order or a mapping (default 1 each); ``p``: probability of the
    preferred arm(s), greater than ``1 / number of arms`` and at most 1; ``measure``: ``"range"`` or ``"variance"``;
    ``seed``: the non-negative integer that, with the history, fixes every allocation.
    """

    def __init__(
        self,
        arms: Iterable[str],
        ratios: Iterable[int] | None = None,
        factors: Any = (),
        weights: Iterable[float] | Mapping[str, float] | None = None,
        p: float = 0.8,
        seed: int = 0,
        measure: str = "range",
    ):
        self.arms = list(arms)
        if len(self.arms) < 2 or not all(isinstance(a, str) and a for a in self.arms):
            raise RandomisationError(f"arms: at least 2 non-empty arm ids are needed (got {self.arms!r})")
        if len(set(self.arms)) != len(self.arms):
            raise RandomisationError("arms: ids must be unique")
        self.ratios = [1] * len(self.arms) if ratios is None else list(ratios)
        if len(self.ratios) != len(self.arms) or any(
            isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 for r in self.ratios
        ):
            raise RandomisationError(
                f"ratios: one positive integer per arm is needed (got {self.ratios!r})"
            )
        self.factors = validate_factors(factors)
        ids = [f for f, _ in self.factors]
        if weights is None:
            w = [1.0] * len(ids)
        elif isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(ids))
            if unknown:
                raise RandomisationError(f"weights: {', '.join(unknown)} is not a factor")
            w = [weights.get(f, 1.0) for f in ids]
        else:
            w = list(weights)
        if len(w) != len(ids) or any(
            isinstance(x, bool) or not isinstance(x, (int, float, np.number)) or not x > 0 for x in w
        ):
            raise RandomisationError(f"weights: one positive number per factor is needed (got {w!r})")
        self.weights = [float(x) for x in w]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (1 / len(self.arms) < p <= 1):
            raise RandomisationError(
                f"p: must be greater than 1/{len(self.arms)} (the number of arms) and at most 1 (got {p!r})"
            )
        self.p = float(p)
        if measure not in MEASURES:
            raise RandomisationError(f"measure: must be one of {', '.join(MEASURES)} (got {measure!r})")
        self.measure = measure
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise RandomisationError(f"seed: must be a non-negative integer (got {seed!r})")
        self.seed = int(seed)
        self._arm_index = {a: i for i, a in enumerate(self.arms)}
        self._level_index = [{lv: j for j, lv in enumerate(levels)} for _, levels in self.factors]

    @property
    def algorithm(self) -> str:
        return MINIMISATION_ALGORITHM.format(measure=self.measure, p=self.p)

    # -- the public call -------------------------------------------------------------------

    def assign(self, levels: Mapping[str, str], history: Iterable[tuple[Mapping[str, str], str]]) -> str:
        """The arm for a participant with these factor levels, after ``history`` (the earlier
        participants' ``(levels, arm)`` in allocation order). Only the arm is returned."""
        idx = self._levels(levels, "levels")
        tally = self._new_tally()
        position = 0
        for position, item in enumerate(history, start=1):
            try:
                past_levels, arm = item
            except (TypeError, ValueError):
                raise RandomisationError(f"history[{position - 1}]: must be a (levels, arm) pair") from None
            if arm not in self._arm_index:
                raise RandomisationError(f"history[{position - 1}].arm: {arm!r} is not an arm")
            self._add(tally, self._levels(past_levels, f"history[{position - 1}].levels"), self._arm_index[arm])
        u = position_uniform(self.seed, position)
        return self.arms[self._draw(self._probabilities(self._scores(tally, idx)), u)]

    def replay(self, history: Iterable[tuple[Mapping[str, str], str]]) -> list[str]:
        """The arm ``assign`` gives at each position of ``history`` (``(levels, arm)`` pairs in
        allocation order), each given the allocations actually made before it: position ``k`` is
        right when ``replay(history)[k] == history[k][1]``. One pass, the same result as calling
        ``assign`` for every prefix; a wrong allocation shows at its own position only."""
        tally = self._new_tally()
        out: list[str] = []
        for position, item in enumerate(history):
            try:
                levels, arm = item
            except (TypeError, ValueError):
                raise RandomisationError(f"history[{position}]: must be a (levels, arm) pair") from None
            if arm not in self._arm_index:
                raise RandomisationError(f"history[{position}].arm: {arm!r} is not an arm")
            idx = self._levels(levels, f"history[{position}].levels")
            u = position_uniform(self.seed, position)
            out.append(self.arms[self._draw(self._probabilities(self._scores(tally, idx)), u)])
            self._add(tally, idx, self._arm_index[arm])
        return out

    # -- internals (never return these to a caller that serves blinded users) ----------------

    def _levels(self, levels: Mapping[str, str], where: str) -> list[int]:
        if not isinstance(levels, Mapping):
            raise RandomisationError(f"{where}: must be a mapping of factor id to level")
        out = []
        for (fid, allowed), index in zip(self.factors, self._level_index):
            value = levels.get(fid)
            if value not in index:
                raise RandomisationError(f"{where}.{fid}: must be one of {', '.join(allowed)} (got {value!r})")
            out.append(index[value])
        return out

    def _new_tally(self) -> list[list[list[int]]]:
        """counts[factor][level][arm]"""
        return [[[0] * len(self.arms) for _ in levels] for _, levels in self.factors]

    def _add(self, tally, idx: Sequence[int], arm: int) -> None:
        for f, lv in enumerate(idx):
            tally[f][lv][arm] += 1

    def _scores(self, tally, idx: Sequence[int]) -> list[float]:
        """G_j for each candidate arm j."""
        k = len(self.arms)
        scores = [0.0] * k
        for f, lv in enumerate(idx):
            counts = tally[f][lv]
            scaled = [counts[a] / self.ratios[a] for a in range(k)]
            for j in range(k):
                trial = list(scaled)
                trial[j] = (counts[j] + 1) / self.ratios[j]
                scores[j] += self.weights[f] * _imbalance(trial, self.measure)
        return scores

    def _preferred(self, scores: Sequence[float]) -> list[int]:
        best = min(scores)
        # scores are sums of a few rationals: compare with a tolerance, not exactly
        return [j for j, s in enumerate(scores) if s - best <= 1e-9 * max(1.0, abs(best))]

    def _probabilities(self, scores: Sequence[float]) -> list[float]:
        preferred = set(self._preferred(scores))
        k = len(self.arms)
        if len(preferred) == k:
            total = sum(self.ratios)
            return [r / total for r in self.ratios]
        pref_total = sum(self.ratios[j] for j in preferred)
        rest_total = sum(self.ratios[j] for j in range(k) if j not in preferred)
        return [
            self.p * self.ratios[j] / pref_total if j in preferred else (1 - self.p) * self.ratios[j] / rest_total
            for j in range(k)
        ]

    @staticmethod
    def _draw(probabilities: Sequence[float], u: float) -> int:
        cumulative = 0.0
        for j, prob in enumerate(probabilities):
            cumulative += prob
            if u < cumulative:
                return j
        # rounding left u above the last cumulative sum: the last arm with any probability
        return max(j for j, prob in enumerate(probabilities) if prob > 0)


MINIMISATION_GENERATOR = (
    "numpy.random.Generator(PCG64): SeedSequence(seed).spawn(3)[1] labels, [2] drug codes; the k-th "
    "allocation's uniform number from SeedSequence(seed, spawn_key=(3, k))"
)


@dataclass
class MinimisationPlan:
    """What minimisation seals before the first participant: the seed and the settings (which fix
    every allocation given the participants' levels), one group-label permutation for the trial
    (level-2 key) and a pool of drug codes, one per position, so the pharmacy and the two-level
    blind work as with a list. ``pool`` entries are ``{"serial": 1, "random_number": "001",
    "drug_code": "DLBP-..."}``; the group label of a position exists only once it is allocated."""

    seed: int
    arms: list[tuple[str, int]]
    factors: list[tuple[str, tuple[str, ...]]]
    weights: list[float]
    p: float
    measure: str
    pool: list[dict[str, Any]]
    label_to_arm: dict[str, str]
    generator: str = MINIMISATION_GENERATOR
    method: str = "minimisation"

    @property
    def n(self) -> int:
        return len(self.pool)

    @property
    def algorithm(self) -> str:
        return MINIMISATION_ALGORITHM.format(measure=self.measure, p=self.p)

    def level2_key(self) -> dict[str, str]:
        return dict(self.label_to_arm)

    def minimiser(self) -> Minimiser:
        return Minimiser([a for a, _ in self.arms], [r for _, r in self.arms], self.factors, self.weights,
                         p=self.p, seed=self.seed, measure=self.measure)

    def settings_rows(self) -> list[tuple[str, str]]:
        """The settings as (name, value) rows, in a fixed order: what the sealed key holds."""
        rows = [("method", self.method), ("seed", str(self.seed)),
                ("arms", " ".join(f"{a}:{r}" for a, r in self.arms)),
                ("p", repr(float(self.p))), ("measure", self.measure)]
        rows += [(f"factor.{fid}", f"levels={'|'.join(levels)}; weight={float(w)!r}")
                 for (fid, levels), w in zip(self.factors, self.weights)]
        rows += [("algorithm", self.algorithm), ("generator", self.generator)]
        return rows


def plan_minimisation(
    arms: Iterable[tuple[str, int]],
    factors: Any,
    n: int,
    seed: int,
    weights: Iterable[float] | Mapping[str, float] | None = None,
    p: float = 0.8,
    measure: str = "range",
    labels: Iterable[str] | None = None,
    drug_code_prefix: str | None = None,
    number_width: int | None = None,
) -> MinimisationPlan:
    """Seal minimisation for ``n`` participants: the label permutation and the drug codes come
    from the same streams as a permuted-block list of the same seed (children 1 and 2 of
    ``SeedSequence(seed).spawn(3)``); random numbers are the positions, zero-padded."""
    from .sequence import DRUG_CODE_PREFIX, _draw_drug_codes, _label_map, _validate, streams

    arm_list, _mults, label_list = _validate(arms, n, seed, (1,), labels)
    minimiser = Minimiser([a for a, _ in arm_list], [r for _, r in arm_list], factors, weights,
                          p=p, seed=int(seed), measure=measure)
    n = int(n)
    if number_width is None:
        number_width = max(3, len(str(n)))
    elif isinstance(number_width, bool) or not isinstance(number_width, int) or number_width < len(str(n)):
        raise RandomisationError(f"number_width: must be an integer of at least {len(str(n))} (got {number_width!r})")
    _, label_rng, code_rng = streams(int(seed))
    label_to_arm = _label_map(label_rng, arm_list, label_list)
    codes = _draw_drug_codes(code_rng, n, DRUG_CODE_PREFIX if drug_code_prefix is None else drug_code_prefix)
    pool = [{"serial": i + 1, "random_number": str(i + 1).zfill(number_width), "drug_code": code}
            for i, code in enumerate(codes)]
    return MinimisationPlan(seed=int(seed), arms=arm_list, factors=minimiser.factors, weights=minimiser.weights,
                            p=minimiser.p, measure=minimiser.measure, pool=pool, label_to_arm=label_to_arm)
