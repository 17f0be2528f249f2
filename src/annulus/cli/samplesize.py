"""``annulus samplesize``: subjects per group for a two-group mean comparison (P-8.1)."""

from __future__ import annotations

import json

from annulus.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "samplesize",
        help="sample size (or achieved power) for comparing two means",
        description="Sample size per group for a two-sample comparison of means (two-sided, or "
        "one-sided with --alternative one-sided), inflated for dropout; --ratio K allocates K "
        "treatment subjects per control subject. --method z is the normal approximation the "
        "protocol used; --method t is the exact t-test calculation. With --n, prints the power "
        "for n per group (n in the control group with --ratio).",
    )
    p.add_argument("--delta", required=True, help="difference in means to detect (e.g. 10.6)")
    p.add_argument("--sd", required=True, help="standard deviation of the compared quantity")
    p.add_argument("--alpha", default="0.05",
                   help="significance level, two-sided unless --alternative one-sided (default 0.05)")
    p.add_argument("--alternative", default="two-sided",
                   help="two-sided (default) or one-sided (in the direction of --delta)")
    p.add_argument("--ratio", default="1",
                   help="allocation ratio treatment:control, e.g. 2 for 2:1 (default 1)")
    p.add_argument("--power", default="0.9", help="required power (default 0.9)")
    p.add_argument("--dropout", default="0", help="expected dropout fraction (default 0)")
    p.add_argument("--groups", default="2", help="number of groups, for the total (default 2)")
    p.add_argument("--method", default="z", help="z (normal approximation, default) or t (exact)")
    p.add_argument("--n", default=None, help="enrolled per group (the control group with --ratio): "
                   "print the achieved power instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable, parse_int, parse_number
    from annulus.stats.samplesize import achieved_power, check_alternative, check_ratio, sample_size

    try:
        common = {
            "delta": parse_number(args.delta, "--delta"),
            "sd": parse_number(args.sd, "--sd"),
            "alpha": parse_number(args.alpha, "--alpha"),
            "dropout": parse_number(args.dropout, "--dropout"),
            "method": str(args.method).strip().lower(),
            "alternative": check_alternative(args.alternative, "--alternative"),
            "ratio": check_ratio(_ratio(args.ratio), "--ratio"),
        }
        if args.n is not None:
            result = achieved_power(parse_int(args.n, "--n"), **common).as_dict()
        else:
            result = sample_size(
                power=parse_number(args.power, "--power"),
                groups=parse_int(args.groups, "--groups"),
                **common,
            ).as_dict()
    except InputError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(jsonable(result), indent=2))
    elif args.n is not None:
        if result["per_group"] is not None:
            sizes = (f"{result['per_group']} per group ({result['evaluable_per_group']} evaluable "
                     f"after {result['dropout']:.0%} dropout)")
        else:
            sizes = (f"{result['control']} control and {result['treatment']} treatment "
                     f"({result['evaluable_control']} and {result['evaluable_treatment']} evaluable "
                     f"after {result['dropout']:.0%} dropout, ratio {result['ratio']:g}:1)")
        print(
            f"power {result['power']:.4f} with {sizes}, "
            f"delta {result['delta']:g}, SD {result['sd']:g}, {result['alternative']} alpha "
            f"{result['alpha']:g}, method {result['method']}"
        )
    else:
        print(f"method                    {result['method']}")
        if result["alternative"] != "two-sided":
            print(f"alternative               {result['alternative']}")
        if result["per_group"] is not None:
            print(f"per group before dropout  {result['per_group_before_dropout']}")
            print(f"per group                 {result['per_group']}  (dropout {result['dropout']:.0%})")
            print(f"total                     {result['total']}  ({result['groups']} groups)")
        else:
            treated = result["groups"] - 1
            each = " each" if treated > 1 else ""
            print(f"allocation                {result['ratio']:g}:1 (treatment:control)")
            print(f"control before dropout    {result['control_before_dropout']}")
            print(f"treatment before dropout  {result['treatment_before_dropout']}{each}")
            print(f"control                   {result['control']}  (dropout {result['dropout']:.0%})")
            print(f"treatment                 {result['treatment']}{each}  (dropout {result['dropout']:.0%})")
            print(f"total                     {result['total']}  (1 control and {treated} treatment "
                  f"group{'s' * (treated > 1)})")
        print(f"achieved power            {result['achieved_power']:.4f}")
    return 0


def _ratio(text: str) -> float:
    """--ratio as a positive number: K, or written as a ratio K:M (2:1 is 2)."""
    from annulus.stats._io import InputError, parse_number

    parts = str(text).split(":")
    if len(parts) == 2:
        num, den = (parse_number(p.strip(), "--ratio") for p in parts)
        value = num / den if den > 0 else -1.0
    else:
        value = parse_number(text, "--ratio")
    if not value > 0:
        raise InputError(f"--ratio must be a positive number (treatment:control, e.g. 2 for 2:1), "
                         f"got '{text}'")
    return value
