"""Sample size and power for comparing two group means (requirement P-8.1).

Two methods:

* ``"z"`` — the normal approximation ``n = 2 (z_{1-α/2} + z_{1-β})² σ² / δ²`` per group, rounded
  up. This is the textbook formula the protocol used (25 per group, 100 in total).
* ``"t"`` — the exact power of the two-sample t test (noncentral t, two-sided, both tails), with
  n increased until the power is reached. It is slightly larger because the variance is estimated.
  Matches R ``power.t.test(..., strict = TRUE)``.

``alternative="one-sided"`` tests in the direction of ``delta`` at level ``alpha`` (z_{1-α} in
place of z_{1-α/2}; the t power is the upper tail alone, as R ``power.t.test(alternative =
"one.sided")``). ``ratio`` K allocates K treatment subjects per control subject: the control group
needs ``n_c = (1 + 1/K) (z_a + z_{1-β})² σ² / δ²`` (rounded up; the closed-form normal
approximation, which is the formula above when K = 1) and each treatment group ``n_t =
ceil(K n_c)``; with ``"t"`` the control size is increased, with ``n_t = ceil(K n_c)``, until the
exact power of the pooled t test with n_c and n_t (as R ``pwr::pwr.t2n.test``) is reached.

Dropout inflates the number of evaluable subjects: ``ceil(n / (1 - dropout))`` in each group. The
total is the control group plus ``groups - 1`` treatment groups (``groups`` times the per-group
number when K = 1); every dose is compared with the control on its own, with no multiplicity
adjustment, as in the protocol.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

from scipy import stats

from annulus.stats._io import InputError, check_positive, check_probability

METHODS = ("z", "t")
ALTERNATIVES = ("two-sided", "one-sided")
# Beyond ten million per group a design is not a trial (and the exact t loop would not end).
MAX_PER_GROUP = 1e7


@dataclass(frozen=True)
class SampleSize:
    """Result of :func:`sample_size`. ``achieved_power`` is at the numbers before dropout.

    ``control`` and ``treatment`` are the enrolled subjects in the control group and in each
    treatment group (``*_before_dropout``: evaluable). With ``ratio`` 1 they are equal and also
    given as ``per_group``; with unequal allocation there is no single per-group number and
    ``per_group`` and ``per_group_before_dropout`` are None."""

    per_group: int | None
    total: int
    per_group_before_dropout: int | None
    method: str
    achieved_power: float
    delta: float
    sd: float
    alpha: float
    power: float
    dropout: float
    groups: int
    alternative: str = "two-sided"
    ratio: float = 1.0
    control: int = 0
    treatment: int = 0
    control_before_dropout: int = 0
    treatment_before_dropout: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AchievedPower:
    """Result of :func:`achieved_power` for ``control`` enrolled in the control group and
    ``treatment`` (= ``ceil(ratio × control)``) in the treatment group. With ``ratio`` 1 these
    are also ``per_group`` and ``evaluable_per_group``; otherwise those two are None."""

    per_group: int | None
    evaluable_per_group: int | None
    power: float
    method: str
    delta: float
    sd: float
    alpha: float
    dropout: float
    alternative: str = "two-sided"
    ratio: float = 1.0
    control: int = 0
    treatment: int = 0
    evaluable_control: int = 0
    evaluable_treatment: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def check_alternative(alternative: str, name: str = "alternative") -> str:
    """``two-sided`` or ``one-sided`` (R's ``two.sided``, ``one.sided`` and ``_`` accepted)."""
    value = str(alternative).strip().lower().replace(".", "-").replace("_", "-")
    if value not in ALTERNATIVES:
        raise InputError(f"{name} must be two-sided or one-sided, got '{alternative}'")
    return value


def check_ratio(ratio: float, name: str = "ratio") -> float:
    """Allocation ratio treatment:control, a positive finite number."""
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) \
            or not ratio > 0:
        raise InputError(f"{name} must be a positive number (treatment:control, e.g. 2 for 2:1), "
                         f"got '{ratio}'")
    return float(ratio)


