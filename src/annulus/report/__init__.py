"""The trial report's tables and figures, computed from the exported analysis datasets only
(``adsl.csv``; no Django, like ``annulus.stats``).

- ``consort``: the CONSORT 2010 flow counted from ADSL (``counts``) and its diagram as SVG (``svg``).
- ``baseline``: Table 1, demographics and baseline scores by arm and overall (``table``).
- ``adsl``: reading ``adsl.csv`` (``read``) and the flag, number and arm helpers both use.

A blinded report passes ``arms=None``: one pooled column, and the treatment column is never read.
"""

from __future__ import annotations

from annulus.report.adsl import read as read_adsl

__all__ = ["read_adsl"]
