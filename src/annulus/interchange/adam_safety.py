"""Safety analysis datasets: ADAE (adverse events) and ADLB (laboratory values) (no Django).

Written by ``annulus.interchange.adam.write`` in the same pass over the participants as ADSL and
ADEFF, with the same treatment columns (``_trt_columns``: none in a blinded export), the same
population flag ``SAFFL`` and the same date conventions (ISO dates in the trial's time zone in
the CSV files, SAS dates in the XPT files). Study days count from transplantation as day 0
(``ADY`` of ADEFF): ``ASTDY = ASTDT - TRTSDT`` in days, negative before it.

``adae.csv`` / ``adae.xpt``: one row per adverse event recorded by the export's as-of time, as
its last revision by then stood (initial report and follow-ups up to that time), for every
participant of the export (events before randomisation included; ``SAFFL`` tells the safety
population), by participant then event number.

- ``AESEQ``: the event's number within the participant (1, 2, ...; numbers are never reused).
- ``AETERM``: the reported (verbatim) term. ``AEDECOD``: the coded term; the eCRF stores the
  MedDRA preferred-term *code* (``AEPTCD``) but not its name (no licensed dictionary in the
  system), so ``AEDECOD`` is the reported term. ``AEBODSYS`` (system organ class) is not
  captured by the adverse-event form and is left empty (never derived from the term).
- ``ASTDT`` / ``AENDT``: onset and end dates; ``ASTDY`` / ``AENDY`` their study days.
- ``AETOXGR``: the CTCAE grade "1"-"5". ``AESER``: "Y"/"N" (serious, ICH E2A).
- ``AEREL``: the investigator's causality for the study product, in CDISC terms: "NOT APPLICABLE"
  (the product was not yet given), "NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED",
  "PROBABLY RELATED", "DEFINITELY RELATED". ``AREL``: "RELATED" when that causality is one the
  protocol counts as related (``safety.related_causality``: possible, probable, definite),
  else "NOT RELATED"; empty when not assessed.
- ``AEOUT``: "RECOVERING/RESOLVING", "RECOVERED/RESOLVED", "RECOVERED/RESOLVED WITH SEQUELAE",
  "NOT RECOVERED/NOT RESOLVED", "FATAL", "UNKNOWN".
- ``AESDTH``: "Y" when the event resulted in death (outcome fatal, the seriousness criterion
  "results in death", or grade 5), else "N".
- ``AEWDFL``: "Y" for the event(s) that led to the participant's withdrawal, else "N". Only a
  participant withdrawn by the as-of time has such an event: the one the withdrawal names (a
  withdrawal for safety recorded from the adverse event); failing that, the events whose action
  taken is "withdrawn from the study"; failing that, when the withdrawal's category is "serious
  adverse event / safety", the last event with onset on or before the withdrawal date (the
  highest-numbered of those with the latest onset).
- ``TRTEMFL``: "Y" when the event began on or after the day of transplantation (``ASTDT >=
  TRTSDT``), else empty (also for participants not transplanted).

``adlb.csv`` / ``adlb.xpt``: one row per participant x analyte x scheduled visit with a value, for
every analyte of the protocol's laboratory panels (``lab_panels``), from the laboratory forms
(the schedule's forms with a ``panel``). As in ADEFF, drafts, unscheduled visits and missed
visits give no row; rows are by participant, panel, analyte (protocol order), then visit.

- ``PARAMCD``: the analyte's id in the protocol (``wbc``, ``alt``, ``u_protein``...);
  ``PARAM``: its name with its unit; ``LBCAT``: the panel's name (the export's language).
- ``AVAL``: the value (numeric analytes, in the protocol's unit: the eCRF refuses any other);
  ``AVALC``: the result of a qualitative analyte ("negative", "trace", "1+", "2+", "3+").
- ``ANRLO`` / ``ANRHI``: the protocol's reference range (empty for qualitative analytes).
- ``ANRIND``: "LOW" / "NORMAL" / "HIGH" against that range (the eCRF's own rule,
  ``annulus.instruments.labs.assess_panel``); qualitative analytes: "NORMAL" when the result is
  the protocol's normal result, else "ABNORMAL".
- ``ABLFL``: "Y" on the baseline visit's row; ``BNRIND``: that row's ``ANRIND`` on every row of
  the participant's analyte (empty without a baseline value).

Free text (``AETERM``, ``AEDECOD``) is cut at 200 bytes (a character boundary) in both files,
the longest text a SAS transport file holds.
"""

from __future__ import annotations

from datetime import date

from .adam import (SITEID, Col, _Dataset, _local_date, _num, _sas_date, _trt_columns, _visit_map, baseline_visit_of,
                   treatment_day)
from .sdtm import AEOUT, AEREL

