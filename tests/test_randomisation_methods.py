"""Stratified permuted blocks, minimisation, their protocol settings and the simulation of the
methods' operating characteristics (balance and predictability)."""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from annulus.cli import main
from annulus.protocol import ProtocolError, default_protocol_path, parse_protocol
from annulus.randomisation import (
    Minimiser,
    RandomisationError,
    StratifiedSequence,
    generate_sequence,
    generate_stratified,
    verify_documents,
    write_documents,
)
from annulus.randomisation.minimisation import position_uniform
from annulus.randomisation.simulate import simulate, table_lines

ARMS = [("active", 1), ("placebo", 1)]
FACTORS = [("site", ["bj", "sh", "gz"]), ("pain", ["moderate", "severe"])]


def arms_of(seq, stratum: int) -> list[str]:
    return [seq.label_to_arm[e["group_label"]] for e in seq.entries if e["stratum"] == stratum]


# ---- stratified permuted blocks ------------------------------------------------------------


@pytest.mark.req("P-3.1")
def test_stratified_same_seed_same_lists_and_different_seed_differs():
    a = generate_stratified(ARMS, FACTORS, 40, seed=2024)
    b = generate_stratified(ARMS, FACTORS, 40, seed=2024)
    c = generate_stratified(ARMS, FACTORS, 40, seed=2025)
    assert a.to_json() == b.to_json()
    assert [arms_of(a, s) for s in range(1, 7)] != [arms_of(c, s) for s in range(1, 7)]
    assert len(a.strata) == 6 and a.n == 240
    assert [s["label"] for s in a.strata][:2] == ["site=bj; pain=moderate", "site=bj; pain=severe"]
    # the strata's lists differ from one another (each has its own stream)
    assert len({tuple(arms_of(a, s)) for s in range(1, 7)}) == 6
    assert StratifiedSequence.from_json(a.to_json()).to_json() == a.to_json()


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("arms, per_stratum", [(ARMS, 48), ([("active", 2), ("placebo", 1)], 48),
                                               ([("a", 1), ("b", 1), ("c", 1), ("d", 1)], 48)])
