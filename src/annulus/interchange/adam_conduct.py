"""Trial-conduct analysis datasets: ADSV (visits and data cleaning) and ADDV (protocol deviations)
(no Django).

Written by ``annulus.interchange.adam.write`` in the same pass over the participants as ADSL, with
the same treatment columns (none in a blinded export) and date conventions. Everything is as it
stood at the export's as-of time (``ctx.as_of``; its date is taken in the trial's time zone).

``adsv.csv`` / ``adsv.xpt``: one row per randomised participant x visit of the protocol's
schedule (procedure visits included), in schedule order.

- ``SVSTAT``:

  - "DONE": the visit was recorded as attended by the as-of time (procedure visits: the
    liposuction / transplantation recorded);
  - "MISSED": recorded as missed, or its window closed without it while the participant was in
    the study; the baseline visit also once the transplantation is recorded without it (it is
    by definition before transplantation);
  - "NOT DUE": its window had not closed at the as-of time (the as-of date is on or before the
    window's last day), or it cannot be scheduled yet (its anchor, the liposuction, is not done);
  - "AFTER EOS": not done, and the participant's end of study (completed, withdrawn, lost to
    follow-up; ``EOSDT``) came on or before the window's last day.

  Windows are the protocol's (``window.before_days`` / ``after_days``) around the target day, as
  the application computes them (``annulus.visits.selectors.window_of``): from the liposuction,
  or from the transplantation (the recorded one, else liposuction + ``PLANNED_TRANSPLANT_DAYS``).
  The same cut as ADSL's per-protocol rule ("PRIMARY VISIT NOT YET DUE" while the window is
  open). The application's visit schedule waits some days more (``GRACE_DAYS``) before it calls
  a visit missed: a visit done in those days after an export is "MISSED" in that export and
  "DONE" (LATE) in a later one.
- ``AWSTAT``: for a done visit, "IN" / "EARLY" / "LATE" against its window as recorded (the
  liposuction defines its own day: "IN"); empty for visits not done.
- ``SVDT``: a done visit's date; ``ADY``: its study day (transplantation = day 0).
- ``FORMS``: the visit's forms complete (a procedure visit's record counts as one form; drafts do
  not count). ``SDVFORMS``: of those, the forms whose source-data verification is done: the SDV
  plan asks for at least one item of the form and every such item's last mark by the as-of time
  holds its value (the monitoring grid's rule; a form the plan does not ask for never counts).
- ``QRYTOT``: queries raised on the visit (any of its forms and items) by the as-of time;
  ``QRYOPEN``: those of them not closed at that time (open or answered).

``addv.csv`` / ``addv.xpt``: one row per protocol deviation raised by the as-of time, for every
participant of the export (randomised or not; the deviation's participant is in ADSL). The
deviations the system records are the monitoring review findings of category
"protocol_deviation" (nothing else in the system records a deviation; visits outside their
window are in ADSV, ``AWSTAT``, not here).

- ``DVSEQ``: 1, 2, ... per participant in the order raised; ``DVCAT``: "protocol_deviation";
  ``DVTERM``: the finding's text (cut at 200 bytes, a character boundary).
- ``AVISIT``: the visit it is about: a protocol visit id, "screening", "unscheduled", or empty
  for the participant as a whole; ``AVISITN``: a protocol visit's scheduled study day.
- ``DVSTDT``: the date raised; ``DVENDT``: the date resolved (by the as-of time);
  ``DVSTAT``: "OPEN" / "RESOLVED" at the as-of time.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from annulus.protocol.schema import CONSENT_ANCHOR

from .adam import SITEID, Col, _Dataset, _local_date, _treatment_event, _trt_columns, baseline_visit_of, treatment_day
from .adam_safety import TEXT_BYTES, _studyid, cut

# the application's own numbers (annulus.visits.selectors; a test holds them equal)
PLANNED_TRANSPLANT_DAYS = 21

DONE, MISSED, NOT_DUE, AFTER_EOS = "DONE", "MISSED", "NOT DUE", "AFTER EOS"
ENDED = ("completed", "withdrawn", "lost_to_follow_up")


def adsv_columns(ctx) -> list[Col]:
    visits = max([20, *(len(v.id) for v in ctx.protocol.schedule.visits)])
    return [
        _studyid(ctx),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SITEID", "Study Site Identifier", length=8),
        *_trt_columns(ctx),
        Col("ITTFL", "Intent-To-Treat Population Flag", length=1),
        Col("AVISIT", "Analysis Visit", length=visits),
        Col("AVISITN", "Analysis Visit (N): scheduled study day", "num"),
        Col("SVSTAT", "Visit status at the data cut-off", length=12),
        Col("AWSTAT", "Analysis window status", length=8),
        Col("SVDT", "Visit Date", "date"),
        Col("ADY", "Analysis Relative Day", "num"),
        Col("FORMS", "Forms complete", "num"),
        Col("SDVFORMS", "Forms source-data verified", "num"),
        Col("QRYOPEN", "Queries open at the data cut-off", "num"),
        Col("QRYTOT", "Queries raised by the data cut-off", "num"),
    ]


def addv_columns(ctx) -> list[Col]:
    visits = max([20, *(len(v.id) for v in ctx.protocol.schedule.visits)])
    return [
        _studyid(ctx),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SITEID", "Study Site Identifier", length=8),
        *_trt_columns(ctx),
        Col("DVSEQ", "Sequence Number", "num"),
        Col("DVCAT", "Category for Protocol Deviation", length=20),
        Col("DVTERM", "Protocol Deviation Term", length=TEXT_BYTES),
        Col("AVISIT", "Analysis Visit", length=visits),
        Col("AVISITN", "Analysis Visit (N): scheduled study day", "num"),
        Col("DVSTDT", "Date raised", "date"),
        Col("DVENDT", "Date resolved", "date"),
        Col("DVSTAT", "Status at the data cut-off", length=8),
    ]


# --- the schedule's windows ---------------------------------------------------------------------

def window_ends(protocol_visits, lipo: date | None, tx: date | None) -> list[date | None]:
    """Per protocol visit, the last day of its window (None: not schedulable yet), as
    ``annulus.visits.selectors.window_of`` computes it; ``tx``: the recorded transplantation day,
    else the planned one."""
    out = []
    for pv in protocol_visits:
        base = lipo if pv.anchor == "liposuction" else tx if pv.anchor == "transplant" else None
        out.append(None if base is None else base + timedelta(days=pv.offset_days + pv.window.after_days))
    return out


def visit_status(info, closes: date | None, *, as_of: date, ended_on: date | None, baseline_gone: bool) -> str:
    """``SVSTAT`` of one protocol visit (``info``: its VisitInfo, None when not recorded;
    ``closes``: its window's last day)."""
    if info is not None:
        return DONE if info.outcome == "attended" else MISSED
    if baseline_gone:
        return MISSED
    if ended_on is not None and (closes is None or ended_on <= closes):
        return AFTER_EOS
    if closes is None or as_of <= closes:
        return NOT_DUE
    return MISSED


class ConductDatasets:
    """ADSV and ADDV, written a participant at a time (``write``) beside ADSL."""

    def __init__(self, ctx, out_dir, schedule, tz):
        self.ctx, self.schedule, self.tz = ctx, schedule, tz
        self.visits = list(ctx.protocol.schedule.visits)
        self.baseline = baseline_visit_of(ctx.protocol)
        # a treatment recorded as an eCRF form: the windows count from the consent and the
        # treatment's day (recorded, else planned from the consent) as the schedule's events do
        pages = getattr(ctx.protocol, "page_procedures", None)
        self.treatment = None if pages is None or pages else _treatment_event(ctx.protocol)
        proc = ctx.protocol.procedure(self.treatment) if self.treatment else None
        timing = getattr(proc, "timing", None)
        self.planned_after = (timing.after, timing.offset_days) if timing is not None else None
        self.as_of = date.fromisoformat(_local_date(ctx.as_of, tz))
        self.adsv = _Dataset(out_dir, "adsv", "Subject Visits Analysis Dataset", adsv_columns(ctx), ctx, xpt=True)
        self.addv = _Dataset(out_dir, "addv", "Protocol Deviations Analysis Dataset", addv_columns(ctx), ctx,
                             xpt=True)
        self.datasets = [self.adsv, self.addv]

    def write(self, s, trt: dict, flags: dict, site: str | None = SITEID) -> None:
        common = {"STUDYID": self.ctx.study_id, "USUBJID": s.subject, "SITEID": site, **trt}
        if s.randomised_at:
            self._visits(s, {**common, "ITTFL": flags.get("ITTFL")})
        if s.deviations:
            self._deviations(s, common)

    def _visits(self, s, common) -> None:
        tz = self.tz
        if self.treatment is not None:
            tx_text = treatment_day(s, tz)
            tx = date.fromisoformat(tx_text) if tx_text else None
            closes = self._event_window_ends(s, tx)
        else:
            lipo = date.fromisoformat(s.liposuction_on) if s.liposuction_on else None
            tx_text = _local_date(s.transplanted_at, tz)
            tx = date.fromisoformat(tx_text) if tx_text else None
            planned = tx or (lipo + timedelta(days=PLANNED_TRANSPLANT_DAYS) if lipo else None)
            closes = window_ends(self.visits, lipo, planned)
        ended_on = date.fromisoformat(s.end_date) if s.end_status in ENDED and s.end_date else None
        recorded = {v.visit: v for v in s.visits if not v.repeat and v.visit != "unscheduled"}
        forms, verified = Counter(), Counter()
        for r in s.records:
            if r.visit_repeat or r.state == "draft" or r.visit not in self.schedule.day:
                continue
            forms[r.visit] += 1
            if r.sdv_done:
                verified[r.visit] += 1
        raised, still_open = Counter(), Counter()
        for q in s.queries:
            if q.visit_repeat:
                continue
            raised[q.visit] += 1
            if q.status != "closed":
                still_open[q.visit] += 1
        schedule = self.schedule
        for pv, last_day in zip(self.visits, closes):
            info = recorded.get(pv.id)
            status = visit_status(info, last_day, as_of=self.as_of, ended_on=ended_on,
                                  baseline_gone=pv.id == self.baseline and tx is not None)
            done = status == DONE
            self.adsv.write({
                **common, "AVISIT": pv.id, "AVISITN": schedule.day[pv.id], "SVSTAT": status,
                "AWSTAT": (info.window.upper() or None) if done else None,
                "SVDT": info.date if done else None, "ADY": info.day if done else None,
                "FORMS": forms[pv.id] if done else 0, "SDVFORMS": verified[pv.id] if done else 0,
                "QRYOPEN": still_open[pv.id], "QRYTOT": raised[pv.id]})

    def _event_window_ends(self, s, tx: date | None) -> list[date | None]:
        """``window_ends`` of a schedule counting from the consent and the treatment procedure."""
        consent = _local_date(s.consented_at, self.tz)
        dates = {CONSENT_ANCHOR: date.fromisoformat(consent)} if consent else {}
        if tx is not None:
            dates[self.treatment] = tx
        elif self.planned_after is not None and self.planned_after[0] in dates:
            dates[self.treatment] = dates[self.planned_after[0]] + timedelta(days=self.planned_after[1])
        out = []
        for pv in self.visits:
            base = dates.get(pv.anchor)
            out.append(None if base is None else base + timedelta(days=pv.offset_days + pv.window.after_days))
        return out

    def _deviations(self, s, common) -> None:
        tz, day = self.tz, self.schedule.day
        for i, d in enumerate(s.deviations, start=1):
            self.addv.write({
                **common, "DVSEQ": i, "DVCAT": "protocol_deviation", "DVTERM": cut(d.text),
                "AVISIT": d.visit or None, "AVISITN": day.get(d.visit) if not d.visit_repeat else None,
                "DVSTDT": _local_date(d.raised_at, tz), "DVENDT": _local_date(d.resolved_at, tz),
                "DVSTAT": "RESOLVED" if d.status == "resolved" else "OPEN"})
