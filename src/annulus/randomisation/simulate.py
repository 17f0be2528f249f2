"""Operating characteristics of the randomisation methods by simulation.

Each simulated trial enrols ``participants`` people whose factor levels are drawn independently
from the given marginal distributions. The same participants (same levels, same order) are then
allocated by every method, each with its own random stream:

- ``simple``: each participant independently, with probabilities equal to the ratios (reference);
- ``blocks``: one unstratified list of permuted blocks (randomly mixed sizes), as
  ``generate_sequence`` makes it;
- ``stratified``: one such list per stratum (every combination of all factors' levels), each as
  long as the trial; a stratum's participants take its list from the top;
- ``minimisation``: the decision rule of ``Minimiser`` (factors, weights, ratios, ``p``,
  measure), with its uniforms drawn from the simulation's stream.

Measures, per method, over the simulated trials:

- *imbalance*: the range (max - min) over arms of ``n_arm / ratio`` (for 1:1, the difference
  between the largest and the smallest arm), overall and within every level of every factor;
  reported as the mean and the 95th percentile over trials (an observed value: the smallest
  one that at least 95 per cent of trials do not exceed);
- *predictability*: the proportion of allocations an investigator guesses correctly with the
  convergence strategy (Blackwell & Hodges 1957). Knowing every earlier allocation, they guess
  the arm that is most under-represented (smallest ``n_arm / ratio``) among the earlier
  participants of the whole trial (simple, blocks) or of the participant's stratum (stratified);
  for minimisation, knowing every earlier participant's levels and allocation, they guess the
  arm minimisation prefers. A tie between ``m`` guessed arms counts ``1/m`` when the allocated
  arm is among them: the expected score of guessing among them at random, without the noise.
  Reported as the mean over all allocations of all trials, with its Monte Carlo standard error
  (from the spread of the per-trial proportions).

Trial ``t`` uses ``SeedSequence(seed, spawn_key=(t,))``: its first child draws the participants,
the next ones the methods (in the fixed order of ``METHODS``), so a method's figures do not depend
on which other methods are run, and the same seed always gives the same table.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .minimisation import MEASURES, Minimiser
from .sequence import RandomisationError, permuted_blocks

METHODS = ("simple", "blocks", "stratified", "minimisation")
METHOD_NAMES = {
    "simple": "simple randomisation",
    "blocks": "permuted blocks",
    "stratified": "stratified permuted blocks",
    "minimisation": "minimisation",
}
MAX_TRIALS = 1_000_000
MAX_PARTICIPANTS = 100_000


def default_block_sizes(ratios: Sequence[int]) -> list[int]:
    """The smallest multiple of the ratio sum that is at least 4, and twice it: 4 and 8 for 1:1
    and 1:1:1:1 (the protocol's default), 6 and 12 for 2:1."""
    unit = sum(ratios)
    size = unit * math.ceil(4 / unit)
    return [size, 2 * size]


def _guess_credit(scaled: Sequence[float], actual: int) -> float:
    """Convergence strategy: guess among the arms with the smallest ratio-scaled count."""
    low = min(scaled)
    guessed = [j for j, v in enumerate(scaled) if v - low <= 1e-12]
    return 1.0 / len(guessed) if actual in guessed else 0.0


def _range(counts: Sequence[int], ratios: Sequence[int]) -> float:
    scaled = [c / r for c, r in zip(counts, ratios)]
    return max(scaled) - min(scaled)


def _check(participants, ratios, factors, trials, seed, block_sizes, weights, p, measure, methods):
    def positive(value, where, upper):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= upper:
            raise RandomisationError(f"{where}: must be an integer from 1 to {upper} (got {value!r})")
        return int(value)

    participants = positive(participants, "participants", MAX_PARTICIPANTS)
    trials = positive(trials, "trials", MAX_TRIALS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RandomisationError(f"seed: must be a non-negative integer (got {seed!r})")
    ratios = list(ratios)
    if len(ratios) < 2 or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 for r in ratios):
        raise RandomisationError(f"ratios: at least 2 positive integers are needed (got {ratios!r})")
    unit = sum(ratios)
    block_sizes = list(block_sizes) if block_sizes is not None else default_block_sizes(ratios)
    if not block_sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 or b % unit for b in block_sizes):
        raise RandomisationError(
            f"block_sizes: positive multiples of the ratio sum {unit} are needed (got {block_sizes!r})"
        )
    factors = list(factors)
    if not factors:
        raise RandomisationError("factors: at least one factor is needed")
    clean = []
    for i, item in enumerate(factors):
        try:
            fid, levels, probs = item
        except (TypeError, ValueError):
            raise RandomisationError(f"factors[{i}]: must be (id, levels, probabilities)") from None
        levels, probs = list(levels), [float(x) for x in probs]
        if len(levels) < 2 or len(levels) != len(probs):
            raise RandomisationError(f"factors[{i}]: one probability per level, at least 2 levels")
        if any(not math.isfinite(x) or x < 0 for x in probs) or abs(sum(probs) - 1) > 1e-6:
            raise RandomisationError(
                f"factors[{i}].probabilities: non-negative numbers adding up to 1 (got {probs!r}, sum {sum(probs):g})"
            )
        clean.append((fid, tuple(levels), [x / sum(probs) for x in probs]))
    if measure not in MEASURES:
        raise RandomisationError(f"measure: must be one of {', '.join(MEASURES)} (got {measure!r})")
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise RandomisationError(f"methods: choose from {', '.join(METHODS)} (got {', '.join(methods) or 'none'})")
    methods = [m for m in METHODS if m in methods]
    return participants, ratios, clean, trials, int(seed), block_sizes, methods