def test_every_block_of_every_stratum_is_balanced_to_the_ratio(arms, per_stratum):
    seq = generate_stratified(arms, FACTORS, per_stratum, seed=11)
    ratio = dict(arms)
    unit = sum(ratio.values())
    for stratum in seq.strata:
        allocated, start = arms_of(seq, stratum["number"]), 0
        assert len(allocated) == per_stratum and not stratum["truncated_last_block"]
        assert set(stratum["block_sizes"]) <= {unit, 2 * unit}
        for size in stratum["block_sizes"]:
            counts = Counter(allocated[start:start + size])
            assert {a: counts[a] * unit for a in ratio} == {a: size * r for a, r in ratio.items()}
            start += size
        assert seq.arm_counts[stratum["number"]] == {a: per_stratum * r // unit for a, r in ratio.items()}


@pytest.mark.req("P-3.1", "P-3.3", "P-3.4")
def test_one_label_key_and_drug_codes_unique_across_strata():
    seq = generate_stratified(ARMS, FACTORS, 100, seed=7)
    codes = [e["drug_code"] for e in seq.entries]
    assert len(set(codes)) == len(codes) == 600
    numbers = [e["random_number"] for e in seq.entries]
    assert len(set(numbers)) == 600 and numbers[0] == "1-001" and numbers[-1] == "6-100"
    # the level-2 key is the one the unstratified list of the same seed has
    assert seq.label_to_arm == generate_sequence(ARMS, 100, seed=7).label_to_arm
    assert not any(arm in json.dumps(seq.entries) for arm in ("active", "placebo"))


@pytest.mark.req("P-3.1")
def test_a_stratum_list_depends_only_on_the_seed_and_the_stratum():
    small = generate_stratified(ARMS, [("site", ["bj", "sh"]), ("pain", ["moderate", "severe"])], 40, seed=5)
    large = generate_stratified(ARMS, FACTORS, 40, seed=5)
    for levels in ({"site": "bj", "pain": "severe"}, {"site": "sh", "pain": "moderate"}):
        assert [e["group_label"] for e in small.entries_for(levels)] == \
            [e["group_label"] for e in large.entries_for(levels)]
    with pytest.raises(RandomisationError, match="levels.site: must be one of bj, sh, gz"):
        large.entries_for({"site": "xx", "pain": "severe"})


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("kwargs, field", [
    ({"factors": []}, "factors"),
    ({"factors": [("site", ["bj"])]}, "factors[0].levels"),
    ({"factors": [("site", ["bj", "bj"])]}, "factors[0].levels"),
    ({"factors": [("site", ["a", "b"]), ("site", ["c", "d"])]}, "factors"),
    ({"per_stratum": 0}, "n"),
    ({"seed": -1}, "seed"),
])
def test_stratified_bad_input_names_the_field(kwargs, field):
    args = {"arms": ARMS, "factors": FACTORS, "per_stratum": 8, "seed": 1} | kwargs
    with pytest.raises(RandomisationError, match="^" + re.escape(field) + ":"):
        generate_stratified(**args)


@pytest.mark.req("P-3.6")
def test_stratified_documents_seal_and_verify(tmp_path):
    seq = generate_stratified([("active", 2), ("placebo", 1)], FACTORS, 30, seed=99)
    write_documents(seq, tmp_path / "docs", {"protocol": "test"})
    assert verify_documents(tmp_path / "docs") == []
    table = (tmp_path / "docs" / "allocation-table-pharmacy.csv").read_text().splitlines()
    assert table[0] == "stratum,stratum_levels,serial_number,random_number,drug_code,group_label"
    assert table[1].startswith("1,site=bj; pain=moderate,1,1-001,DLBP-")
    readme = (tmp_path / "docs" / "README.txt").read_text()
    assert "Strata (6, 30 random numbers each):" in readme and "6: site=gz; pain=severe" in readme
    # a changed group label with a recomputed checksum still disagrees with the level-1 key
    path = tmp_path / "docs" / "allocation-table-pharmacy.csv"
    text = path.read_text().replace(",A\n", ",B\n", 1) if ",A\n" in path.read_text() else path.read_text()
    path.write_text(text)
    assert any("pharmacy" in p for p in verify_documents(tmp_path / "docs"))


# ---- protocol files used by the CLI and schema tests -----------------------------------------


@functools.lru_cache(maxsize=1)
def _shipped_text() -> str:
    return default_protocol_path().read_text(encoding="utf-8")


def shipped() -> dict:
    return yaml.safe_load(_shipped_text())


def with_randomisation(rand: dict) -> dict:
    data = shipped()
    data["randomisation"] = {**data["randomisation"], **rand}
    if rand.get("method") == "minimisation" and "block_sizes" not in rand:
        del data["randomisation"]["block_sizes"]  # minimisation has no blocks
    return data


STRATIFIED = {
    "method": "stratified_blocks",
    "strata": [
        {"id": "site", "from": "site", "levels": ["bj", "sh"]},
        {"id": "pain", "from": "vas_mm", "levels": ["moderate", "severe"], "cuts": [70]},
    ],
    "stratum_list_length": 40,
}
MINIMISATION = {
    "method": "minimisation",
    "factors": [
        {"id": "site", "from": "site", "levels": ["bj", "sh", "gz"], "weight": 1},
        {"id": "modic", "from": "modic_type", "levels": ["none", "I", "II", "III"], "weight": 2},
        {"id": "cough", "from": "lbp_cough_sneeze", "levels": ["no", "yes"]},
    ],
    "minimisation": {"p": 0.8, "measure": "variance"},
}


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(yaml.safe_dump(data, allow_unicode=True))
    return info.value.errors


def write_protocol(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# ---- protocol schema ----------------------------------------------------------------------


@pytest.mark.req("X-1.3", "P-3.1")
def test_shipped_protocol_keeps_unstratified_permuted_blocks():
    rand = parse_protocol(default_protocol_path().read_bytes()).randomisation
    assert (rand.method, rand.block_sizes, rand.strata, rand.factors) == ("permuted_blocks", [4, 8], None, None)


@pytest.mark.req("X-1.3")
def test_stratified_and_minimisation_protocols_validate():
    strat = parse_protocol(yaml.safe_dump(with_randomisation(STRATIFIED), allow_unicode=True)).randomisation
    assert [f.id for f in strat.strata] == ["site", "pain"]
    pain = strat.strata[1]
    assert [pain.level_for(v) for v in (0, 69, 70, 100)] == ["moderate", "moderate", "severe", "severe"]
    mini = parse_protocol(yaml.safe_dump(with_randomisation(MINIMISATION), allow_unicode=True)).randomisation
    assert [(f.id, f.weight) for f in mini.factors] == [("site", 1.0), ("modic", 2.0), ("cough", 1.0)]
    assert (mini.p, mini.measure) == (0.8, "variance")
    assert mini.factors[2].level_for(True) == "yes"
    default = dict(MINIMISATION)
    del default["minimisation"]
    mini = parse_protocol(yaml.safe_dump(with_randomisation(default), allow_unicode=True)).randomisation
    assert (mini.p, mini.measure) == (0.8, "range")


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("rand, expected", [
    ({"method": "stratified_blocks"},
     ["randomisation.strata: stratified_blocks needs the factors that define the strata"]),
    ({"method": "minimisation", "block_sizes": [4]},
     ["randomisation.factors: minimisation needs the factors to balance",
      "randomisation.block_sizes: not used by method minimisation"]),
    ({"method": "permuted_blocks", "factors": MINIMISATION["factors"]},
     ["randomisation.factors: not used by method permuted_blocks"]),
    ({"method": "shuffled"}, ["randomisation.method: Input should be 'permuted_blocks', 'stratified_blocks' or "
                              "'minimisation'"]),
    ({**MINIMISATION, "factors": [{"id": "site", "from": "site", "levels": ["a", "b"], "colour": "red"}]},
     ["randomisation.factors[0].colour: Extra inputs are not permitted"]),
    ({**MINIMISATION, "factors": [{"id": "site", "levels": ["a", "b"]}]},
     ["randomisation.factors[0].from: Field required"]),
    ({**MINIMISATION, "factors": [{"id": "site", "from": "site", "levels": ["a", "b"], "weight": 0}]},
     ["randomisation.factors[0].weight: Input should be greater than 0"]),
    ({**MINIMISATION, "minimisation": {"p": 0.2}},
     ["randomisation.minimisation.p: must be greater than 1/4 (one over the number of arms), got 0.2"]),
    ({**MINIMISATION, "minimisation": {"measure": "sd"}},
     ["randomisation.minimisation.measure: Input should be 'range' or 'variance'"]),
    ({**MINIMISATION, "factors": [{"id": "modic", "from": "modic_type", "levels": ["none", "I"]}]},
     ["randomisation.factors[0].levels: must be the choices of field 'modic_type' (none, I, II, III)"]),
    ({**STRATIFIED, "strata": [{"id": "x", "from": "birthday", "levels": ["a", "b"]},
                               {"id": "pain", "from": "vas_mm", "levels": ["lo", "hi"]},
                               {"id": "cough", "from": "lbp_cough_sneeze", "levels": ["n", "y"]}]},
     ["randomisation.strata[0].from: 'birthday' is neither site nor an eligibility field",
      "randomisation.strata[1].cuts: number field 'vas_mm' needs cut points for its levels",
      "randomisation.strata[2].levels: a yes/no field's levels are no and yes"]),
    ({**STRATIFIED, "strata": [{"id": "pain", "from": "vas_mm", "levels": ["lo", "hi"], "cuts": [50, 70]},
                               {"id": "pain", "from": "site", "levels": ["a", "b"], "cuts": [1]}]},
     ["randomisation.strata[0].cuts: 2 levels need 1 cut points (got 2)"]),
    ({**STRATIFIED, "strata": [{"id": "site", "from": "site", "levels": ["a", "a"]}]},
     ["randomisation.strata[0].levels: each level must be listed once"]),
    ({**STRATIFIED, "strata": [{"id": "Site", "from": "site", "levels": ["a", "b c"]}]},
     ["randomisation.strata[0].id: String should match pattern '^[a-z][a-z0-9_]{0,30}$'",
      "randomisation.strata[0].levels[1]: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.+-]{0,30}$'"]),
])
def test_bad_randomisation_settings_name_the_field(rand, expected):
    errors = errors_of(with_randomisation(rand))
    assert sorted(errors) == sorted(expected), errors


@pytest.mark.req("X-1.3")
def test_cross_checks_of_factors_name_the_field():
    rand = {**STRATIFIED, "strata": [{"id": "pain", "from": "site", "levels": ["a", "b"], "cuts": [1]},
                                     {"id": "pain", "from": "date_of_birth", "levels": ["a", "b"]}]}
    assert sorted(errors_of(with_randomisation(rand))) == sorted([
        "randomisation.strata: factor ids must be unique",
    ])
    rand["strata"][1]["id"] = "born"
    assert sorted(errors_of(with_randomisation(rand))) == sorted([
        "randomisation.strata[0].cuts: only a number field is cut into levels",
        "randomisation.strata[1].from: a date field cannot define levels",
    ])


# ---- minimisation -------------------------------------------------------------------------


SEX = [("sex", ["m", "f"])]


@pytest.mark.req("P-3.1")
def test_minimisation_one_factor_worked_example_with_p_1():
    # Pocock & Simon (1975) with p = 1, one factor, range. History: m->A, f->B, m->B.
    # A new woman: counts among women A 0, B 1. Giving her A makes (1, 1), range 0; giving her B
    # makes (0, 2), range 2. So A, whatever the random element (seed).
    history = [({"sex": "m"}, "A"), ({"sex": "f"}, "B"), ({"sex": "m"}, "B")]
    assert {Minimiser(["A", "B"], factors=SEX, p=1, seed=s).assign({"sex": "f"}, history) for s in range(50)} == {"A"}
    # A new man: counts among men A 1, B 1: (2, 1) and (1, 2) both have range 1 -> a tie, broken
    # at random (both arms seen over seeds, each about half the time).
    men = Counter(Minimiser(["A", "B"], factors=SEX, p=1, seed=s).assign({"sex": "m"}, history) for s in range(400))
    assert set(men) == {"A", "B"} and abs(men["A"] / 400 - 0.5) < 0.1


@pytest.mark.req("P-3.1")
def test_minimisation_weights_decide_between_factors():
    # History at (m, old): sex m: A 2, B 1; age old: A 0, B 3.
    # Giving A: sex (3, 1) range 2, age (1, 3) range 2 -> G = 2 w_sex + 2 w_age.
    # Giving B: sex (2, 2) range 0, age (0, 4) range 4 -> G = 4 w_age.
    history = [({"sex": "m", "age": "young"}, "A"), ({"sex": "m", "age": "young"}, "A"),
               ({"sex": "f", "age": "old"}, "B"), ({"sex": "f", "age": "old"}, "B"),
               ({"sex": "m", "age": "old"}, "B")]
    factors = [("sex", ["m", "f"]), ("age", ["young", "old"])]
    new = {"sex": "m", "age": "old"}

    def arm(weights):
        return Minimiser(["A", "B"], factors=factors, weights=weights, p=1, seed=3).assign(new, history)

    assert arm({"sex": 1, "age": 2}) == "A"  # G_A 6 < G_B 8
    assert arm({"sex": 2, "age": 1}) == "B"  # G_A 6 > G_B 4


@pytest.mark.req("P-3.1")
def test_minimisation_three_arms_two_factors_range_and_variance():
    # sex m: A 1, B 1, C 1; age old: A 0, B 1, C 1; weights sex 1, age 2.
    # range: G_A = 1*1 + 2*0 = 1; G_B = G_C = 1*1 + 2*2 = 5 -> A preferred.
    # variance: G_A = 2/9 + 0; G_B = G_C = 2/9 + 2*(2/3) -> A preferred.
    history = [({"sex": "m", "age": "young"}, "A"), ({"sex": "f", "age": "old"}, "B"),
               ({"sex": "m", "age": "old"}, "C"), ({"sex": "m", "age": "young"}, "B")]
    factors = [("sex", ["m", "f"]), ("age", ["young", "old"])]
    for measure, scores in (("range", [1, 5, 5]), ("variance", [2 / 9, 2 / 9 + 4 / 3, 2 / 9 + 4 / 3])):
        m = Minimiser(["A", "B", "C"], factors=factors, weights=[1, 2], p=0.8, measure=measure, seed=0)
        tally = m._new_tally()
        for levels, arm in history:
            m._add(tally, m._levels(levels, "h"), m._arm_index[arm])
        got = m._scores(tally, m._levels({"sex": "m", "age": "old"}, "levels"))
        assert got == pytest.approx(scores)
        assert m._probabilities(got) == pytest.approx([0.8, 0.1, 0.1])


@pytest.mark.req("P-3.1")
def test_random_element_frequency():
    # One man already on A; a new man: A gives (2, 0) range 2, B gives (1, 1) range 0, so B is
    # preferred and must come up with probability p = 0.8. 4000 seeds: the SD of the frequency
    # is sqrt(0.8 * 0.2 / 4000) = 0.0063; the tolerance is 4 SD.
    history = [({"sex": "m"}, "A")]
    picks = Counter(Minimiser(["A", "B"], factors=SEX, p=0.8, seed=s).assign({"sex": "m"}, history)
                    for s in range(4000))
    assert abs(picks["B"] / 4000 - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 4000)
    # three arms, p = 0.7: B and C tie as preferred (range 1 each, A 2) and share 0.7; A gets 0.3
    picks = Counter(Minimiser(["A", "B", "C"], factors=SEX, p=0.7, seed=s).assign({"sex": "m"}, history)
                    for s in range(4000))
    for arm, expected in (("A", 0.3), ("B", 0.35), ("C", 0.35)):
        assert abs(picks[arm] / 4000 - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000), picks


@pytest.mark.req("P-3.1")
def test_minimisation_is_a_function_of_seed_and_history_and_respects_ratios():
    import numpy as np

    rng = np.random.default_rng(0)
    people = [{"sex": ["m", "f"][int(rng.integers(2))], "age": ["young", "old"][int(rng.integers(2))]}
              for _ in range(240)]
    factors = [("sex", ["m", "f"]), ("age", ["young", "old"])]

    def run(seed):
        m = Minimiser(["drug", "placebo"], ratios=[2, 1], factors=factors, p=0.8, seed=seed)
        history = []
        for person in people:
            history.append((person, m.assign(person, history)))
        return [arm for _, arm in history]

    first, again, other = run(42), run(42), run(43)
    assert first == again and first != other
    counts = Counter(first)
    assert abs(counts["drug"] - 160) <= 6, counts  # 2:1 of 240
    for f, levels in factors:
        for level in levels:
            at = Counter(a for p, a in zip(people, first) if p[f] == level)
            assert abs(at["drug"] / 2 - at["placebo"]) <= 4, (f, level, at)
    # one uniform per position, from the seed alone
    assert position_uniform(42, 7) == position_uniform(42, 7) != position_uniform(42, 8)


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("kwargs, field", [
    ({"arms": ["A"]}, "arms"),
    ({"ratios": [1, 0]}, "ratios"),
    ({"p": 0.5}, "p"),
    ({"p": 1.2}, "p"),
    ({"measure": "sd"}, "measure"),
    ({"weights": [1, -1]}, "weights"),
    ({"weights": {"height": 1}}, "weights"),
    ({"seed": -3}, "seed"),
])
def test_minimiser_bad_settings_name_the_field(kwargs, field):
    args = {"arms": ["A", "B"], "factors": [("sex", ["m", "f"]), ("age", ["y", "o"])], "seed": 1} | kwargs
    with pytest.raises(RandomisationError, match=rf"^{field}:"):
        Minimiser(**args)


@pytest.mark.req("P-3.1")
def test_minimiser_bad_levels_and_history_name_the_field():
    m = Minimiser(["A", "B"], factors=SEX, seed=1)
    with pytest.raises(RandomisationError, match=r"^levels.sex: must be one of m, f \(got 'x'\)"):
        m.assign({"sex": "x"}, [])
    with pytest.raises(RandomisationError, match=r"^history\[1\].arm: 'C' is not an arm"):
        m.assign({"sex": "m"}, [({"sex": "m"}, "A"), ({"sex": "f"}, "C")])
    with pytest.raises(RandomisationError, match=r"^history\[0\].levels.sex"):
        m.assign({"sex": "m"}, [({}, "A")])


# ---- predictability: published values, exhaustive enumeration, simulation ---------------------


def enumerated_correct_guess_probability(block_size: int) -> Fraction:
    """Exact proportion of correct guesses in one 1:1 block of ``block_size`` under the
    convergence strategy: every arrangement of the block is equally likely; before each
    allocation the investigator guesses the arm with fewer allocations so far in the block, and
    half a correct guess is scored on a tie (a random guess)."""
    m = block_size // 2
    total, arrangements = Fraction(0), 0
    for positions in itertools.combinations(range(block_size), m):
        block = [1 if i in positions else 0 for i in range(block_size)]
        counts, correct = [0, 0], Fraction(0)
        for arm in block:
            if counts[0] == counts[1]:
                correct += Fraction(1, 2)
            elif counts[arm] < counts[1 - arm]:
                correct += 1
            counts[arm] += 1
        total += correct
        arrangements += 1
    return total / (arrangements * block_size)


def closed_form(block_size: int) -> Fraction:
    """Blackwell & Hodges (1957), Ann. Math. Statist. 28:449-460, as given for the permuted-block
    design by Matts & Lachin (1988), Control. Clin. Trials 9:327-344: under the convergence
    strategy the expected number of correct guesses in a block of 2m is
    m + 2^(2m-1) / C(2m, m) - 1/2, so the proportion is that divided by 2m
    (3/4 for 2, 17/24 for 4, 41/60 for 6)."""
    m = block_size // 2
    return (m + Fraction(2 ** (2 * m - 1), math.comb(2 * m, m)) - Fraction(1, 2)) / (2 * m)


@pytest.mark.req("P-3.1")
def test_convergence_strategy_exact_values_by_enumeration_and_formula():
    published = {2: Fraction(3, 4), 4: Fraction(17, 24), 6: Fraction(41, 60)}
    for size, value in published.items():
        assert enumerated_correct_guess_probability(size) == value
        assert closed_form(size) == value
    assert float(published[4]) == pytest.approx(0.7083, abs=1e-4)


@pytest.mark.req("P-3.1")
def test_simulated_predictability_matches_the_exact_values():
    factor = [("f", ["a", "b"], [0.5, 0.5])]
    result = simulate(240, [1, 1], factor, trials=60, seed=3, block_sizes=[4], methods=["simple", "blocks"])
    blocks, simple = result["methods"]["blocks"]["predictability"], result["methods"]["simple"]["predictability"]
    assert abs(blocks["mean"] - 17 / 24) < max(4 * blocks["se"], 0.005), blocks
    assert abs(simple["mean"] - 0.5) < 4 * simple["se"], simple  # simple randomisation: 1/2
    assert result["methods"]["blocks"]["overall_imbalance"] == {"mean": 0.0, "p95": 0.0}
    six = simulate(240, [1, 1], factor, trials=60, seed=4, block_sizes=[6], methods=["blocks"])
    assert abs(six["methods"]["blocks"]["predictability"]["mean"] - 41 / 60) < 0.01


@pytest.mark.req("P-3.1")
def test_simulation_is_reproducible_and_orders_methods_by_balance():
    factors = [("site", ["s1", "s2", "s3"], [0.5, 0.3, 0.2]), ("pain", ["moderate", "severe"], [0.6, 0.4])]
    a = simulate(60, [1, 1], factors, trials=40, seed=9)
    b = simulate(60, [1, 1], factors, trials=40, seed=9)
    assert a == b
    alone = simulate(60, [1, 1], factors, trials=40, seed=9, methods=["minimisation"])
    assert alone["methods"]["minimisation"] == a["methods"]["minimisation"]
    m = a["methods"]
    worst = {k: max(s["mean"] for lv in v["level_imbalance"].values() for s in lv.values()) for k, v in m.items()}
    assert worst["minimisation"] < worst["blocks"] < worst["simple"]
    assert worst["stratified"] < worst["blocks"]
    assert m["blocks"]["overall_imbalance"]["p95"] == 0  # 60 fills blocks of 2 and 4 exactly
    lines = table_lines(a)
    assert lines[0].startswith("| method | P(correct guess) | overall | site=s1 |") and len(lines) == 6


# ---- CLI ----------------------------------------------------------------------------------


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("P-3.1")
def test_cli_simulate_json_and_table(capsys):
    code, out, err = run(capsys, "randomisation", "simulate", "--trials", "20", "--participants", "40",
                         "--ratios", "2:1", "--factor", "pain=moderate:0.7,severe:0.3", "--json", "--no-progress")
    assert code == 0, err
    data = json.loads(out)
    assert data["block_sizes"] == [6, 12] and set(data["methods"]) == {"simple", "blocks", "stratified", "minimisation"}
    code, out, err = run(capsys, "randomisation", "simulate", "--trials", "10", "--methods", "simple,minimisation",
                         "--no-progress")
    assert code == 0, err
    assert "10 simulated trials, seed 1: 100 participants, ratio 1:1, block sizes 4, 8" in out
    assert "| minimisation |" in out and "| permuted blocks |" not in out


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], "--trials: must be from 1 to 1000000 (got 0)"),
    (["--trials", "ten"], "--trials: must be a whole number (got 'ten')"),
    (["--ratios", "2:x"], "--ratios: write whole numbers separated by colons, e.g. 2:1 (got '2:x')"),
    (["--factor", "site=0.5,0.4"], "--factor 'site=0.5,0.4': the probabilities add up to 0.9, not 1"),
    (["--factor", "site"], "--factor 'site': write ID=P1,P2,... (for example site=0.5,0.3,0.2)"),
    (["--factor", "site=1"], "--factor 'site=1': a factor needs at least 2 levels"),
    (["--p", "0.5"], "--p: must be greater than 1/2 (one over the number of arms) and at most 1"),
    (["--measure", "sd"], "--measure: range or variance (got 'sd')"),
    (["--block-sizes", "4,6", "--ratios", "1:1:1:1"], "--block-sizes: 6 is not a multiple of the ratio sum 4"),
    (["--weights", "1"], "--weights: one positive number per factor (2) is needed"),
    (["--methods", "coin"], "--methods: choose from simple,blocks,stratified,minimisation (got 'coin')"),
])
def test_cli_simulate_bad_arguments_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, "randomisation", "simulate", "--no-progress", *argv)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"annulus randomisation: error: {message}"]


