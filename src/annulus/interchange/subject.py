"""What an export reads: one ``Subject`` per participant, already blinded and pseudonymised, with
every record as it stood at the export's as-of time (no Django).

Values are plain Python: numbers as ``int``/``float``, codes and text as ``str``, yes/no as
``bool``, several codes as a ``list`` of ``str``, dates as ISO ``YYYY-MM-DD`` text and times as
ISO 8601 UTC text (``2023-01-05T02:30:00+00:00``); ``None`` when not entered. Items are the data
dictionary's (``ctx.dictionary``): ``Record.form`` is a dictionary form id, each key of
``Record.values`` an item id of that form.

Addresses follow the data dictionary: (participant, visit, form, record, item). ``visit`` is a
protocol visit id, ``"unscheduled"`` (with ``visit_repeat`` 1, 2, ...), ``"screening"`` for the
consent, screening and eligibility records, or ``""`` for participant-level records and logs
(pre-screening, adverse events, end of study). ``record`` numbers repeated records (the adverse
event's number); it is 1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Change:
    """One saved state of a record (its audit history, oldest first): who, when, why, and every
    item's value after the change (the first is the record's creation, ``reason`` usually empty)."""

    revision: int
    at: str  # ISO 8601 UTC
    by: str  # username
    by_name: str  # printed name
    reason: str
    values: dict  # item id -> value after this change (the whole record, not only what changed)


@dataclass(frozen=True, slots=True)
class Record:
    """One filled form: a visit's eCRF, the consent, an adverse event, the end of study, ..."""

    visit: str
    form: str
    values: dict  # item id -> value (only the dictionary's items)
    computed: dict = field(default_factory=dict)  # derived scores as the eCRF computed them (odi_percent, pcs, ...)
    visit_repeat: int = 0
    record: int = 1
    state: str = ""  # "draft" | "complete" for eCRFs; "" for records without a state
    collected_at: str | None = None  # ISO 8601 UTC: when the data were collected
    changes: tuple = ()  # Change, oldest first
    verified: tuple = ()  # item ids source-verified at the record's current revision
    locked: bool = False  # the form, its visit or the casebook holds a record lock
    open_queries: int = 0  # queries on this record that are open or answered (not closed)
    # the SDV plan asks at least one item of this record to be verified and every such item is
    # (its last mark by the as-of time holds the value); False when the plan asks for none
    sdv_done: bool = False

    @property
    def key(self) -> tuple:
        return (self.visit, self.visit_repeat, self.form, self.record)


@dataclass(frozen=True, slots=True)
class VisitInfo:
    visit: str  # protocol visit id or "unscheduled"
    repeat: int = 0  # 1, 2, ... for unscheduled visits
    outcome: str = ""  # "attended" | "missed"
    date: str | None = None  # ISO date
    reason: str = ""  # why missed or why unscheduled
    day: int | None = None  # study day: the visit date minus the transplant date (day 0), None before it
    target: str | None = None  # ISO date the schedule aimed at
    window: str = ""  # "in" | "early" | "late" | "" (no window: unscheduled, procedure days without one)


@dataclass(frozen=True, slots=True)
class QueryNote:
    """A data query on an address (ODM annotations, the long CSV's query counts)."""

    id: int
    visit: str
    form: str
    record: int
    item: str
    status: str  # "open" | "answered" | "closed"
    text: str  # the query's first message
    raised_by: str
    raised_at: str  # ISO 8601 UTC
    closed_at: str | None = None
    visit_repeat: int = 0


@dataclass(frozen=True, slots=True)
class DeviationNote:
    """A protocol deviation: a monitoring review finding of the category "protocol_deviation"."""

    id: int
    visit: str  # protocol visit id, "screening", "unscheduled" (with visit_repeat) or "" (the participant)
    form: str
    item: str
    text: str  # the finding as the auditor wrote it
    raised_at: str  # ISO 8601 UTC
    status: str  # "open" | "resolved" (at the as-of time)
    resolved_at: str | None = None  # ISO 8601 UTC, when resolved by the as-of time
    visit_repeat: int = 0


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """The investigator's casebook signature in force."""

    signed_by: str
    signed_by_name: str
    signed_at: str  # ISO 8601 UTC
    meaning: str
    content_hash: str
    state: str  # "signed" | "invalidated" (the casebook changed after signing)


