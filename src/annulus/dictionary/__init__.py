"""The data dictionary: every captured item in one place (no Django).

    >>> d = build(protocol)
    >>> d.entry("blood_routine", "hgb").sdtm
    'LB/HGB'

``build(protocol)`` reads the instruments' forms, the protocol's laboratory panels, vital signs and
screening evidence fields, and the records declared in ``annulus.dictionary.records``. Apps read it
through ``annulus.trial.selectors.data_dictionary()`` (the protocol in force, once per version).
"""

from .build import build
from .export import COLUMNS, as_dict, rows, to_csv
from .model import SCOPES, TYPES, Dictionary, Entry, FormDef

__all__ = ["COLUMNS", "SCOPES", "TYPES", "Dictionary", "Entry", "FormDef", "as_dict", "build", "rows", "to_csv"]
