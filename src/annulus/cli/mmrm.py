"""``annulus mmrm``: fit a mixed model for repeated measures to a CSV file.

Example::

    annulus mmrm --data fev.csv --formula "FEV1 ~ RACE + SEX + ARMCD*AVISIT" \\
        --subject USUBJID --visit AVISIT --cov us --df satterthwaite --json
"""

from __future__ import annotations

import json
import math

from annulus.cli import CliError


# Kept here (not imported) so that building the parser stays cheap.
_STRUCTURES = ["us", "cs", "csh", "ar1", "arh1", "toep"]


def register(subparsers) -> None:
    p = subparsers.add_parser("mmrm", help="fit a mixed model for repeated measures (MMRM)",
                              description="Fit an MMRM by REML or ML (as SAS PROC MIXED with a "
                                          "REPEATED statement) and print coefficients, the "
                                          "visit covariance, LS-means and contrasts vs control.")
    p.add_argument("--data", required=True, help="CSV file, one row per subject and visit "
                                                 "('NA' or empty = missing)")
    p.add_argument("--formula", required=True, help='fixed effects, e.g. "FEV1 ~ ARMCD*AVISIT"')
    p.add_argument("--subject", required=True, help="subject identifier column")
    p.add_argument("--visit", required=True, help="visit column")
    p.add_argument("--cov", default="us", choices=_STRUCTURES, help="covariance structure")
    p.add_argument("--df", default="satterthwaite",
                   choices=["satterthwaite", "kenward-roger", "kr", "residual", "between-within"],
                   help="denominator degrees of freedom")
    p.add_argument("--method", default="reml", choices=["reml", "ml"])
    p.add_argument("--type3-basis", default="reference", choices=["reference", "sum"],
                   help="hypothesis rows of the multi-df Type 3 tests: 'reference' (each level minus the reference "
                        "level, as SAS PROC MIXED; default) or 'sum' (sum-to-zero, as the R package mmrm); F and p "
                        "are the same, the Satterthwaite denominator df differ")
    p.add_argument("--arm", help="treatment column for LS-means and contrasts "
                                 "(default: the factor interacting with the visit)")
    p.add_argument("--control", help="control level of --arm (default: first in sorted order)")
    p.add_argument("--visit-order", help="comma-separated visits in time order (default: by --visit-number or "
                                         "AVISITN when present, else labels with time units in time "
                                         "order: days < weeks < months < years, e.g. W1, M1, M24)")
    p.add_argument("--visit-number", metavar="COLUMN",
                   help="numeric column giving the visits' time order (default: AVISITN when present)")
    p.add_argument("--trend", metavar="LEVEL=DOSE,...",
                   help="linear dose trend on the LS-means of --arm at each visit, e.g. "
                        "control=0,low=5,mid=10,high=20")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _read_csv(path: str, formula: str = "", visit_number: str | None = None):
    import pandas as pd

    from annulus.stats._io import InputError, check_finite_text

    try:
        # Non-finite numbers (inf, -inf, NaN text) in the model's columns are refused with their
        # line; only 'NA' and empty cells are missing, anything else non-numeric is an error later.
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
        text.columns = [str(c).strip() for c in text.columns]
        try:
            check_finite_text(text, [c for c in text.columns
                                     if c == visit_number or _names_column(formula, c)])
        except InputError as exc:
            raise CliError(str(exc)) from None
        return pd.read_csv(path, keep_default_na=False, na_values=["NA", ""])
    except FileNotFoundError:
        raise CliError(f"cannot read {path}: file not found") from None
    except IsADirectoryError:
        raise CliError(f"cannot read {path}: it is a directory") from None
    except PermissionError:
        raise CliError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: not a text (UTF-8) CSV file") from None
    except pd.errors.EmptyDataError:
        raise CliError(f"cannot read {path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot read {path}: {first}") from None


def _names_column(formula: str, column: str) -> bool:
    """Whether the formula text mentions ``column`` as a whole name."""
    import re

    return re.search(rf"(?<![\w.]){re.escape(column)}(?![\w.])", formula) is not None


def _guess_arm(formula: str, visit: str, data) -> str | None:
    """The treatment factor: a non-numeric formula variable that interacts with the visit."""
    import formulaic

    try:
        terms = formulaic.Formula(formula).rhs
    except Exception:
        return None  # the fit reports the formula error
    for term in terms:
        names = [str(f) for f in term.factors]
        if visit in names and len(names) > 1:
            for name in names:
                if (name != visit and name in data.columns
                        and not _is_numeric(data[name])):
                    return name
    return None


