"""Data out: every export format, written from one stream of participants (no Django).

The exports app (``annulus.exports``) reads the trial as of a time, applies the blind and
pseudonymisation, and hands each format writer an iterator of ``Subject`` (``subject.py``) with an
``ExportContext``. A writer consumes the iterator once, keeps memory flat in the number of
participants where its format allows it, and returns the files it wrote.

``FORMATS`` maps each ``--format`` name to the module that writes it; each such module has
``write(subjects, ctx, out_dir) -> list[pathlib.Path]``.
"""

from __future__ import annotations

# format name -> module (imported on use, so a CLI start stays cheap)
FORMATS: dict[str, str] = {
    "csv": "annulus.interchange.csvfiles",
    "sav": "annulus.interchange.statfiles",
    "dta": "annulus.interchange.statfiles",
    "xpt": "annulus.interchange.statfiles",
    "odm": "annulus.interchange.odm",
    "sdtm": "annulus.interchange.sdtm",
    "dataset-json": "annulus.interchange.sdtm",
    "adam": "annulus.interchange.adam",
}


def writer(fmt: str):
    """The ``write`` function of a format (``ValueError`` naming the formats when unknown)."""
    import importlib

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt]).write