@pytest.mark.req("P-3.1", "P-3.6")
def test_cli_generates_stratified_lists_and_verify_regenerates_them(tmp_path, capsys):
    proto = write_protocol(tmp_path, with_randomisation(STRATIFIED))
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "77", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["method"] == "stratified_blocks" and len(data["strata"]) == 4 and data["n"] == 160
    assert data["strata"][3]["levels"] == {"site": "sh", "pain": "severe"}
    out_dir = tmp_path / "docs"
    assert run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "77", "--out", str(out_dir))[0] == 0
    code, out, err = run(capsys, "randomisation", "verify", str(out_dir), "--protocol", str(proto), "--seed", "77")
    assert code == 0 and "and the lists regenerate from the seed" in out, err
    code, out, err = run(capsys, "randomisation", "verify", str(out_dir), "--protocol", str(proto), "--seed", "78")
    assert code == 1
    assert "FAILED allocation-table-pharmacy.csv: differs from the list regenerated from seed 78" in err
    code, out, err = run(capsys, "randomisation", "verify", str(out_dir), "--seed", "78")
    assert code == 2 and "give both --protocol and --seed" in err


@pytest.mark.req("P-3.1")
def test_cli_minimisation_has_no_list_to_generate(tmp_path, capsys):
    proto = write_protocol(tmp_path, with_randomisation(MINIMISATION))
    code, out, err = run(capsys, "randomisation", "generate", "--protocol", str(proto), "--seed", "1", "--json")
    assert code == 2 and out == ""
    assert "minimisation allocates at enrolment and has no list to generate" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.req("P-3.1")
