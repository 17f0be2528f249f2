"""Reading and checking the tables the statistics commands analyse.

Every check raises ``InputError`` with one line that names the column, value or level at fault,
so the command line can print it as it is and a library caller can catch one exception type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# Spellings of "missing" accepted in numeric columns (R writes NA, SAS and SPSS exports use "." or
# an empty cell). "NaN" and "inf" are not missing marks but the result of a failed calculation
# upstream: they are refused with the line, in every reader (see ``nonfinite_text``).
MISSING = ["", "NA", "N/A", "."]
_NAN_WORDS = {"nan", "-nan", "+nan"}


def nonfinite_text(text: pd.Series) -> pd.Series:
    """True where a text cell spells a non-finite number: inf, -inf, Infinity, NaN, nan..."""
    text = text.astype(str).str.strip()
    with np.errstate(all="ignore"):
        numbers = pd.to_numeric(text, errors="coerce")
    return np.isinf(numbers) | (numbers.isna() & text.str.lower().isin(_NAN_WORDS))


def check_finite_text(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Refuse the first non-finite cell (inf, -inf, NaN text) of ``columns`` of a table read as
    text, naming the CSV line (header = line 1) and the column."""
    first = None
    for col in columns:
        if col is None or col not in frame.columns:
            continue
        bad = nonfinite_text(frame[col]).to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            if first is None or pos < first[0]:
                first = (pos, col, str(frame[col].iloc[pos]).strip())
    if first is not None:
        pos, col, text = first
        raise InputError(f"column '{col}' has a non-finite value '{text}' (line {pos + 2}); "
                         "numbers must be finite, missing values written NA or left empty")


class InputError(ValueError):
    """Bad input data or parameters; the message is one line meant for the user."""


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV as text columns (types are checked per column by the caller)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {path.name} as CSV: {first}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path.name} is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def require_columns(
    frame: pd.DataFrame, columns: Iterable[str | None], where: str = "data"
) -> None:
    """Fail on the first requested column the table does not have."""
    for col in columns:
        if col is not None and col not in frame.columns:
            known = ", ".join(map(str, frame.columns))
            raise InputError(f"column '{col}' not found in {where} (columns: {known})")


def numeric_column(frame: pd.DataFrame, col: str, allow_missing: bool = True) -> pd.Series:
    """Convert a column to float; a value that is neither a number nor a missing mark is an error.

    The message gives the CSV line (header is line 1) so the value can be found and fixed.
    """
    raw = frame[col]
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.astype(float)
        inf = np.isinf(values.to_numpy())
        if inf.any():
            pos = int(np.flatnonzero(inf)[0])
            raise InputError(f"column '{col}' has a non-finite value '{values.iloc[pos]}' "
                             f"(line {pos + 2}); numbers must be finite")
    else:
        check_finite_text(frame, [col])
        text = raw.astype(str).str.strip()
        missing = text.isin(MISSING)
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        bad = values.isna() & ~missing
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"column '{col}' has a non-numeric value '{text.iloc[pos]}' (line {pos + 2})"
            )
    if not allow_missing and values.isna().any():
        pos = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise InputError(f"column '{col}' has a missing value (line {pos + 2})")
    return values.astype(float)


def text_column(frame: pd.DataFrame, col: str) -> pd.Series:
    """A label column (subject, arm, visit): stripped text, no empty cells."""
    values = frame[col].astype(str).str.strip()
    empty = values.isin(["", "NA", "nan"])
    if empty.any():
        pos = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError(f"column '{col}' has an empty value (line {pos + 2})")
    return values


def check_one_arm_per_subject(frame: pd.DataFrame, subject: str, arm: str) -> None:
    """A subject belongs to one arm; two arms usually means a merge went wrong."""
    arms_per_subject = frame.groupby(subject, sort=False)[arm].nunique()
    if (arms_per_subject > 1).any():
        who = arms_per_subject[arms_per_subject > 1].index[0]
        found = sorted(frame.loc[frame[subject] == who, arm].unique())
        raise InputError(f"subject '{who}' appears in more than one arm ({', '.join(found)})")


def check_arms(arms: Sequence[str], control: str | None, column: str) -> None:
    """At least two arms, and the control level (when given) among them."""
    if len(arms) < 2:
        only = arms[0] if arms else "none"
        raise InputError(f"column '{column}' has a single arm ('{only}'); a comparison needs two")
    if control is not None and control not in arms:
        raise InputError(
            f"control level '{control}' not found in column '{column}' "
            f"(levels: {', '.join(arms)})"
        )


def ordered_levels(values: pd.Series) -> list[str]:
    """Visit levels in time order by the one rule of :mod:`annulus.stats.visits` (a categorical
    column keeps its category order; labels whose time order cannot be told are refused)."""
    from annulus.stats.visits import order_visits

    return order_visits(values)


def arm_order(arms: Iterable[str], control: str | None) -> list[str]:
    """Control first, then the other arms in order of first appearance."""
    arms = list(dict.fromkeys(arms))
    if control in arms:
        arms.remove(control)
        arms.insert(0, control)
    return arms


# --- parameter checks shared by the commands -------------------------------------------------


def parse_number(text: str | float, name: str) -> float:
    """A float from a command-line string, with an error that names the option."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got '{text}'") from None
    if not np.isfinite(value):
        raise InputError(f"{name} must be a finite number, got '{text}'")
    return value


def check_probability(value: float, name: str, *, open_low: bool = True) -> float:
    """A probability strictly inside (0, 1), or [0, 1) when ``open_low`` is false."""
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value < 1):
        interval = "(0, 1)" if open_low else "[0, 1)"
        raise InputError(f"{name} must be in {interval}, got {value:g}")
    return value


def check_positive(value: float, name: str) -> float:
    if not value > 0:
        raise InputError(f"{name} must be positive, got {value:g}")
    return value


def parse_levels_map(items: Sequence[str] | None, name: str) -> dict[str, float]:
    """``LEVEL=NUMBER`` pairs (e.g. ``--dose low=5``) into a dict."""
    out: dict[str, float] = {}
    for item in items or []:
        for part in str(item).split(","):
            if not part.strip():
                continue
            level, sep, number = part.rpartition("=")
            if not sep or not level.strip():
                raise InputError(f"{name} expects LEVEL=NUMBER, got '{part.strip()}'")
            out[level.strip()] = parse_number(number.strip(), f"{name} {level.strip()}")
    return out


def jsonable(obj):
    """Plain JSON types for results holding numpy values, tuples, NaN (→ null) and infinity."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if np.isnan(value):
            return None
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return obj


def parse_bool(text: str | bool, name: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "y"):
        return True
    if value in ("false", "no", "0", "n"):
        return False
    raise InputError(f"{name} must be true or false, got '{text}'")


def parse_int(text: str | int, name: str) -> int:
    value = parse_number(text, name)
    if value != int(value):
        raise InputError(f"{name} must be a whole number, got '{text}'")
    return int(value)