RELATED, NOT_RELATED = "RELATED", "NOT RELATED"
TEXT_BYTES = 200
RESULTS_KEPT = 4096  # ADLB results' encoded columns kept for reuse (emptied when full: memory stays flat)


def cut(text, size: int = TEXT_BYTES) -> str | None:
    """``text`` in at most ``size`` UTF-8 bytes, cut at a character boundary."""
    if text is None or text == "":
        return None
    text = str(text)
    raw = text.encode("utf-8")
    return text if len(raw) <= size else raw[:size].decode("utf-8", "ignore")


def _studyid(ctx) -> Col:
    return Col("STUDYID", "Study Identifier", length=max(8, len(ctx.study_id.encode("utf-8"))))


def adae_columns(ctx) -> list[Col]:
    return [
        _studyid(ctx),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SITEID", "Study Site Identifier", length=8),
        *_trt_columns(ctx),
        Col("SAFFL", "Safety Population Flag", length=1),
        Col("TRTSDT", "Date of Transplantation (Day 0)", "date"),
        Col("AESEQ", "Sequence Number", "num"),
        Col("AETERM", "Reported Term for the Adverse Event", length=TEXT_BYTES),
        Col("AEDECOD", "Dictionary-Derived Term", length=TEXT_BYTES),
        Col("AEPTCD", "Preferred Term Code (MedDRA)", length=20),
        Col("AEBODSYS", "Body System or Organ Class", length=8),
        Col("ASTDT", "Analysis Start Date", "date"),
        Col("AENDT", "Analysis End Date", "date"),
        Col("ASTDY", "Analysis Start Relative Day", "num"),
        Col("AENDY", "Analysis End Relative Day", "num"),
        Col("AETOXGR", "Standard Toxicity Grade", length=1),
        Col("AESER", "Serious Event", length=1),
        Col("AEREL", "Causality (study product)", length=20),
        Col("AREL", "Analysis Causality", length=12),
        Col("AEOUT", "Outcome of Adverse Event", length=40),
        Col("AESDTH", "Results in Death", length=1),
        Col("AEWDFL", "AE Led to Withdrawal from Study Flag", length=1),
        Col("TRTEMFL", "Treatment Emergent Analysis Flag", length=1),
    ]


def _lab_texts(protocol) -> tuple[list[str], list[str], list[str]]:
    """Every analyte's PARAM, panel name and id, in both languages (for the column lengths)."""
    params, panels, ids = [], [], []
    for panel in protocol.lab_panels:
        for lang in ("en", "zh"):
            panels.append(panel.name.get(lang))
            params.extend(_param(a, lang) for a in panel.analytes)
        ids.extend(a.id for a in panel.analytes)
    return params, panels, ids


def _bytes(texts, floor: int, ceiling: int = TEXT_BYTES) -> int:
    return min(ceiling, max([floor, *(len(t.encode("utf-8")) for t in texts)]))


def adlb_columns(ctx) -> list[Col]:
    params, panels, ids = _lab_texts(ctx.protocol)
    visits = [v.id for v in ctx.protocol.schedule.visits]
    return [
        _studyid(ctx),
        Col("USUBJID", "Unique Subject Identifier", length=40),
        Col("SITEID", "Study Site Identifier", length=8),
        *_trt_columns(ctx),
        Col("SAFFL", "Safety Population Flag", length=1),
        Col("PARAMCD", "Parameter Code", length=_bytes(ids, 8)),
        Col("PARAM", "Parameter", length=_bytes(params, 8)),
        Col("LBCAT", "Category for Lab Test (panel)", length=_bytes(panels, 8)),
        Col("ANRLO", "Analysis Normal Range Lower Limit", "num"),
        Col("ANRHI", "Analysis Normal Range Upper Limit", "num"),
        Col("AVISIT", "Analysis Visit", length=_bytes(visits, 20)),
        Col("AVISITN", "Analysis Visit (N): scheduled study day", "num"),
        Col("ADT", "Analysis Date", "date"),
        Col("ADY", "Analysis Relative Day", "num"),
        Col("AVAL", "Analysis Value", "num"),
        Col("AVALC", "Analysis Value (C)", length=20),
        Col("ANRIND", "Analysis Reference Range Indicator", length=8),
        Col("BNRIND", "Baseline Reference Range Indicator", length=8),
        Col("ABLFL", "Baseline Record Flag", length=1),
    ]