def _is_numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _finite(obj):
    """JSON has no NaN/Infinity: write null instead."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _scores(text: str) -> dict:
    scores = {}
    for part in text.split(","):
        level, eq, dose = part.partition("=")
        if not eq or not level.strip():
            raise CliError(f"--trend: {part.strip()!r} is not LEVEL=DOSE")
        try:
            scores[level.strip()] = float(dose)
        except ValueError:
            raise CliError(f"--trend: dose {dose.strip()!r} of {level.strip()!r} is not a number") from None
    return scores


def run(args) -> int:
    from annulus.stats.mmrm import MmrmError, check_arm, fit_mmrm

    data = _read_csv(args.data, args.formula, args.visit_number)
    order = [v.strip() for v in args.visit_order.split(",")] if args.visit_order else None
    try:
        arm = args.arm or _guess_arm(args.formula, args.visit, data)
        if args.control and not arm:
            raise MmrmError("--control needs --arm (no treatment factor found in the formula)")
        if arm:
            check_arm(data, args.subject, arm)
        res = fit_mmrm(data, args.formula, subject=args.subject, visit=args.visit,
                       cov=args.cov, method=args.method, df=args.df, visit_order=order,
                       visit_number=args.visit_number)
        out = res.to_dict(arm=arm, control=args.control, type3_basis=args.type3_basis)
        if args.trend:
            if not arm:
                raise MmrmError("--trend needs --arm (no treatment factor found in the formula)")
            out["trend"] = res.trend(arm, _scores(args.trend))
    except MmrmError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(_finite(out), indent=2))
    else:
        print(_table(out))
    return 0


def _fmt(v, width=10, digits=4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-".rjust(width)
    if isinstance(v, float):
        return f"{v:{width}.{digits}f}"
    return str(v).rjust(width)


def _pfmt(p):
    return "    <.0001" if p is not None and p < 1e-4 else _fmt(p, 10, 4)


def _table(out: dict) -> str:
    lines = []
    key = "neg2_reml" if out["method"] == "reml" else "neg2_ml"
    label = "-2 REML log-likelihood" if out["method"] == "reml" else "-2 log-likelihood"
    lines.append(f"MMRM  {out['formula']}")
    lines.append(f"covariance {out['cov']}, {out['method'].upper()}, df {out['df_method']}; "
                 f"{out['n_subjects']} subjects, {out['n_obs']} observations")
    lines.append(f"{label}: {out[key]:.8f}   converged: {out['converged']} "
                 f"(max |gradient| {out['diagnostics']['max_abs_gradient']:.1e})")
    for w in out.get("warnings") or []:
        lines.append(f"warning: {w}")
    lines.append("")
    width = max(len(c["term"]) for c in out["coefficients"]) + 2
    lines.append("Fixed effects".ljust(width) + "  estimate        se        df         t         p")
    for c in out["coefficients"]:
        lines.append(c["term"].ljust(width) + "".join(
            _fmt(c[k]) for k in ("estimate", "se", "df", "t")) + _pfmt(c["p"]))
    if out.get("type3"):
        lines.append("")
        width3 = max(len(t["effect"]) for t in out["type3"]) + 2
        lines.append("Type 3 tests".ljust(width3) + "  num df    den df   F value         p")
        for t in out["type3"]:
            lines.append(t["effect"].ljust(width3) + str(t["num_df"]).rjust(8) + _fmt(t["den_df"])
                         + _fmt(t["F"]) + _pfmt(t["p"]) + (f"  {t['note']}" if t.get("note") else ""))
    elif out.get("type3_note"):
        lines.append("")
        lines.append(f"Type 3 tests: {out['type3_note']}")
    lines.append("")
    visits = out["covariance"]["visits"]
    lines.append("Covariance".ljust(10) + "".join(v.rjust(10) for v in visits))
    for v, row in zip(visits, out["covariance"]["matrix"]):
        lines.append(v.ljust(10) + "".join(_fmt(x, 10, 3) for x in row))
    if out.get("lsmeans"):
        lines.append("")
        factors = [k for k in out["lsmeans"][0] if k not in
                   ("estimate", "se", "df", "lower", "upper")]
        lines.append("LS-means  " + " ".join(f.ljust(10) for f in factors)
                     + "  estimate        se        df     lower     upper")
        for r in out["lsmeans"]:
            lines.append("          " + " ".join(str(r[f]).ljust(10) for f in factors) + "".join(
                _fmt(r[k]) for k in ("estimate", "se", "df", "lower", "upper")))
    if out.get("contrasts"):
        lines.append("")
        lines.append("Contrasts vs control        estimate        se        df         t"
                     "         p     lower     upper")
        for r in out["contrasts"]:
            name = f"{r['arm']} - {r['control']}" + (f" @ {r['visit']}" if r["visit"] else "")
            lines.append(name.ljust(26) + "".join(_fmt(r[k]) for k in ("estimate", "se", "df",
                                                                        "t"))
                         + _pfmt(r["p"]) + _fmt(r["lower"]) + _fmt(r["upper"])
                         + ("  not estimable" if r.get("estimable") is False else ""))
    if out.get("trend"):
        lines.append("")
        weights = ", ".join(f"{k} {v:+g}" for k, v in out["trend"][0]["weights"].items())
        lines.append(f"Linear dose trend (weights {weights})")
        lines.append("visit                       estimate        se        df         t         p     lower     upper")
        for r in out["trend"]:
            lines.append(str(r["visit"] or "all visits").ljust(26) + "".join(
                _fmt(r[k]) for k in ("estimate", "se", "df", "t")) + _pfmt(r["p"]) + _fmt(r["lower"]) + _fmt(r["upper"]))
    return "\n".join(lines)
