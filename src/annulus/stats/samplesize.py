"""Sample size and power for comparing two group means (requirement P-8.1).

Two methods:

* ``"z"`` — the normal approximation ``n = 2 (z_{1-α/2} + z_{1-β})² σ² / δ²`` per group, rounded
  up. This is the textbook formula the protocol used (25 per group, 100 in total).
* ``"t"`` — the exact power of the two-sample t test (noncentral t, two-sided, both tails), with
  n increased until the power is reached. It is slightly larger because the variance is estimated.
  Matches R ``power.t.test(..., strict = TRUE)``.

Dropout inflates the number of evaluable subjects: ``ceil(n / (1 - dropout))``. The total is
``groups`` times the per-group number; every dose is compared with the control on its own, with
no multiplicity adjustment, as in the protocol.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import stats

from annulus.stats._io import InputError, check_positive, check_probability

METHODS = ("z", "t")
# Beyond ten million per group a design is not a trial (and the exact t loop would not end).
MAX_PER_GROUP = 1e7


@dataclass(frozen=True)
class SampleSize:
    """Result of :func:`sample_size`. ``achieved_power`` is at ``per_group_before_dropout``."""

    per_group: int
    total: int
    per_group_before_dropout: int
    method: str
    achieved_power: float
    delta: float
    sd: float
    alpha: float
    power: float
    dropout: float
    groups: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AchievedPower:
    """Result of :func:`achieved_power` for ``per_group`` enrolled subjects per group."""

    per_group: int
    evaluable_per_group: int
    power: float
    method: str
    delta: float
    sd: float
    alpha: float
    dropout: float

    def as_dict(self) -> dict:
        return asdict(self)


def _check(delta: float, sd: float, alpha: float, dropout: float, method: str) -> None:
    if delta == 0 or not math.isfinite(delta):
        raise InputError(f"delta must be a non-zero number, got {delta:g}")
    check_positive(sd, "sd")
    check_probability(alpha, "alpha")
    check_probability(dropout, "dropout", open_low=False)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got '{method}'")


def power_z(n: float, delta: float, sd: float, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample z test with ``n`` per group (both tails)."""
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(delta) / (sd * math.sqrt(2 / n))
    return float(stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift))


def power_t(
    n1: float, delta: float, sd: float, alpha: float = 0.05, n2: float | None = None
) -> float:
    """Power of the two-sided pooled two-sample t test (exact, noncentral t, both tails).

    ``n2`` defaults to ``n1``; unequal sizes are used by the simulation checks.
    """
    n2 = n1 if n2 is None else n2
    df = n1 + n2 - 2
    if df < 1:
        return float("nan")
    ncp = abs(delta) / (sd * math.sqrt(1 / n1 + 1 / n2))
    crit = stats.t.ppf(1 - alpha / 2, df)
    # Both tails as upper tails: P(T < -c | ncp) = P(T > c | -ncp). scipy's nct.cdf returns NaN in
    # the far lower tail once ncp is above about 8 (a high-powered design), its sf does not.
    upper = stats.nct.sf(crit, df, ncp)
    lower = stats.nct.sf(crit, df, -ncp)
    if not math.isfinite(upper):  # not seen in scipy 1.17; the normal approximation of the t power
        upper = stats.norm.sf((crit - ncp) / math.sqrt(1 + crit**2 / (2 * df)))
    if not math.isfinite(lower):
        lower = stats.norm.sf((crit + ncp) / math.sqrt(1 + crit**2 / (2 * df)))
    return float(min(1.0, upper + lower))


def _power(method: str, n: float, delta: float, sd: float, alpha: float) -> float:
    return power_z(n, delta, sd, alpha) if method == "z" else power_t(n, delta, sd, alpha)


def sample_size(
    delta: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.9,
    dropout: float = 0.0,
    groups: int = 2,
    method: str = "z",
) -> SampleSize:
    """Subjects per group to detect a mean difference ``delta`` with the given power.

    >>> r = sample_size(10.6, 10.27, power=0.9, dropout=0.2, groups=4)
    >>> (r.per_group_before_dropout, r.per_group, r.total)
    (20, 25, 100)
    """
    _check(delta, sd, alpha, dropout, method)
    check_probability(power, "power")
    if groups < 2:
        raise InputError(f"groups must be at least 2, got {groups}")
    if power <= alpha / 2:
        raise InputError(f"power must exceed alpha/2 ({alpha / 2:g}), got {power:g}")

    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    n_z = 2 * (z_a + z_b) ** 2 * sd**2 / delta**2
    if not n_z <= MAX_PER_GROUP:
        raise InputError(f"delta {delta:g} is too small for sd {sd:g}: about {n_z:.2g} subjects per "
                         f"group would be needed (more than {MAX_PER_GROUP:.0e})")
    # A tiny tolerance keeps an exact integer (e.g. 20.0000000001 from rounding) from becoming 21.
    n = max(2, math.ceil(n_z - 1e-9))
    if method == "t":
        # The t test never has more power than the z test, so start at the z answer and step up.
        while power_t(n, delta, sd, alpha) < power:
            n += 1
    per_group = math.ceil(n / (1 - dropout) - 1e-9)
    return SampleSize(
        per_group=per_group,
        total=per_group * groups,
        per_group_before_dropout=n,
        method=method,
        achieved_power=_power(method, n, delta, sd, alpha),
        delta=delta,
        sd=sd,
        alpha=alpha,
        power=power,
        dropout=dropout,
        groups=groups,
    )


def achieved_power(
    n: int,
    delta: float,
    sd: float,
    alpha: float = 0.05,
    dropout: float = 0.0,
    method: str = "z",
) -> AchievedPower:
    """Power with ``n`` enrolled per group, ``floor(n (1 - dropout))`` of them evaluable."""
    _check(delta, sd, alpha, dropout, method)
    if n < 2 or int(n) != n:
        raise InputError(f"n must be a whole number of at least 2, got {n}")
    if n > MAX_PER_GROUP:
        raise InputError(f"n must be at most {MAX_PER_GROUP:.0e} per group, got {n}")
    evaluable = math.floor(n * (1 - dropout) + 1e-9)
    if evaluable < 2:
        raise InputError(
            f"with dropout {dropout:g}, n = {n} leaves fewer than 2 evaluable per group"
        )
    return AchievedPower(
        per_group=int(n),
        evaluable_per_group=evaluable,
        power=_power(method, evaluable, delta, sd, alpha),
        method=method,
        delta=delta,
        sd=sd,
        alpha=alpha,
        dropout=dropout,
    )
