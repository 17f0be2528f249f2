"""Seeded outcome trajectories over the 24 months of follow-up (pure numpy, no Django).

One call gives one participant's answers at every visit - the raw items of every eCRF form
(VAS mm, ODI section scores, JOA items, SF-36 response codes, imaging readings, vital signs,
laboratory values) - plus the visits missed and the visit after which the participant drops out.

The model, chosen to look like the trial the protocol expects, not to predict it:

* VAS at baseline ~ N(62, 10.27) mm (the protocol's SD), kept within 40-95 (the inclusion
  threshold is 40 mm).
* Improvement = placebo response (7 mm in every arm, waning by a third after 6 months) plus a
  cell effect with an Emax dose-response, 30 x dose / (6 + dose) mm (dose in 10^6 cells/disc:
  control 0, low 5 -> 13.6, mid 10 -> 18.8, high 20 -> 23.1). Both follow 1 - exp(-days / 45):
  most of the gain by 3 months, sustained to 24 months. A per-person factor N(1, 0.3) and
  visit noise SD 8 mm. The week-1 visit carries +4 mm of post-injection discomfort.
* ODI, JOA and SF-36 follow the same latent pain/function level with their own noise, so the
  secondary end points move with the primary one; SF-36 mental scales move less.
* Imaging: Modic II / Pfirrmann IV discs at L4-5 with about 30 % height loss; disc height
  drifts by +0.04 mm/month x dose fraction minus 0.01 mm/month of degeneration.
* Vital signs and laboratory values are normal adult values with noise; about 3 % of
  laboratory values fall outside the range, a fifth of those judged clinically significant.
* Each visit is missed with probability 5 %; dropout follows an exponential time with 18 %
  gone by 24 months (the protocol assumes 20 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DOSES = {"control": 0.0, "low": 5.0, "mid": 10.0, "high": 20.0}
# visit id -> days after transplantation (baseline is before it)
VISIT_DAYS = {"baseline": -1, "w1": 7, "m1": 30, "m3": 91, "m6": 182, "m12": 365, "m18": 547, "m24": 730}
IMAGING_VISITS = {"baseline", "m6", "m12", "m24"}
PLACEBO_MM = 7.0
EMAX_MM = 30.0
ED50 = 6.0
TAU_DAYS = 45.0
VAS_MEAN, VAS_SD = 62.0, 10.27
MISS_P = 0.05
DROPOUT_24M = 0.18

# SF-36: item numbers of each direction of coding (True: a higher code is better health)
_SF36_LEVELS = {**{n: 5 for n in (1, 2, 20, 22, 34, 36, 32, 33, 35)}, **{n: 3 for n in range(3, 13)},
                **{n: 2 for n in range(13, 20)}, **{n: 6 for n in (21, 23, 24, 25, 26, 27, 28, 29, 30, 31)}}
_SF36_HIGHER_IS_BETTER = set(range(3, 20)) | {24, 25, 28, 29, 31, 32, 33, 35}
_SF36_MENTAL = {17, 18, 19, 20, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
# (analyte, mean, sd) - normal adult values in the protocol's units
LABS = {
    "blood_routine": [("wbc", 6.2, 1.2), ("neut", 3.6, 0.8), ("hgb", 138, 11), ("plt", 230, 45)],
    "liver_kidney": [("alt", 22, 7), ("ast", 21, 5), ("tbil", 11, 3.5), ("alb", 45, 2.5), ("crea", 72, 12),
                     ("bun", 5.0, 1.1)],
    "immunology": [("crp", 2.5, 1.8), ("esr", 9, 4), ("igg", 11.5, 1.8), ("c3", 1.2, 0.18)],
    "urinalysis": [("u_rbc", 5, 4), ("u_wbc", 6, 4)],
}
_RANGES = {"wbc": (3.5, 9.5), "neut": (1.8, 6.3), "hgb": (115, 175), "plt": (125, 350), "alt": (7, 40),
           "ast": (13, 35), "tbil": (0, 21), "alb": (40, 55), "crea": (41, 111), "bun": (2.6, 8.8),
           "crp": (0, 10), "esr": (0, 20), "igg": (7.0, 16.0), "c3": (0.9, 1.8), "u_rbc": (0, 25), "u_wbc": (0, 25)}
_DECIMALS = {"wbc": 1, "neut": 1, "hgb": 0, "plt": 0, "alt": 0, "ast": 0, "tbil": 1, "alb": 1, "crea": 0, "bun": 1,
             "crp": 1, "esr": 0, "igg": 1, "c3": 2, "u_rbc": 0, "u_wbc": 0}


@dataclass
class Trajectory:
    arm: str
    dose: float
    baseline_vas: float
    visits: dict = field(default_factory=dict)  # visit id -> {form id: items}
    missed: set = field(default_factory=set)
    dropout_after: str | None = None  # last visit attended before dropping out (None: stays)

    def vas(self, visit: str) -> float | None:
        forms = self.visits.get(visit)
        return None if forms is None else forms["vas"]["vas_mm"]


def expected_change(dose: float, days: float) -> float:
    """Mean VAS change from baseline (mm, negative = less pain) at ``days`` after transplantation."""
    if days <= 0:
        return 0.0
    g = 1.0 - np.exp(-days / TAU_DAYS)
    placebo = PLACEBO_MM * (1.0 - 0.33 * min(1.0, max(0.0, (days - 182) / 548)))
    cells = EMAX_MM * dose / (ED50 + dose)
    return float(-(placebo + cells) * g)


def _sections(rng, percent: float, missing_p: float) -> dict:
    total = int(round(np.clip(percent, 0, 100) / 100 * 50))
    base = np.full(10, total / 10.0) + rng.normal(0, 0.7, 10)
    scores = np.clip(np.round(base), 0, 5).astype(int)
    # nudge to the intended total so the percent follows the latent level
    for _ in range(50):
        diff = total - int(scores.sum())
        if diff == 0:
            break
        i = rng.integers(0, 10)
        scores[i] = np.clip(scores[i] + np.sign(diff), 0, 5)
    out = {f"s{i + 1}": int(v) for i, v in enumerate(scores)}
    if rng.random() < missing_p:
        out.pop("s8")  # sex life is the section most often left blank
    return out


def _joa(rng, function: float) -> dict:
    """function in [0, 1]: 1 = no symptoms."""
    def level(top):
        return int(np.clip(np.round(function * top + rng.normal(0, 0.6)), 0, top))

    keys3 = ["low_back_pain", "leg_pain", "gait"]
    keys_signs = ["slr", "sensory", "motor"]
    adl = ["turn_over", "standing", "washing", "leaning_forward", "sitting", "lifting", "walking"]
    out = {k: level(3) for k in keys3}
    out.update({k: int(np.clip(np.round(0.5 + function * 1.6 + rng.normal(0, 0.5)), 0, 2)) for k in keys_signs})
    out.update({k: level(2) for k in adl})
    out["bladder"] = -3 if rng.random() < 0.03 else 0
    return out


def _sf36(rng, physical: float, mental: float) -> dict:
    out = {}
    for n in range(1, 37):
        k = _SF36_LEVELS[n]
        good = mental if n in _SF36_MENTAL else physical
        level = int(np.clip(np.round(good * (k - 1) + rng.normal(0, 0.55)), 0, k - 1))  # 0 = worst
        code = level + 1 if n in _SF36_HIGHER_IS_BETTER else k - level
        out[f"q{n}"] = code
    return out


def _labs(rng, panel: str) -> dict:
    out = {}
    for analyte, mean, sd in LABS[panel]:
        value = rng.normal(mean, sd)
        lo, hi = _RANGES[analyte]
        if rng.random() < 0.03:  # an out-of-range result
            value = hi * rng.uniform(1.1, 1.8) if hi else mean * 2
            out[f"{analyte}__cs"] = "yes" if rng.random() < 0.2 else "no"
        value = max(value, 0.0)
        value = round(float(value), _DECIMALS[analyte])
        if _DECIMALS[analyte] == 0:
            value = int(value)
        out[analyte] = value
        if (value < lo or value > hi) and f"{analyte}__cs" not in out:
            out[f"{analyte}__cs"] = "no"
    if panel == "urinalysis":
        out["u_protein"] = "trace" if rng.random() < 0.03 else "negative"
        out["u_glucose"] = "negative"
        if out["u_protein"] != "negative":
            out["u_protein__cs"] = "no"
    return out


def _vitals(rng) -> dict:
    sbp = int(round(rng.normal(124, 12)))
    return {"temperature": round(float(rng.normal(36.6, 0.25)), 1), "pulse": int(round(rng.normal(74, 8))),
            "respiration": int(round(rng.normal(16, 2))), "systolic_bp": sbp,
            "diastolic_bp": int(min(sbp - 25, round(rng.normal(78, 8))))}


def simulate_participant(arm: str, *, seed: int, index: int, visits: dict | None = None,
                         dose: float | None = None) -> Trajectory:
    """One participant's answers at every visit. ``arm`` is an arm id (control, low, mid, high)
    or any name with ``dose`` (10^6 cells/disc) given; ``index`` separates participants of the
    same seed. The same (seed, index, arm) gives the same trajectory."""
    dose = DOSES[arm] if dose is None else float(dose)
    visits = visits or VISIT_DAYS
    rng = np.random.default_rng([seed, index, 77])
    base_vas = float(np.clip(rng.normal(VAS_MEAN, VAS_SD), 40, 95))
    responder = float(np.clip(rng.normal(1.0, 0.3), 0.2, 1.8))
    mental0 = float(np.clip(rng.normal(0.55, 0.15), 0.1, 0.95))
    height0 = float(rng.normal(7.6, 0.8))
    above, below = float(rng.normal(11.2, 0.7)), float(rng.normal(10.6, 0.7))
    rom0 = float(rng.normal(9.0, 2.5))
    modic = ["II" if rng.random() < 0.7 else "I", "II" if rng.random() < 0.5 else "none"]
    pfirrmann0 = 4 if rng.random() < 0.7 else 3
    # dropout: exponential time with DROPOUT_24M gone by day 730
    rate = -np.log(1 - DROPOUT_24M) / 730.0
    dropout_day = float(rng.exponential(1 / rate))
    traj = Trajectory(arm=arm, dose=dose, baseline_vas=round(base_vas))
    last_attended = None
    for visit, days in sorted(visits.items(), key=lambda kv: kv[1]):
        if days > dropout_day:
            traj.dropout_after = last_attended or "baseline"
            break
        if visit != "baseline" and rng.random() < MISS_P:
            traj.missed.add(visit)
            continue
        change = expected_change(dose, days) * responder + (4.0 if visit == "w1" else 0.0)
        vas = float(np.clip(base_vas + change + (rng.normal(0, 8) if days > 0 else 0.0), 0, 100))
        pain = vas / 100.0
        physical = float(np.clip(1.0 - 0.85 * pain + rng.normal(0, 0.06), 0, 1))
        mental = float(np.clip(mental0 + 0.25 * (base_vas - vas) / 100 + rng.normal(0, 0.05), 0, 1))
        forms = {
            "vas": {"vas_mm": int(round(vas))},
            "odi": _sections(rng, 0.62 * vas + rng.normal(0, 5), 0.08),
            "joa": _joa(rng, float(np.clip(1.0 - 0.9 * pain + rng.normal(0, 0.05), 0, 1))),
            "sf36": _sf36(rng, physical, mental),
            "vitals": _vitals(rng),
            "adverse_events": {"new_events": "yes" if rng.random() < 0.06 else "no"},
        }
        for panel in LABS:
            forms[panel] = _labs(rng, panel)
        if visit in IMAGING_VISITS:
            months = max(days, 0) / 30.4
            height = float(np.clip(height0 + months * (0.04 * dose / 20.0 - 0.01) + rng.normal(0, 0.15), 3, 14))
            better = visit in ("m12", "m24") and rng.random() < 0.25 * dose / 20.0
            forms["imaging"] = {
                "modic_superior": modic[0], "modic_inferior": modic[1],
                "pfirrmann": ["I", "II", "III", "IV", "V"][pfirrmann0 - 1 - (1 if better else 0)],
                "height_index_mm": round(height, 1), "height_above_mm": round(above, 1),
                "height_below_mm": round(below, 1),
                "rom_flexion_deg": round(rom0 / 2 + 2 + rng.normal(0, 0.8), 1),
                "rom_extension_deg": round(-rom0 / 2 + 2 + rng.normal(0, 0.8), 1),
            }
        traj.visits[visit] = forms
        last_attended = visit
    return traj


def simulate_arms(n_per_arm: int, *, seed: int) -> dict[str, list[Trajectory]]:
    """Whole arms, for checking the dose-response of the model."""
    return {arm: [simulate_participant(arm, seed=seed, index=i + 1000 * k) for i in range(n_per_arm)]
            for k, arm in enumerate(DOSES)}


def builtin_outcomes_fit(protocol) -> bool:
    """The built-in model serves a protocol whose arms it has doses for and whose visits (those
    not doing a procedure) and eCRF forms are the ones it answers."""
    if not {a.id for a in protocol.arms} <= set(DOSES):
        return False
    if {v.id for v in protocol.schedule.visits if not v.procedure} != set(VISIT_DAYS):
        return False
    first = min(VISIT_DAYS, key=VISIT_DAYS.get)  # always attended, with every form
    answered = set(simulate_participant(next(iter(DOSES)), seed=0, index=0).visits[first])
    return {f.id for f in protocol.schedule.forms if not f.procedure} <= answered
