"""Typography of numbers in printed documents: "20x10^6" is printed "20×10⁶"."""

from __future__ import annotations

import re

_SUPERSCRIPT = str.maketrans("0123456789-−", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁻")
_POWER = re.compile(r"((?<=\d)\s*[x×]\s*)?10\^([-−]?\d+)")


def scientific(text) -> str:
    """Powers of ten written the way they are printed: ``20x10^6`` -> ``20×10⁶``, ``10^6`` -> ``10⁶``."""
    def power(m: re.Match) -> str:
        return f"{'×' if m.group(1) else ''}10{m.group(2).translate(_SUPERSCRIPT)}"

    return _POWER.sub(power, str(text))