class PartsDataset(_Dataset):
    """A dataset whose rows are written in parts, runs of columns starting at ``starts``, each
    part's CSV cells and XPT bytes made once (``part``) and reused by every row that shares it
    (a participant's columns, an analyte's, a visit's): the rows of ADLB, many per participant,
    are then mostly joined, not encoded. The cells and bytes are ``write``'s."""

    def __init__(self, out_dir, name, label, columns, ctx, *, starts):
        super().__init__(out_dir, name, label, columns, ctx, xpt=True)
        names = [c.name for c in columns]
        bounds = [names.index(s) for s in starts] + [len(columns)]
        assert bounds[0] == 0, "the first part starts at the first column"
        self._kinds = [tuple(c.type for c in columns[a:b]) for a, b in zip(bounds, bounds[1:])]
        self._encoders = ([self._xpt.encoder(a, b) for a, b in zip(bounds, bounds[1:])] if self._xpt is not None
                          else None)

    def part(self, index: int, values) -> tuple[list, bytes]:
        """Part ``index`` of a row, its values in the columns' order."""
        kinds = self._kinds[index]
        cells = [("" if v is None else str(v)) if k == "char" else "" if v is None else str(v) if type(v) is int
                 else _num(v) for k, v in zip(kinds, values)]
        if self._encoders is None:
            return cells, b""
        if "date" in kinds:
            values = [_sas_date(v) if k == "date" else v for k, v in zip(kinds, values)]
        return cells, self._encoders[index](values)

    def write_parts(self, parts) -> None:
        cells = []
        for c, _ in parts:
            cells += c
        self._csv.writerow(cells)
        if self._xpt is not None:
            self._xpt.write_encoded([raw for _, raw in parts])


# --- values ---------------------------------------------------------------------------------------

def _param(analyte, language: str) -> str:
    name = analyte.name.get(language)
    return f"{name} ({analyte.unit})" if analyte.unit else name


def _range(analyte) -> tuple:
    """(ANRLO, ANRHI): the protocol's reference range of a numeric analyte."""
    return (None, None) if analyte.kind == "qualitative" else (analyte.low, analyte.high)


def _days(iso: str | None, day0: str | None) -> int | None:
    if not iso or not day0:
        return None
    return (date.fromisoformat(iso) - date.fromisoformat(day0)).days


def relatedness(causality, related) -> str | None:
    """``AREL`` of a causality code: "RELATED" / "NOT RELATED" (None when not assessed)."""
    if not causality:
        return None
    return RELATED if causality in related else NOT_RELATED


def resulted_in_death(values: dict) -> bool:
    criteria = values.get("serious_criteria") or []
    if isinstance(criteria, str):
        criteria = [criteria]
    return values.get("outcome") == "fatal" or "death" in criteria or str(values.get("grade")) == "5"


def withdrawal_events(subject, events: list[tuple[int, dict, str | None]]) -> set[int]:
    """The numbers of the events that led to the participant's withdrawal (``AEWDFL``);
    ``events``: (number, values, onset date)."""
    if subject.end_status != "withdrawn":
        return set()
    if subject.end_adverse_event is not None:
        return {subject.end_adverse_event}
    acted = {n for n, v, _ in events if v.get("action_taken") == "withdrawn"}
    if acted:
        return acted
    if subject.end_reason == "adverse_event":
        before = [(onset, n) for n, _, onset in events if onset and (not subject.end_date or onset <= subject.end_date)]
        if before:
            return {max(before)[1]}
    return set()


def nrind(analyte, value) -> str | None:
    """LOW / NORMAL / HIGH (qualitative: NORMAL / ABNORMAL), as ``assess_panel`` flags a value."""
    if value is None:
        return None
    if analyte.kind == "qualitative":
        normal = str(analyte.normal or "negative")
        return "NORMAL" if str(value).strip().lower() == normal.lower() else "ABNORMAL"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if analyte.low is not None and value < analyte.low:
        return "LOW"
    if analyte.high is not None and value > analyte.high:
        return "HIGH"
    return "NORMAL"