@dataclass(frozen=True, slots=True)
class Subject:
    """One participant as an export may show it. ``group_label``, ``arm`` and ``drug_code`` are
    ``None`` unless the exporting role may see them (the blind decides, in the exports app);
    ``identity`` is ``None`` except in the identifiable export."""

    subject: str  # the pseudonymous participant number (USUBJID): the case number once randomised, else the screening number
    screening_number: str
    case_number: str  # "" when never randomised
    sex: str  # "F" | "M"
    status: str  # the participant's status in the trial (participants.states)
    age: int | None = None  # whole years at informed consent, from the screening date of birth
    prescreened_on: str | None = None
    consented_at: str | None = None
    randomised_at: str | None = None  # ISO 8601 UTC
    liposuction_on: str | None = None
    transplanted_at: str | None = None  # ISO 8601 UTC: study day 0 (the cell product's own record)
    treated_on: str | None = None  # ISO date of the treatment (study day 0), however the protocol records it
    eligible: bool | None = None  # the signed eligibility decision (None: not decided)
    failed_criteria: tuple = ()  # criterion ids of a screen failure
    end_status: str = ""  # "completed" | "withdrawn" | "lost_to_follow_up" | "" (ongoing)
    end_date: str | None = None  # ISO date of the end of study
    end_reason: str = ""  # withdrawal category
    end_adverse_event: int | None = None  # the adverse event (its record number) the withdrawal names
    emergency_unblinded: bool = False  # the treatment was revealed in an emergency (same for every arm)
    group_label: str | None = None
    arm: str | None = None
    drug_code: str | None = None
    # the participant's level of each stratification (or minimisation) factor as randomised (factor
    # id -> level, recorded with the envelope; empty when not randomised or neither). Not treatment
    # information: the site and the screening values they come from are in the casebook
    strata: dict = field(default_factory=dict)
    visits: tuple = ()  # VisitInfo, in schedule order
    records: tuple = ()  # Record, by visit then form
    queries: tuple = ()  # QueryNote
    deviations: tuple = ()  # DeviationNote, oldest first
    signature: SignatureInfo | None = None
    identity: dict | None = None  # {"initials", "full_name", "phone"} in the identifiable export only


@dataclass(frozen=True)
class ExportContext:
    """What every file of one export shares."""

    format: str  # the --format name ("csv", "sav", "dta", "xpt", "odm", "sdtm", "dataset-json", "adam")
    study_id: str  # the protocol's trial id (STUDYID)
    registry_number: str
    title_en: str
    title_zh: str
    protocol: object  # annulus.protocol model of the version in force (schedule, arms, roles, ...)
    protocol_version: str
    dictionary: object  # annulus.dictionary.Dictionary
    as_of: str  # ISO 8601 UTC: the data are as they stood at this time
    created_at: str  # ISO 8601 UTC
    created_by: str  # username
    role: str  # the exporting role
    blinding: str  # "blinded" | "labels" (group labels A-D) | "arms" (treatments)
    chain_count: int  # the audit trail's length at the as-of time...
    chain_hash: str  # ...and the hash of its last event: ties the file to the trail
    identifiable: bool = False
    excel_bom: bool = False  # CSV: write a UTF-8 byte-order mark for Excel
    language: str = "en"
    transport: bool = True  # adam: the SAS transport files beside the CSVs (the trial report reads the CSVs only)
    extra: dict = field(default_factory=dict)

    @property
    def stamp(self) -> dict:
        """The provenance every file carries (CSV comment, file label, ODM attributes, JSON keys)."""
        return {"study": self.study_id, "protocol_version": self.protocol_version, "as_of": self.as_of,
                "created_at": self.created_at, "created_by": self.created_by, "blinding": self.blinding,
                "audit_chain_count": self.chain_count, "audit_chain_hash": self.chain_hash}
