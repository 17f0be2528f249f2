"""The DSMB interim safety report: AE and SAE counts and incidence, pooled (open report) or by
arm (closed report), by grade, seriousness and relatedness, with a plot over time.

The caller supplies the arms (``{participant_id: arm_id}``) for a closed report; this module
never looks allocation up itself."""

from __future__ import annotations

import base64
import calendar
import io
from collections import Counter
from datetime import date, datetime, time, timedelta

from django.template.loader import render_to_string
from django.utils import timezone

from annulus.participants.models import Participant

from .models import CAUSES, GRADES, SERIOUS_CRITERIA, AdverseEvent

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


def build(*, as_of: date, protocol, arms: dict[int, str] | None) -> dict:
    """Everything the report shows, as plain data. ``arms`` None gives the open (pooled) report."""
    cutoff = _end_of(as_of)
    population = list(Participant.objects.filter(enrolled_at__lt=cutoff).values_list("id", flat=True))
    pop = set(population)
    events = list(AdverseEvent.objects.filter(onset_at__lt=cutoff).select_related("participant").order_by("onset_at", "id"))
    outside = [e for e in events if e.participant_id not in pop]
    events = [e for e in events if e.participant_id in pop]
    related = set(protocol.safety.related_causality)
    closed = arms is not None

    if closed:
        columns = [(a.id, a.name.get("en")) for a in protocol.arms]
        if any(pid not in arms for pid in population):
            columns.append((UNALLOCATED, "Not yet allocated"))
        columns.append((TOTAL, "Total"))

        def col_of(pid):
            return arms.get(pid) or UNALLOCATED
    else:
        columns = [(TOTAL, "All participants")]

        def col_of(pid):
            return TOTAL

    def row(label, predicate):
        return {"label": label, "cells": _cells(events, [bool(predicate(e)) for e in events], columns, col_of, population)}

    overview = [
        row("Any adverse event", lambda e: True),
        row("Serious adverse event", lambda e: e.serious),
        row("Grade 3 or higher", lambda e: e.grade >= 3),
        row("Related to the study product", lambda e: e.causality_product in related),
        row("Fatal", lambda e: e.outcome == "fatal"),
    ]
    by_grade = [row(f"Grade {label}", lambda e, g=g: e.grade == g) for g, label in GRADES]
    by_criterion = [row(str(label)[:1].upper() + str(label)[1:], lambda e, c=c: c in e.serious_criteria)
                    for c, label in SERIOUS_CRITERIA]
    cause_names = {"liposuction": "liposuction", "injection": "the injection procedure", "product": "the study product"}
    by_relation = [row(f"Related to {cause_names[c]}", lambda e, c=c: getattr(e, f"causality_{c}") in related) for c in CAUSES]
    terms = Counter(e.term.strip().lower() for e in events)
    by_term = [row(term[:1].upper() + term[1:], lambda e, t=term: e.term.strip().lower() == t)
               for term, _ in sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))]
    saes = [{"label": e.label, "term": e.term, "onset": timezone.localtime(e.onset_at), "grade": e.grade,
             "criteria": ", ".join(e.criteria_labels()), "product": str(e.get_causality_product_display()),
             "outcome": str(e.get_outcome_display()), "expected": str(e.get_expectedness_display()),
             "arm": dict(columns).get(col_of(e.participant_id)) if closed else None}
            for e in events if e.serious]
    return {
        "closed": closed, "as_of": as_of, "columns": columns, "population": len(population),
        "events_total": len(events), "outside": len(outside),
        "overview": overview, "by_grade": by_grade, "by_criterion": by_criterion, "by_relation": by_relation,
        "by_term": by_term, "saes": saes,
        "plot": plot_over_time(events, columns, col_of, as_of),
        "related_causality": ", ".join(protocol.safety.related_causality),
    }


def plot_over_time(events, columns, col_of, as_of: date) -> str:
    """Cumulative AEs (solid) and SAEs (dashed) by onset date, one colour per column; a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

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
                    label=f"{label}: {'SAE' if serious_only else 'AE'}")
    ax.set_ylabel("cumulative events")
    ax.set_title(f"Adverse events by onset date, up to {as_of.isoformat()}", fontsize=10)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    ax.grid(alpha=.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(data: dict, *, registry: str, generated_at: datetime, generated_by: str, scheduled: bool) -> str:
    return render_to_string("safety/dsmb_report.html", {"d": data, "registry": registry, "generated_at": generated_at,
                                                        "generated_by": generated_by, "scheduled": scheduled})


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html).write_pdf()


def summary(data: dict) -> dict:
    """Pooled numbers kept with a stored report (no arm data, whichever kind)."""
    total = data["overview"][0]["cells"][-1]
    sae = data["overview"][1]["cells"][-1]
    return {"population": data["population"], "events": total["events"], "subjects": total["subjects"],
            "sae_events": sae["events"]}