def _check(delta: float, sd: float, alpha: float, dropout: float, method: str) -> None:
    if delta == 0 or not math.isfinite(delta):
        raise InputError(f"delta must be a non-zero number, got {delta:g}")
    check_positive(sd, "sd")
    check_probability(alpha, "alpha")
    check_probability(dropout, "dropout", open_low=False)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got '{method}'")


def _sides(alternative: str) -> int:
    return 2 if check_alternative(alternative) == "two-sided" else 1


def power_z(
    n: float, delta: float, sd: float, alpha: float = 0.05, n2: float | None = None,
    alternative: str = "two-sided",
) -> float:
    """Power of the two-sample z test with ``n`` (and ``n2``, default ``n``) per group: both
    tails when two-sided, the tail in the direction of ``delta`` when one-sided."""
    n2 = n if n2 is None else n2
    sides = _sides(alternative)
    z = stats.norm.ppf(1 - alpha / sides)
    shift = abs(delta) / (sd * math.sqrt(1 / n + 1 / n2))
    lower = stats.norm.cdf(-z - shift) if sides == 2 else 0.0
    return float(stats.norm.sf(z - shift) + lower)


def power_t(
    n1: float, delta: float, sd: float, alpha: float = 0.05, n2: float | None = None,
    alternative: str = "two-sided",
) -> float:
    """Power of the pooled two-sample t test (exact, noncentral t): both tails when two-sided
    (R ``power.t.test(strict = TRUE)``), the tail in the direction of ``delta`` when one-sided.

    ``n2`` defaults to ``n1`` (unequal sizes: R ``pwr::pwr.t2n.test``).
    """
    n2 = n1 if n2 is None else n2
    sides = _sides(alternative)
    df = n1 + n2 - 2
    if df < 1:
        return float("nan")
    ncp = abs(delta) / (sd * math.sqrt(1 / n1 + 1 / n2))
    crit = stats.t.ppf(1 - alpha / sides, df)
    # Both tails as upper tails: P(T < -c | ncp) = P(T > c | -ncp). scipy's nct.cdf returns NaN in
    # the far lower tail once ncp is above about 8 (a high-powered design), its sf does not.
    upper = stats.nct.sf(crit, df, ncp)
    lower = stats.nct.sf(crit, df, -ncp) if sides == 2 else 0.0
    if not math.isfinite(upper):  # not seen in scipy 1.17; the normal approximation of the t power
        upper = stats.norm.sf((crit - ncp) / math.sqrt(1 + crit**2 / (2 * df)))
    if not math.isfinite(lower):
        lower = stats.norm.sf((crit + ncp) / math.sqrt(1 + crit**2 / (2 * df)))
    return float(min(1.0, upper + lower))


def _power(method: str, n: float, delta: float, sd: float, alpha: float, n2: float | None = None,
           alternative: str = "two-sided") -> float:
    fun = power_z if method == "z" else power_t
    return fun(n, delta, sd, alpha, n2=n2, alternative=alternative)


def _treatment_size(control: int, ratio: float) -> int:
    # A tiny tolerance keeps an exact product (e.g. 1.5 × 20 = 30.000000000000004) from rounding up.
    return max(2, math.ceil(ratio * control - 1e-9))