class SafetyDatasets:
    """ADAE and ADLB, written a participant at a time (``write``) beside ADSL."""

    def __init__(self, ctx, out_dir, schedule, tz):
        self.ctx, self.schedule, self.tz = ctx, schedule, tz
        self.baseline_visit = baseline_visit_of(ctx.protocol)
        self.language = ctx.language or "en"
        self.related = set(getattr(getattr(ctx.protocol, "safety", None), "related_causality", None)
                           or ("possible", "probable", "definite"))
        # laboratory forms -> [(analyte, PARAM, panel name, panel index, analyte index)]
        panels = {p.id: (i, p) for i, p in enumerate(ctx.protocol.lab_panels)}
        self.lab_forms = {}
        for f in ctx.protocol.schedule.forms:
            if f.panel and f.panel in panels:
                i, panel = panels[f.panel]
                self.lab_forms[f.id] = [(a, _param(a, self.language), panel.name.get(self.language), i, j)
                                        for j, a in enumerate(panel.analytes)]
        self.adae = _Dataset(out_dir, "adae", "Adverse Events Analysis Dataset", adae_columns(ctx), ctx, xpt=True)
        lb_cols = adlb_columns(ctx)
        self.adlb = PartsDataset(out_dir, "adlb", "Laboratory Analysis Dataset", lb_cols, ctx,
                                 starts=("STUDYID", "PARAMCD", "AVISIT", "AVAL"))
        self._lb_common = [c.name for c in lb_cols[:[c.name for c in lb_cols].index("PARAMCD")]]
        # each analyte's columns (PARAMCD, PARAM, LBCAT, ANRLO, ANRHI), made once
        self._lb_analyte = {a.id: self.adlb.part(1, (a.id, param, panel, *_range(a)))
                            for entries in self.lab_forms.values() for a, param, panel, _i, _j in entries}
        self._lb_results: dict = {}  # (analyte, value, baseline indicator, baseline?) -> its columns
        self.datasets = [self.adae, self.adlb]

    def write(self, s, trt: dict, flags: dict, site: str | None = SITEID) -> None:
        common = {"STUDYID": self.ctx.study_id, "USUBJID": s.subject, "SITEID": site, **trt,
                  "SAFFL": flags.get("SAFFL")}
        day0 = treatment_day(s, self.tz)
        aes, labs = [], []
        for r in s.records:
            if r.form == "adverse_event":
                aes.append(r)
            elif r.form in self.lab_forms and r.state != "draft" and r.visit in self.schedule.day \
                    and not r.visit_repeat:
                labs.append(r)
        if aes:
            self._adverse_events(s, aes, common, day0)
        if labs:
            self._labs(s, labs, common)

    def _adverse_events(self, s, aes, common, day0) -> None:
        tz = self.tz
        events = []
        for r in sorted(aes, key=lambda r: r.record):
            v = r.values
            events.append((r.record, v, _local_date(v.get("onset_at"), tz)))
        withdrew = withdrawal_events(s, events)
        for number, v, start in events:
            end = _local_date(v.get("end_at"), tz)
            serious = v.get("serious")
            causality = v.get("causality_product")
            term = cut(v.get("term"))
            grade = v.get("grade")
            self.adae.write({
                **common, "TRTSDT": day0, "AESEQ": number, "AETERM": term, "AEDECOD": term,
                "AEPTCD": cut(v.get("meddra_pt_code"), 20), "AEBODSYS": None,
                "ASTDT": start, "AENDT": end, "ASTDY": _days(start, day0), "AENDY": _days(end, day0),
                "AETOXGR": None if grade in (None, "") else str(grade),
                "AESER": None if serious is None else ("Y" if serious else "N"),
                "AEREL": AEREL.get(causality, causality.upper() if causality else None),
                "AREL": relatedness(causality, self.related),
                "AEOUT": AEOUT.get(v.get("outcome"), (v.get("outcome") or "").upper() or None),
                "AESDTH": "Y" if resulted_in_death(v) else "N",
                "AEWDFL": "Y" if number in withdrew else "N",
                "TRTEMFL": "Y" if day0 and start and start >= day0 else None})

    def _labs(self, s, labs, common) -> None:
        visits = _visit_map(s)
        schedule, base_visit = self.schedule, self.baseline_visit
        rows = []  # (panel, analyte, visit order), values
        for r in labs:
            info = visits.get(r.visit)
            if info is None or info.outcome == "missed":
                continue
            for analyte, param, panel, i, j in self.lab_forms[r.form]:
                value = r.values.get(analyte.id)
                if value is None or value == "":
                    continue
                rows.append(((i, j, schedule.order.get(r.visit, 10**6)), analyte, param, panel, r.visit, info, value))
        if not rows:
            return
        rows.sort(key=lambda row: row[0])
        baseline = {row[1].id: nrind(row[1], row[6]) for row in rows if row[4] == base_visit}
        lb = self.adlb
        mine = lb.part(0, [common.get(name) for name in self._lb_common])
        analytes, results = self._lb_analyte, self._lb_results
        visit_parts = {}
        for _, analyte, _param, _panel, visit, info, value in rows:
            at = visit_parts.get(visit)
            if at is None:
                at = visit_parts[visit] = lb.part(2, (visit, schedule.day[visit], info.date, info.day))
            # results repeat (the laboratory's precision, the same baseline indicator): made once each
            key = (analyte.id, value.__class__, value if value.__class__ in (int, float, str) else repr(value),
                   baseline.get(analyte.id), visit == base_visit)
            result = results.get(key)
            if result is None:
                qualitative = analyte.kind == "qualitative"
                number = (None if qualitative or isinstance(value, bool) or not isinstance(value, (int, float))
                          else value)
                result = lb.part(3, (number, cut(value, 20) if qualitative else None, nrind(analyte, value),
                                     key[3], "Y" if key[4] else None))
                if len(results) >= RESULTS_KEPT:
                    results.clear()
                results[key] = result
            lb.write_parts((mine, analytes[analyte.id], at, result))
