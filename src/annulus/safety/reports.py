"""The DSMB interim safety report: AE and SAE counts and incidence, pooled (open report) or by
arm (closed report), by grade, seriousness and relatedness, with a plot over time.

The caller supplies the arms (``{participant_id: arm_id}``) for a closed report; this module
never looks allocation up itself."""

from __future__ import annotations

import base64
import calendar
import io
import warnings
from collections import Counter
from datetime import date, datetime, time, timedelta

from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.safestring import mark_safe
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext_lazy as _

from annulus.participants.models import Participant
from annulus.report.fonts import chinese_fonts

from . import causality
from .models import CAUSALITY, EXPECTEDNESS, GRADES, OUTCOMES, SERIOUS_CRITERIA, AdverseEvent

#: the languages every report is produced in (kept side by side; the page shows its own)
LANGUAGES = ("en", "zh-hans")

TOTAL = "__total__"
UNALLOCATED = "__unallocated__"


def add_months(day: date, months: int) -> date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def first_enrolment() -> date | None:
    first = Participant.objects.filter(enrolled_at__isnull=False).order_by("enrolled_at").values_list("enrolled_at", flat=True).first()
    return timezone.localtime(first).date() if first else None


def schedule(*, months: int, today: date | None = None) -> list[date]:
    """Due dates of the interim report: every ``months`` from the first enrolment, up to and
    including the next one after today."""
    start = first_enrolment()
    if start is None:
        return []
    today = today or timezone.localdate()
    out, k = [], 1
    while True:
        due = add_months(start, months * k)
        out.append(due)
        if due > today:
            return out
        k += 1


def _end_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _cells(events: list, flags: list[bool], columns, col_of, population) -> list[dict]:
    """Events, subjects with at least one event, and incidence with its exact (Clopper-Pearson)
    95 % interval per column, counted by the shared safety tables."""
    import pandas as pd

    from annulus.stats.safety_tables import POOLED, safety_table

    subjects = pd.DataFrame({"subject": [str(pid) for pid in population],
                             "arm": [col_of(pid) for pid in population]}, columns=["subject", "arm"])
    ev = pd.DataFrame({"subject": [str(e.participant_id) for e in events],
                       "arm": [col_of(e.participant_id) for e in events],
                       "grade": [e.grade for e in events], "serious": list(flags),
                       "related": [False] * len(events)}, columns=["subject", "arm", "grade", "serious", "related"])
    ev["serious"] = ev["serious"].astype(bool)
    ev["related"] = ev["related"].astype(bool)
    table = safety_table(ev, subjects, pooled=True, by_term=False)
    table = table[table["category"] == "serious"].set_index("arm")
    out = []
    for cid, _ in columns:
        key = POOLED if cid == TOTAL else cid
        if key not in table.index or int(table.loc[key, "n"]) == 0:
            out.append({"events": 0, "subjects": 0, "n": 0, "pct": None, "ci": None})
            continue
        r = table.loc[key]
        out.append({"events": int(r["events"]), "subjects": int(r["subjects"]), "n": int(r["n"]),
                    "pct": 100.0 * float(r["incidence"]), "ci": (100.0 * float(r["lower"]), 100.0 * float(r["upper"]))})
    return out


def _in_language(text) -> str:
    return text.get(translation.get_language())


#: a protocol text (English and Chinese) read in the language active when it is shown
_text_lazy = lazy(_in_language, str)

RELATED_TO_PRODUCT = _("Related to the study product")