def sample_size(
    delta: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.9,
    dropout: float = 0.0,
    groups: int = 2,
    method: str = "z",
    alternative: str = "two-sided",
    ratio: float = 1.0,
) -> SampleSize:
    """Subjects per group to detect a mean difference ``delta`` with the given power.

    ``ratio`` K gives K treatment subjects per control subject (``control``, ``treatment``);
    ``alternative="one-sided"`` tests at level ``alpha`` in the direction of ``delta``.

    >>> r = sample_size(10.6, 10.27, power=0.9, dropout=0.2, groups=4)
    >>> (r.per_group_before_dropout, r.per_group, r.total)
    (20, 25, 100)
    >>> r = sample_size(10.6, 10.27, power=0.9, ratio=2)
    >>> (r.control_before_dropout, r.treatment_before_dropout, r.total)
    (15, 30, 45)
    """
    _check(delta, sd, alpha, dropout, method)
    check_probability(power, "power")
    alternative = check_alternative(alternative)
    ratio = check_ratio(ratio)
    if groups < 2:
        raise InputError(f"groups must be at least 2, got {groups}")
    sides = _sides(alternative)
    if power <= alpha / sides:
        limit = "alpha/2" if sides == 2 else "alpha"
        raise InputError(f"power must exceed {limit} ({alpha / sides:g}), got {power:g}")

    z_a, z_b = stats.norm.ppf(1 - alpha / sides), stats.norm.ppf(power)
    n_z = (1 + 1 / ratio) * (z_a + z_b) ** 2 * sd**2 / delta**2
    if not max(n_z, ratio * n_z) <= MAX_PER_GROUP:
        raise InputError(f"delta {delta:g} is too small for sd {sd:g}: about {max(n_z, ratio * n_z):.2g} "
                         f"subjects per group would be needed (more than {MAX_PER_GROUP:.0e})")
    # A tiny tolerance keeps an exact integer (e.g. 20.0000000001 from rounding) from becoming 21.
    n = max(2, math.ceil(n_z - 1e-9))
    if method == "t":
        # The t test never has more power than the z test, so start at the z answer and step up.
        while power_t(n, delta, sd, alpha, n2=_treatment_size(n, ratio), alternative=alternative) < power:
            n += 1
    n_t = _treatment_size(n, ratio)
    control = math.ceil(n / (1 - dropout) - 1e-9)
    treatment = math.ceil(n_t / (1 - dropout) - 1e-9)
    equal = n_t == n and treatment == control
    return SampleSize(
        per_group=control if equal else None,
        total=control + (groups - 1) * treatment,
        per_group_before_dropout=n if equal else None,
        method=method,
        achieved_power=_power(method, n, delta, sd, alpha, n2=n_t, alternative=alternative),
        delta=delta,
        sd=sd,
        alpha=alpha,
        power=power,
        dropout=dropout,
        groups=groups,
        alternative=alternative,
        ratio=ratio,
        control=control,
        treatment=treatment,
        control_before_dropout=n,
        treatment_before_dropout=n_t,
    )


def achieved_power(
    n: int,
    delta: float,
    sd: float,
    alpha: float = 0.05,
    dropout: float = 0.0,
    method: str = "z",
    alternative: str = "two-sided",
    ratio: float = 1.0,
) -> AchievedPower:
    """Power with ``n`` enrolled per group, ``floor(n (1 - dropout))`` of them evaluable. With
    ``ratio`` K, ``n`` is the control group and the treatment group has ``ceil(K n)``."""
    _check(delta, sd, alpha, dropout, method)
    alternative = check_alternative(alternative)
    ratio = check_ratio(ratio)
    if n < 2 or int(n) != n:
        raise InputError(f"n must be a whole number of at least 2, got {n}")
    n = int(n)
    n_t = _treatment_size(n, ratio)
    if max(n, n_t) > MAX_PER_GROUP:
        raise InputError(f"n must be at most {MAX_PER_GROUP:.0e} per group, got {max(n, n_t)}")
    evaluable = math.floor(n * (1 - dropout) + 1e-9)
    evaluable_t = math.floor(n_t * (1 - dropout) + 1e-9)
    if min(evaluable, evaluable_t) < 2:
        raise InputError(
            f"with dropout {dropout:g}, n = {n} leaves fewer than 2 evaluable per group"
        )
    equal = n_t == n
    return AchievedPower(
        per_group=n if equal else None,
        evaluable_per_group=evaluable if equal else None,
        power=_power(method, evaluable, delta, sd, alpha, n2=evaluable_t, alternative=alternative),
        method=method,
        delta=delta,
        sd=sd,
        alpha=alpha,
        dropout=dropout,
        alternative=alternative,
        ratio=ratio,
        control=n,
        treatment=n_t,
        evaluable_control=evaluable,
        evaluable_treatment=evaluable_t,
    )