def test_no_django_import_in_the_randomisation_core():
    root = Path(__file__).resolve().parents[1] / "src" / "annulus" / "randomisation"
    for path in root.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import django" not in text and "from django" not in text, path.name


# ---- minimisation sealed for the application: the plan and the replay ---------------------------

@pytest.mark.req("P-3.3")
def test_minimisation_replay_is_assign_at_every_position_given_the_history():
    import random

    factors = [("site", ("A", "B", "C")), ("pain", ("moderate", "severe"))]
    m = Minimiser(["a", "b", "c"], [2, 1, 1], factors, [1, 3], p=0.85, seed=987_654_321_012)
    rng = random.Random(5)
    history = []
    for _ in range(40):
        levels = {"site": rng.choice("ABC"), "pain": rng.choice(["moderate", "severe"])}
        history.append((levels, m.assign(levels, history)))
    assert m.replay(history) == [arm for _levels, arm in history]
    # one allocation changed: the replay names that position (given the history before it)
    changed = list(history)
    changed[17] = (changed[17][0], next(a for a in "abc" if a != changed[17][1]))
    assert m.replay(changed)[17] == history[17][1] != changed[17][1]
    assert m.replay(changed)[:17] == [arm for _levels, arm in history[:17]]


@pytest.mark.req("P-3.3")
def test_minimisation_plan_shares_labels_and_codes_with_the_list_of_the_same_seed():
    from annulus.randomisation.minimisation import plan_minimisation

    seed, arms = 123_456_789_012, [("high", 1), ("mid", 1), ("low", 1), ("control", 1)]
    plan = plan_minimisation(arms, [("site", ("A", "B"))], 100, seed, number_width=3)
    seq = generate_sequence(arms, 100, seed, block_multipliers=(1, 2))
    assert plan.label_to_arm == seq.label_to_arm
    assert [e["drug_code"] for e in plan.pool] == [e["drug_code"] for e in seq.entries]
    assert [e["random_number"] for e in plan.pool][:2] == ["001", "002"]
    assert plan_minimisation(arms, [("site", ("A", "B"))], 100, seed, number_width=3) == plan
    with pytest.raises(RandomisationError, match="^p: "):
        plan_minimisation(arms, [("site", ("A", "B"))], 100, seed, p=0.2)
