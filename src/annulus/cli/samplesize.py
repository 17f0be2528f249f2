"""``annulus samplesize``: subjects per group for a two-group mean comparison (P-8.1)."""

from __future__ import annotations

import json

from annulus.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "samplesize",
        help="sample size (or achieved power) for comparing two means",
        description="Sample size per group for a two-sided two-sample comparison of means, "
        "inflated for dropout. --method z is the normal approximation the protocol used; "
        "--method t is the exact t-test calculation. With --n, prints the power for n per group.",
    )
    p.add_argument("--delta", required=True, help="difference in means to detect (e.g. 10.6)")
    p.add_argument("--sd", required=True, help="standard deviation of the compared quantity")
    p.add_argument("--alpha", default="0.05", help="two-sided significance level (default 0.05)")
    p.add_argument("--power", default="0.9", help="required power (default 0.9)")
    p.add_argument("--dropout", default="0", help="expected dropout fraction (default 0)")
    p.add_argument("--groups", default="2", help="number of groups, for the total (default 2)")
    p.add_argument("--method", default="z", help="z (normal approximation, default) or t (exact)")
    p.add_argument("--n", default=None, help="enrolled per group: print the achieved power instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from annulus.stats._io import InputError, jsonable, parse_int, parse_number
    from annulus.stats.samplesize import achieved_power, sample_size

    try:
        common = {
            "delta": parse_number(args.delta, "--delta"),
            "sd": parse_number(args.sd, "--sd"),
            "alpha": parse_number(args.alpha, "--alpha"),
            "dropout": parse_number(args.dropout, "--dropout"),
            "method": str(args.method).strip().lower(),
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
        print(
            f"power {result['power']:.4f} with {result['per_group']} per group "
            f"({result['evaluable_per_group']} evaluable after {result['dropout']:.0%} dropout), "
            f"delta {result['delta']:g}, SD {result['sd']:g}, two-sided alpha {result['alpha']:g}, "
            f"method {result['method']}"
        )
    else:
        print(f"method                    {result['method']}")
        print(f"per group before dropout  {result['per_group_before_dropout']}")
        print(f"per group                 {result['per_group']}  (dropout {result['dropout']:.0%})")
        print(f"total                     {result['total']}  ({result['groups']} groups)")
        print(f"achieved power            {result['achieved_power']:.4f}")
    return 0
