"""The outcome simulator: seeded, realistic, dose-ordered, with missed visits and dropout; its
answers pass the eCRF checks and the instruments' scoring."""

import numpy as np
import pytest

from annulus.simulator.trajectories import VISIT_DAYS, simulate_arms, simulate_participant


def test_same_seed_same_trajectory():
    a = simulate_participant("high", seed=7, index=3)
    b = simulate_participant("high", seed=7, index=3)
    assert a.visits == b.visits and a.missed == b.missed and a.dropout_after == b.dropout_after
    assert simulate_participant("high", seed=8, index=3).visits != a.visits


@pytest.mark.req("P-5.1")
def test_baseline_vas_and_dose_response():
    arms = simulate_arms(150, seed=2022)
    base = np.array([t.baseline_vas for ts in arms.values() for t in ts])
    assert 59 < base.mean() < 65 and 8 < base.std() < 12.5
    change = {}
    for arm, ts in arms.items():
        deltas = [t.vas("m6") - t.baseline_vas for t in ts if t.vas("m6") is not None]
        change[arm] = np.mean(deltas)
    assert change["control"] < 0  # a small placebo response
    assert change["control"] > change["low"] > change["mid"] > change["high"]
    assert -12 < change["control"] < -2 and change["high"] < -22


@pytest.mark.req("X-4.8")
def test_missed_visits_and_dropout():
    arms = simulate_arms(120, seed=5)
    ts = [t for group in arms.values() for t in group]
    dropped = sum(t.dropout_after is not None for t in ts) / len(ts)
    assert 0.1 < dropped < 0.28
    missed = sum(len(t.missed) for t in ts)
    assert missed > 0
    for t in ts:
        assert "baseline" in t.visits
        assert not (set(t.visits) & t.missed)


@pytest.mark.req("X-5.7")
def test_answers_score_with_the_instruments():
    from annulus.instruments import score
    from annulus.instruments.joa import ITEMS as JOA_ITEMS

    for i in range(20):
        t = simulate_participant(["control", "low", "mid", "high"][i % 4], seed=11, index=i)
        for visit, forms in t.visits.items():
            assert score("vas", [forms["vas"]["vas_mm"]]).score is not None
            odi = [forms["odi"].get(f"s{n}") for n in range(1, 11)]
            assert score("odi", odi).score is not None
            assert score("joa", [forms["joa"][k] for k, *_ in JOA_ITEMS]).score is not None
            sf = score("sf36", [forms["sf36"][f"q{n}"] for n in range(1, 37)])
            assert sf.summary["PCS"] is not None
            assert ("imaging" in forms) == (visit in ("baseline", "m6", "m12", "m24"))
    assert set(VISIT_DAYS) >= {"baseline", "m24"}


@pytest.mark.req("X-5.7", "P-5.6")
def test_every_simulated_form_can_be_completed_on_the_ecrf():
    from annulus.protocol import default_protocol_path, load_protocol
    from annulus.visits import crf

    protocol = load_protocol(default_protocol_path())
    for i in range(24):
        t = simulate_participant(["control", "low", "mid", "high"][i % 4], seed=3, index=i)
        for visit, forms in t.visits.items():
            for form_id in protocol.schedule.visit(visit).forms:
                items = crf.clean(crf.spec_for(protocol, form_id), forms[form_id])
                computed = crf.compute(protocol, form_id, items)
                assert crf.completion_problem(protocol, form_id, items, computed) is None, (visit, form_id, items)