def build(*, as_of: date, protocol, arms: dict[int, str] | None) -> dict:
    """Everything the report shows, as plain data. ``arms`` None gives the open (pooled) report.
    Labels are lazy: they read in the language active when the report is rendered."""
    cutoff = _end_of(as_of)
    population = list(Participant.objects.filter(enrolled_at__lt=cutoff).values_list("id", flat=True))
    pop = set(population)
    events = list(AdverseEvent.objects.filter(onset_at__lt=cutoff).select_related("participant").order_by("onset_at", "id"))
    outside = [e for e in events if e.participant_id not in pop]
    events = [e for e in events if e.participant_id in pop]
    related = set(protocol.safety.related_causality)
    closed = arms is not None

    if closed:
        columns = [(a.id, _text_lazy(a.name)) for a in protocol.arms]
        if any(pid not in arms for pid in population):
            columns.append((UNALLOCATED, _("Not yet allocated")))
        columns.append((TOTAL, _("Total")))

        def col_of(pid):
            return arms.get(pid) or UNALLOCATED
    else:
        columns = [(TOTAL, _("All participants"))]

        def col_of(pid):
            return TOTAL

    def row(label, predicate):
        return {"label": label, "cells": _cells(events, [bool(predicate(e)) for e in events], columns, col_of, population)}

    overview = [
        row(_("Any adverse event"), lambda e: True),
        row(_("Serious adverse event"), lambda e: e.serious),
        row(_("Grade 3 or higher"), lambda e: e.grade >= 3),
        row(RELATED_TO_PRODUCT, lambda e: e.causality_product in related),
        row(_("Fatal"), lambda e: e.outcome == "fatal"),
    ]
    by_grade = [row(format_lazy(_("Grade {}"), label), lambda e, g=g: e.grade == g) for g, label in GRADES]
    by_criterion = [row(capfirst(label), lambda e, c=c: c in e.serious_criteria) for c, label in SERIOUS_CRITERIA]
    # one row per procedure the protocol names (safety.causality_of), then the product
    by_relation = [row(format_lazy(_("Related to {}"), _text_lazy(c.name)),
                       lambda e, c=c: (e.causality or {}).get(c.id) in related) for c in causality.items(protocol)]
    by_relation.append(row(RELATED_TO_PRODUCT, lambda e: e.causality_product in related))
    terms = Counter(e.term.strip().lower() for e in events)
    by_term = [row(term[:1].upper() + term[1:], lambda e, t=term: e.term.strip().lower() == t)
               for term, _ in sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))]
    saes = [{"label": e.label, "term": e.term, "onset": timezone.localtime(e.onset_at), "grade": e.grade,
             "criteria": [dict(SERIOUS_CRITERIA).get(c, c) for c in e.serious_criteria],
             "product": dict(CAUSALITY).get(e.causality_product, e.causality_product),
             "outcome": dict(OUTCOMES).get(e.outcome, e.outcome),
             "expected": dict(EXPECTEDNESS).get(e.expectedness, e.expectedness),
             "arm": dict(columns).get(col_of(e.participant_id)) if closed else None}
            for e in events if e.serious]
    with translation.override("en"):
        plot = plot_over_time(events, columns, col_of, as_of)
    return {
        "closed": closed, "as_of": as_of, "columns": columns, "population": len(population),
        "events_total": len(events), "outside": len(outside),
        "overview": overview, "by_grade": by_grade, "by_criterion": by_criterion, "by_relation": by_relation,
        "by_term": by_term, "saes": saes,
        "plot": plot,  # in English
        # the plot again in another language (its legend and titles are drawn into the picture)
        "replot": lambda: plot_over_time(events, columns, col_of, as_of),
        "related_causality": [dict(CAUSALITY).get(c, c) for c in protocol.safety.related_causality],
    }


def plot_over_time(events, columns, col_of, as_of: date) -> str:
    """Cumulative AEs (solid) and SAEs (dashed) by onset date, one colour per column; a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    # a Chinese font draws the Chinese labels (glyphs missing from DejaVu Sans fall back to it); where
    # none is installed (`make fonts` says so once) the plot is drawn without them, not with a warning
    # per glyph in the server's log
    with plt.rc_context({"font.family": ["DejaVu Sans", *chinese_fonts()]}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
        for i, (cid, label) in enumerate(columns):
            chosen = events if cid == TOTAL else [e for e in events if col_of(e.participant_id) == cid]
            colour = f"C{i}" if cid != TOTAL else "#1d2733"
            for serious_only, style in ((False, "-"), (True, "--")):
                pts = sorted(timezone.localtime(e.onset_at).date() for e in chosen if e.serious or not serious_only)
                if not pts:
                    continue
                xs = pts + [as_of]
                ys = list(range(1, len(pts) + 1)) + [len(pts)]
                ax.step(xs, ys, where="post", linestyle=style, color=colour,
                        label=f"{label}: {_('SAE') if serious_only else _('AE')}")
        ax.set_ylabel(str(_("cumulative events")))
        ax.set_title(str(format_lazy(_("Adverse events by onset date, up to {}"), as_of.isoformat())), fontsize=10)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
        ax.grid(alpha=.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(data: dict, *, registry: str, generated_at: datetime, generated_by: str, scheduled: bool,
                language: str = "en") -> str:
    """The report in ``language`` (every heading, label, the CLOSED/OPEN page marking and the plot)."""
    with translation.override(language):
        plot = data["plot"] if language == "en" or "replot" not in data else data["replot"]()
        return render_to_string("safety/dsmb_report.html", {
            "d": data, "plot": plot, "page_footer": _page_footer(), "registry": registry, "generated_at": generated_at,
            "generated_by": generated_by, "scheduled": scheduled, "language": language})


def _page_footer() -> str:
    """The CSS ``content`` of the page footer, "page 2 of 5" in the active language."""
    import re

    text = str(_("page {page} of {pages}"))
    parts = re.split(r"(\{page\}|\{pages\})", text)
    css = [f"counter({p[1:-1]})" if p in ("{page}", "{pages}") else '"' + p.replace('"', "").replace("\\", "") + '"'
           for p in parts if p]
    return mark_safe(" ".join(css))


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html).write_pdf()


def summary(data: dict) -> dict:
    """Pooled numbers kept with a stored report (no arm data, whichever kind)."""
    total = data["overview"][0]["cells"][-1]
    sae = data["overview"][1]["cells"][-1]
    return {"population": data["population"], "events": total["events"], "subjects": total["subjects"],
            "sae_events": sae["events"]}
