"""Demo step 100, after every other: the demo statistician builds the blinded trial report (PDF)
through the service, as the Report page does, so the page offers one to download."""

from __future__ import annotations

from . import services


def blinded_report(ctx) -> None:
    statistician = ctx.users.get("statistician")
    if statistician is None:
        return
    services.build(actor=statistician, language="en", unblinded=False, fmt="pdf", origin="page")


STEPS = [(100, blinded_report)]