def simulate(
    participants: int,
    ratios: Iterable[int],
    factors: Iterable[tuple[str, Sequence[str], Sequence[float]]],
    trials: int,
    seed: int,
    block_sizes: Iterable[int] | None = None,
    weights: Sequence[float] | None = None,
    p: float = 0.8,
    measure: str = "range",
    methods: Iterable[str] = METHODS,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Simulate ``trials`` trials and return the operating characteristics of each method.

    ``factors``: ``[(factor_id, levels, probabilities), ...]``; ``block_sizes`` default to
    ``default_block_sizes(ratios)``; ``weights``, ``p`` and ``measure`` are minimisation's. ``progress``
    is called with the number of trials done.
    """
    participants, ratios, factor_list, trials, seed, block_sizes, methods = _check(
        participants, ratios, factors, trials, seed, block_sizes, weights, p, measure, methods
    )
    k = len(ratios)
    arms = [f"arm{j + 1}" for j in range(k)]
    arm_list = list(zip(range(k), ratios))  # arm "ids" are indices, for speed
    unit = sum(ratios)
    mults = tuple(sorted({b // unit for b in block_sizes}))
    minimiser = Minimiser(
        arms, ratios, [(f, levels) for f, levels, _ in factor_list], weights=weights, p=p, measure=measure
    )
    n_factors = len(factor_list)
    n_levels = [len(levels) for _, levels, _ in factor_list]

    overall = {m: np.zeros(trials) for m in methods}
    by_level = {m: [np.zeros((trials, n)) for n in n_levels] for m in methods}
    correct = {m: np.zeros(trials) for m in methods}
    arm_totals = {m: np.zeros(k) for m in methods}

    for t in range(trials):
        children = np.random.SeedSequence(seed, spawn_key=(t,)).spawn(1 + len(METHODS))
        people_rng = np.random.Generator(np.random.PCG64(children[0]))
        cols = [people_rng.choice(len(levels), size=participants, p=probs) for _, levels, probs in factor_list]
        people = [tuple(int(c[i]) for c in cols) for i in range(participants)]
        for m in methods:
            rng = np.random.Generator(np.random.PCG64(children[1 + METHODS.index(m)]))
            alloc, credit = _RUNNERS[m](rng, people, arm_list, mults, minimiser, participants)
            correct[m][t] = credit / participants
            counts = [0] * k
            level_counts = [[[0] * k for _ in range(n)] for n in n_levels]
            for person, a in zip(people, alloc):
                counts[a] += 1
                for f in range(n_factors):
                    level_counts[f][person[f]][a] += 1
            overall[m][t] = _range(counts, ratios)
            for f in range(n_factors):
                for lv in range(n_levels[f]):
                    by_level[m][f][t, lv] = _range(level_counts[f][lv], ratios)
            arm_totals[m] += counts
        if progress is not None:
            progress(t + 1)

    def summary(values: np.ndarray) -> dict[str, float]:
        return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95, method="inverted_cdf"))}

    results = {}
    for m in methods:
        per_trial = correct[m]
        se = float(per_trial.std(ddof=1) / math.sqrt(trials)) if trials > 1 else float("nan")
        results[m] = {
            "name": METHOD_NAMES[m],
            "predictability": {"mean": float(per_trial.mean()), "se": se},
            "overall_imbalance": summary(overall[m]),
            "level_imbalance": {
                fid: {levels[lv]: summary(by_level[m][f][:, lv]) for lv in range(len(levels))}
                for f, (fid, levels, _) in enumerate(factor_list)
            },
            "mean_arm_size": [float(x) for x in arm_totals[m] / trials],
        }
    return {
        "participants": participants,
        "ratios": ratios,
        "factors": [
            {"id": fid, "levels": list(levels), "probabilities": probs, "weight": w}
            for (fid, levels, probs), w in zip(factor_list, minimiser.weights)
        ],
        "trials": trials,
        "seed": seed,
        "block_sizes": [m * unit for m in mults],
        "p": minimiser.p,
        "measure": minimiser.measure,
        "methods": results,
    }


def _simple(rng, people, arm_list, mults, minimiser, n):
    k = len(arm_list)
    ratios = [r for _, r in arm_list]
    probs = np.array(ratios, dtype=float) / sum(ratios)
    alloc = [int(a) for a in rng.choice(k, size=n, p=probs)]
    return alloc, _convergence_credit(alloc, [0] * n, ratios)


def _blocks(rng, people, arm_list, mults, minimiser, n):
    alloc, _, _ = permuted_blocks(rng, arm_list, mults, n)
    return alloc, _convergence_credit(alloc, [0] * n, [r for _, r in arm_list])


def _stratified(rng, people, arm_list, mults, minimiser, n):
    lists: dict[tuple[int, ...], list[int]] = {}
    used: dict[tuple[int, ...], int] = {}
    alloc, strata = [], []
    for person in people:
        if person not in lists:
            # a stratum's list is drawn when its first participant arrives, as long as the trial
            lists[person], _, _ = permuted_blocks(rng, arm_list, mults, n)
            used[person] = 0
        alloc.append(lists[person][used[person]])
        used[person] += 1
        strata.append(person)
    return alloc, _convergence_credit(alloc, strata, [r for _, r in arm_list])


def _convergence_credit(alloc: Sequence[int], pools: Sequence[Any], ratios: Sequence[int]) -> float:
    counts: dict[Any, list[int]] = {}
    credit = 0.0
    for a, pool in zip(alloc, pools):
        c = counts.setdefault(pool, [0] * len(ratios))
        credit += _guess_credit([c[j] / ratios[j] for j in range(len(ratios))], a)
        c[a] += 1
    return credit


def _minimisation(rng, people, arm_list, mults, minimiser, n):
    tally = minimiser._new_tally()
    uniforms = rng.random(n)
    alloc, credit = [], 0.0
    for i, person in enumerate(people):
        scores = minimiser._scores(tally, person)
        preferred = minimiser._preferred(scores)
        a = minimiser._draw(minimiser._probabilities(scores), float(uniforms[i]))
        if a in preferred:
            credit += 1.0 / len(preferred)
        minimiser._add(tally, person, a)
        alloc.append(a)
    return alloc, credit


_RUNNERS = {"simple": _simple, "blocks": _blocks, "stratified": _stratified, "minimisation": _minimisation}


def table_lines(result: dict[str, Any]) -> list[str]:
    """A Markdown table: one row per method; imbalance as mean / 95th percentile."""
    level_cols = [(f["id"], lv) for f in result["factors"] for lv in f["levels"]]
    head = ["method", "P(correct guess)", "overall"] + [f"{fid}={lv}" for fid, lv in level_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for res in result["methods"].values():
        pred = res["predictability"]
        cells = [res["name"], f"{pred['mean']:.4f} ± {pred['se']:.4f}",
                 f"{res['overall_imbalance']['mean']:.2f} / {res['overall_imbalance']['p95']:g}"]
        for fid, lv in level_cols:
            s = res["level_imbalance"][fid][lv]
            cells.append(f"{s['mean']:.2f} / {s['p95']:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
