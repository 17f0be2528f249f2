"""Every write of the safety module. Each function checks the rules, writes the records and
their audit events in one transaction, or raises ``RuleViolation`` having written nothing.

An adverse-event save also (re)computes the SAE reporting clocks and evaluates the DSMB
thresholds of the protocol in force, in the same transaction."""

from __future__ import annotations

import re
from datetime import date, datetime
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from annulus.audit import services as audit
from annulus.checks import clean_moment as _moment
from annulus.checks import clean_text as _text
from annulus.errors import NotPermitted, Problems, RuleViolation
from annulus.participants import states
from annulus.participants.locks import assert_record_writable
from annulus.participants.models import Participant, StatusChange, Withdrawal
from annulus.trial.lock import assert_writable, is_locked
from annulus.trial.selectors import active_protocol, active_version
from annulus.trial.services import notify

from . import causality as causalities
from .deadlines import site_deadlines
from .models import (ACTIONS, CAUSALITY, EXPECTEDNESS, OUTCOMES, SERIOUS_CRITERIA, AdverseEvent,
                     AdverseEventRevision, AeTask, DsmbAlert, DsmbRecommendation, SaeReport)

ENDED_OUTCOMES = {"recovered", "recovered_with_sequelae", "fatal"}

# the fields of every adverse event; the causalities (``causality_<id>`` of each procedure the
# protocol names, then ``causality_product``) come between the grade and the expectedness
FIELDS_BEFORE_CAUSALITY = ("term", "meddra_pt_code", "meddra_version", "description", "onset_at", "end_at",
                           "serious", "serious_criteria", "grade")
FIELDS_AFTER_CAUSALITY = ("expectedness", "action_taken", "outcome", "first_knowledge_at", "source")


def event_fields(protocol=None) -> tuple[str, ...]:
    """The fields of an adverse event of ``protocol`` (the protocol in force by default), in order."""
    protocol = protocol if protocol is not None else active_protocol()
    return FIELDS_BEFORE_CAUSALITY + tuple(causalities.fields(protocol)) + FIELDS_AFTER_CAUSALITY


# ---- checks ---------------------------------------------------------------------------------

def _choice(field: str, value, choices) -> str:
    allowed = [c for c, _ in choices]
    if value not in allowed:
        raise RuleViolation(field, f"must be one of {', '.join(allowed)}")
    return value


def _local(dt: datetime) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%d %H:%M")


def clean_event(data: dict, problems: Problems | None = None, *, protocol=None) -> dict:
    """Check one adverse event's fields on their own and together; return them normalised.
    Every broken rule is reported at once (``RuleViolations``), each naming its field; a rule
    that joins two fields is checked only when both are valid on their own. Given ``problems``,
    the broken rules are added to it and the valid fields returned, for the caller's own checks.
    The causalities asked for are the protocol's (the protocol in force by default)."""
    own = problems is None
    problems = Problems() if own else problems
    protocol = protocol if protocol is not None else active_protocol()
    asked = causalities.fields(protocol)
    for field in sorted(set(data) - set(event_fields(protocol))):
        if causalities.is_causality_field(field):
            problems.add(field, "is not a causality this protocol assesses (it asks for "
                                f"{', '.join(asked)})")
        else:
            problems.add(field, "is not a field of an adverse event")
    out: dict = {}

    def take(name, check, *args, **kwargs):
        with problems.check():
            out[name] = check(name, *args, **kwargs)
        return out.get(name)

    take("term", _text, data.get("term"), max_len=200)
    take("description", _text, data.get("description"), required=False)
    take("source", _text, data.get("source"), required=False, max_len=60)
    code = take("meddra_pt_code", _text, data.get("meddra_pt_code"), required=False, max_len=8)
    version = take("meddra_version", _text, data.get("meddra_version"), required=False, max_len=10)
    if code and not re.fullmatch(r"1\d{7}", code):
        problems.add("meddra_pt_code", "a MedDRA preferred-term code has 8 digits starting with 1")
    if code and not version and not problems.broken("meddra_version"):
        problems.add("meddra_version", "is required with a MedDRA code (for example 27.0)")
    if version and not re.fullmatch(r"\d{1,2}\.\d", version):
        problems.add("meddra_version", "must look like 27.0")

    onset = take("onset_at", _moment, data.get("onset_at"))
    end = take("end_at", _moment, data.get("end_at"), required=False)
    if end is not None and onset is not None and end < onset:
        problems.add("end_at", f"is before the onset ({_local(onset)})")

    grade = data.get("grade")
    if isinstance(grade, str) and grade.strip().isdecimal() and grade.strip().isascii():
        grade = int(grade)
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 5:
        problems.add("grade", "must be a CTCAE grade from 1 to 5")
        grade = None
    out["grade"] = grade
    for name in asked:
        take(name, _choice, data.get(name), CAUSALITY)
    take("expectedness", _choice, data.get("expectedness"), EXPECTEDNESS)
    take("action_taken", _choice, data.get("action_taken"), ACTIONS)
    outcome = take("outcome", _choice, data.get("outcome"), OUTCOMES)

    serious = data.get("serious")
    if not isinstance(serious, bool):
        problems.add("serious", "must be yes or no")
        serious = None
    criteria = data.get("serious_criteria") or []
    known = [c for c, _ in SERIOUS_CRITERIA]
    if isinstance(criteria, str) or not isinstance(criteria, (list, tuple, set)):
        problems.add("serious_criteria", "must be a list of criteria")
        criteria = []
    for c in criteria:
        if c not in known:
            problems.add("serious_criteria", f"unknown criterion '{c}'; use {', '.join(known)}")
    criteria = [c for c in known if c in set(criteria)]  # one canonical order
    criteria_ok = not problems.broken("serious_criteria")
    if serious and criteria_ok and not criteria:
        problems.add("serious_criteria", "a serious event needs at least one ICH E2A seriousness criterion")
    if criteria and serious is False:
        problems.add("serious", "a seriousness criterion is ticked, so the event is serious")
    out.update(serious=serious, serious_criteria=criteria)

    if grade == 5 and outcome is not None and outcome != "fatal":
        problems.add("outcome", "grade 5 means death related to the event: the outcome must be fatal")
    if outcome == "fatal" and grade is not None and grade != 5:
        problems.add("grade", "a fatal outcome is grade 5")
    if outcome == "fatal" and criteria_ok and "death" not in criteria:
        problems.add("serious_criteria", "a fatal event is serious with the criterion 'results in death'")
    if "death" in criteria and outcome is not None and outcome != "fatal":
        problems.add("outcome", "the criterion 'results in death' needs the outcome fatal")
    if outcome in ENDED_OUTCOMES and end is None and not problems.broken("end_at"):
        problems.add("end_at", f"is required when the outcome is {dict(OUTCOMES)[outcome]}"
                               + (" (the date and time of death)" if outcome == "fatal" else ""))
    if end is not None and outcome is not None and outcome not in ENDED_OUTCOMES:
        problems.add("outcome", "an event with an end date is recovered, recovered with sequelae or fatal")

    known_at = take("first_knowledge_at", _moment, data.get("first_knowledge_at"), required=bool(serious))
    if known_at is not None and onset is not None and known_at < onset:
        problems.add("first_knowledge_at", f"is before the onset ({_local(onset)})")
    if own:
        problems.raise_any()
    return out


def _follow_up_end(p: Participant) -> date | None:
    """The last day adverse events are collected for a participant who has left the trial."""
    if p.status == states.WITHDRAWN:
        w = Withdrawal.objects.filter(participant=p).first()
        if w:
            return w.withdrawn_on
    if p.status in (states.WITHDRAWN, states.COMPLETED, states.LOST, states.SCREEN_FAILED):
        sc = StatusChange.objects.filter(participant=p, to_status=p.status).order_by("-id").first()
        return timezone.localtime(sc.at).date() if sc else None
    return None


def _check_window(p: Participant, data: dict) -> None:
    consent = p.consents.order_by("consented_at").first()
    if consent is None:
        raise RuleViolation("participant", "has no informed consent; adverse events are collected from consent on")
    if data["onset_at"] < consent.consented_at:
        raise RuleViolation("onset_at", f"is before informed consent ({_local(consent.consented_at)}); "
                                        "adverse events are collected from consent on")
    end = _follow_up_end(p)
    if end and timezone.localtime(data["onset_at"]).date() > end:
        raise RuleViolation("onset_at", f"is after the end of follow-up ({end.isoformat()}, "
                                        f"{states.LABELS.get(p.status, p.status)})")


def _procedures(participant_id: int, protocol) -> dict[str, tuple[str, date | None]]:
    """Each causality field -> the procedure it is asked for as running text names it, and the
    day it was done (None while it is not recorded): each procedure the protocol names
    (``safety.causality_of``), then the product, given at the treatment procedure."""
    treatment = protocol.treatment_procedure
    event = protocol.treatment_event_name
    names = {c.field: f"the {c.name.en}" for c in causalities.items(protocol)}
    names[causalities.PRODUCT_CAUSALITY] = "the study product" + (f" ({event.en})" if event else "")
    try:
        from annulus.visits.events import events_of
    except ImportError:  # visits not installed: no procedure is recorded
        return {field: (name, None) for field, name in names.items()}
    ev = events_of(participant_id, protocol)
    out = {c.field: (names[c.field], ev.recorded(c.procedure)) for c in causalities.items(protocol)}
    out[causalities.PRODUCT_CAUSALITY] = (names[causalities.PRODUCT_CAUSALITY],
                                          ev.recorded(treatment.id) if treatment else None)
    return out


def _check_causality(p: Participant, data: dict, protocol) -> None:
    """'Not applicable (not yet done)' is refused once the procedure is recorded and the event
    began on or after its day: the procedure was done, so its causality must be judged."""
    onset = timezone.localtime(data["onset_at"]).date()
    problems = Problems()  # each causality on its own field
    for field, (name, done) in _procedures(p.pk, protocol).items():
        if data.get(field) == "not_applicable" and done is not None and onset >= done:
            problems.add(field, f"{name} was done on {done.isoformat()}, before this event "
                                "began; 'not applicable (not yet done)' no longer applies: judge the causality")
    problems.raise_any()


def _check_context(p: Participant, data: dict, problems: Problems, protocol) -> None:
    """The rules that need the participant's record (consent, follow-up, procedures), added to
    the problems the fields already have, so that the form shows them all at once."""
    if data.get("onset_at") is None:
        return
    with problems.check():
        _check_window(p, data)
    with problems.check():
        _check_causality(p, data, protocol)


def flat_fields(ae: AdverseEvent, protocol=None) -> dict:
    """The fields of an event as the forms, the API and the audit trail name them (each
    causality as ``causality_<id>``), in order; any causality the event holds that the protocol
    no longer asks for is kept, after the declared ones."""
    protocol = protocol if protocol is not None else active_protocol()
    out = {f: getattr(ae, f) for f in FIELDS_BEFORE_CAUSALITY}
    out.update(causalities.flat(ae, protocol))
    out.update({f: getattr(ae, f) for f in FIELDS_AFTER_CAUSALITY})
    return out


def snapshot(ae: AdverseEvent, protocol=None) -> dict:
    """The fields of an event as plain JSON values (UTC ISO times)."""
    out = {}
    for f, v in flat_fields(ae, protocol).items():
        out[f] = v.astimezone(dt_timezone.utc).isoformat() if isinstance(v, datetime) else v
    return out


# the adverse-event log's form id in a record lock (visit "": a log of the casebook)
AE_LOG = "adverse_event"


def _owner(model, pk, field: str):
    """The participant a record belongs to, read without a lock before the record lock is checked
    (None when there is no such record: the service then says so)."""
    try:
        return model.objects.filter(pk=int(pk)).values_list(field, flat=True).first()
    except (TypeError, ValueError, OverflowError):
        return None


def _participant(participant_id: int) -> Participant:
    try:
        return Participant.objects.select_for_update().select_related("protocol_version").get(pk=participant_id)
    except Participant.DoesNotExist:
        raise RuleViolation("participant", "no such participant") from None


# ---- adverse events --------------------------------------------------------------------------

def record_adverse_event(*, actor, participant_id: int, task_id: int | None = None, **fields) -> AdverseEvent:
    """Record an adverse event; with ``task_id`` it closes that open adverse-event task of the
    same participant (the event is linked to it)."""
    problems = Problems()
    protocol = active_protocol()
    data = clean_event(fields, problems, protocol=protocol)
    with transaction.atomic():
        assert_writable("adverse event")
        assert_record_writable(participant_id, "", AE_LOG)
        p = _participant(participant_id)
        _check_context(p, data, problems, protocol)
        problems.raise_any()
        task = _open_task(task_id, p.pk) if task_id not in (None, "") else None
        pv = active_version()
        number = (AdverseEvent.objects.filter(participant=p).aggregate(m=Max("number"))["m"] or 0) + 1
        ae = AdverseEvent.objects.create(participant=p, number=number, protocol_version=pv, created_by=actor,
                                         **causalities.stored(data))
        snap = snapshot(ae, protocol)
        AdverseEventRevision.objects.create(adverse_event=ae, revision=1, data=snap,
                                            changes={k: [None, v] for k, v in snap.items()}, saved_by=actor)
        audit.record(actor=actor, action="create", obj_type="adverse_event", obj_id=ae.pk, participant_id=p.pk,
                     changes={k: [None, v] for k, v in snap.items() if v not in ("", None, [])},
                     protocol_version=pv.version)
        if task is not None:
            _close_task(actor, task, ae=ae)
        _after_save(actor, ae, was_serious=False)
    return ae


def update_adverse_event(*, actor, adverse_event_id: int, reason: str, **fields) -> AdverseEvent:
    """A follow-up or correction: a new revision; the reason is required and audited."""
    reason = _text("reason", reason)
    with transaction.atomic():
        assert_writable("adverse event")
        assert_record_writable(_owner(AdverseEvent, adverse_event_id, "participant_id"), "", AE_LOG)
        try:
            ae = AdverseEvent.objects.select_for_update().get(pk=adverse_event_id)
        except AdverseEvent.DoesNotExist:
            raise RuleViolation("adverse_event", "no such adverse event") from None
        protocol = active_protocol()
        old = snapshot(ae, protocol)
        asked = event_fields(protocol)
        current = {f: v for f, v in flat_fields(ae, protocol).items() if f in asked}
        problems = Problems()
        data = clean_event({**current, **fields}, problems, protocol=protocol)
        p = _participant(ae.participant_id)
        _check_context(p, data, problems, protocol)
        problems.raise_any()
        data = causalities.stored(data)
        # a causality the protocol no longer asks for stays as it was
        data["causality"] = {**ae.causality, **data["causality"]}
        for k, v in data.items():
            setattr(ae, k, v)
        new = snapshot(ae, protocol)
        changes = audit.diff(old, new)
        if not changes:
            raise RuleViolation("reason", "nothing was changed")
        if "first_knowledge_at" in changes and old["first_knowledge_at"] and \
                ae.sae_reports.filter(sent_at__isnull=False).exists():
            raise RuleViolation("first_knowledge_at", "cannot change after a report was sent on its clock")
        was_serious = old["serious"]
        ae.revision += 1
        ae.save()
        AdverseEventRevision.objects.create(adverse_event=ae, revision=ae.revision, data=new, changes=changes,
                                            reason=reason, saved_by=actor)
        audit.record(actor=actor, action="change", obj_type="adverse_event", obj_id=ae.pk,
                     participant_id=ae.participant_id, changes=changes, reason=reason,
                     protocol_version=ae.protocol_version.version)
        _after_save(actor, ae, was_serious=was_serious)
    return ae


def _after_save(actor, ae: AdverseEvent, *, was_serious: bool) -> None:
    _sync_sae_reports(actor, ae, was_serious=was_serious)
    _sync_susar_report(actor, ae, was_serious=was_serious)
    evaluate_thresholds(actor=actor, trigger=ae)


# ---- SAE reporting clocks --------------------------------------------------------------------

def _staff(roles) -> list:
    return list(get_user_model().objects.filter(membership__role__in=roles, is_active=True).order_by("username"))


def _sync_sae_reports(actor, ae: AdverseEvent, *, was_serious: bool) -> None:
    protocol = active_protocol()
    now = timezone.now()
    reports = {r.recipient: r for r in ae.sae_reports.select_for_update()}
    if not ae.serious:
        for r in reports.values():
            if r.sent_at is None and r.not_required_since is None:
                r.not_required_since = now
                r.save(update_fields=["not_required_since"])
                audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=r.pk,
                             participant_id=ae.participant_id, changes={"not_required_since": [None, now]},
                             reason="the event is no longer serious")
        return
    deadlines = site_deadlines(ae.first_knowledge_at, protocol.trial.timezone, protocol.safety.sae_recipients)
    names = {r.id: r.name.get("en") for r in protocol.safety.sae_recipients}
    created = []
    for d in deadlines:
        r = reports.get(d.recipient)
        if r is None:
            r = SaeReport.objects.create(adverse_event=ae, recipient=d.recipient, recipient_name=names[d.recipient],
                                         due_at=d.due_utc, rule=d.rule[:300], calendar_warning=d.warning)
            audit.record(actor=actor, action="create", obj_type="sae_report", obj_id=r.pk,
                         participant_id=ae.participant_id,
                         changes={"recipient": [None, r.recipient], "due_at": [None, r.due_at],
                                  "calendar_warning": [None, r.calendar_warning]})
            created.append(r)
            continue
        if r.sent_at is not None:
            continue
        before = {"due_at": r.due_at, "not_required_since": r.not_required_since, "calendar_warning": r.calendar_warning}
        r.due_at, r.rule, r.calendar_warning, r.not_required_since = d.due_utc, d.rule[:300], d.warning, None
        changes = audit.diff(before, {"due_at": r.due_at, "not_required_since": None, "calendar_warning": r.calendar_warning})
        if changes:
            r.save(update_fields=["due_at", "rule", "calendar_warning", "not_required_since"])
            audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=r.pk,
                         participant_id=ae.participant_id, changes=changes,
                         reason="first knowledge time corrected or event serious again")
    if ae.serious and not was_serious:
        due = "; ".join(f"{r.recipient_name} by {_local(r.due_at)}" for r in ae.sae_reports.all())
        warn = next((r.calendar_warning for r in created if r.calendar_warning), "")
        notify(users=_staff(["investigator", "coordinator"]), actor=actor, kind="sae", participant_id=ae.participant_id,
               subject=f"SAE recorded: {ae.label} {ae.term}",
               body=f"First knowledge {_local(ae.first_knowledge_at)} (Asia/Shanghai). Reports due: {due}."
                    + (f" Warning: {warn}." if warn else ""),
               link=reverse("safety_sae"))


def _sync_susar_report(actor, ae: AdverseEvent, *, was_serious: bool) -> None:
    """A SUSAR (serious, unexpected, related to the product) has one more report: the expedited
    one, on its own calendar-day clock (protocol ``safety.susar``; ICH E2A: 7 days when fatal or
    life-threatening, 15 otherwise). The clock runs from first knowledge of the event when the
    event is a SUSAR as soon as it is serious; when a follow-up of a serious event makes it a SUSAR
    (causality or expectedness reassessed), from that follow-up."""
    from annulus.workdays import susar_deadline

    from .selectors import is_susar

    protocol = active_protocol()
    cfg = protocol.safety.susar
    now = timezone.now()
    report = ae.sae_reports.select_for_update().filter(expedited=True).first()
    if not is_susar(ae, protocol.safety.related_causality):
        if report and report.sent_at is None and report.not_required_since is None:
            report.not_required_since = now
            report.save(update_fields=["not_required_since"])
            audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=report.pk,
                         participant_id=ae.participant_id, changes={"not_required_since": [None, now]},
                         reason="the event is no longer a SUSAR")
        return
    if report is not None and report.sent_at is not None:
        return
    start = report.clock_start_at if report is not None else (max(now, ae.first_knowledge_at) if was_serious else None)
    fatal_or_lt = ae.outcome == "fatal" or bool({"death", "life_threatening"} & set(ae.serious_criteria))
    d = susar_deadline(start or ae.first_knowledge_at, protocol.trial.timezone, fatal_or_life_threatening=fatal_or_lt,
                       fatal_days=cfg.fatal_or_life_threatening_days, other_days=cfg.other_days, recipient=cfg.id)
    if start is not None:
        rule = f"{d.rule}; the event became a SUSAR at the follow-up of {_local(start)}"
    else:
        rule = d.rule
    if report is None:
        report = SaeReport.objects.create(adverse_event=ae, recipient=cfg.id, recipient_name=cfg.name.get("en"),
                                          due_at=d.due_utc, rule=rule[:300], expedited=True, clock_start_at=start)
        audit.record(actor=actor, action="create", obj_type="sae_report", obj_id=report.pk,
                     participant_id=ae.participant_id,
                     changes={"recipient": [None, report.recipient], "due_at": [None, report.due_at],
                              "expedited": [None, True]})
        notify(users=_staff(["investigator", "coordinator"]), actor=actor, kind="susar",
               participant_id=ae.participant_id,
               subject=f"SUSAR: expedited report of {ae.label} due {_local(report.due_at)}",
               body=f"{ae.label} {ae.term} is serious, unexpected and related to the study product. "
                    f"Expedited report due {_local(report.due_at)} (Asia/Shanghai): {rule}.",
               link=reverse("safety_sae_report", args=[report.pk]))
        return
    before = {"due_at": report.due_at, "not_required_since": report.not_required_since}
    report.due_at, report.rule, report.not_required_since = d.due_utc, rule[:300], None
    changes = audit.diff(before, {"due_at": report.due_at, "not_required_since": None})
    if changes:
        report.save(update_fields=["due_at", "rule", "not_required_since"])
        audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=report.pk,
                     participant_id=ae.participant_id, changes=changes,
                     reason="SUSAR clock recomputed (first knowledge, outcome or seriousness criteria changed)")


def _report(report_id: int) -> SaeReport:
    try:
        return SaeReport.objects.select_for_update().select_related("adverse_event").get(pk=report_id)
    except SaeReport.DoesNotExist:
        raise RuleViolation("report", "no such SAE report") from None


def record_report_sent(*, actor, report_id: int, sent_at: datetime, sent_to: str, method: str = "") -> SaeReport:
    sent_at = _moment("sent_at", sent_at)
    sent_to = _text("sent_to", sent_to, max_len=120)
    method = _text("method", method, required=False, max_len=40)
    with transaction.atomic():
        assert_writable("SAE report")
        assert_record_writable(_owner(SaeReport, report_id, "adverse_event__participant_id"), "", AE_LOG)
        r = _report(report_id)
        if r.sent_at is not None:
            raise RuleViolation("sent_at", f"this report was already recorded as sent at {_local(r.sent_at)}")
        if r.not_required_since is not None:
            raise RuleViolation("report", "the event is no longer serious; this report is not required")
        if sent_at < r.adverse_event.first_knowledge_at:
            raise RuleViolation("sent_at", f"is before first knowledge of the event ({_local(r.adverse_event.first_knowledge_at)})")
        r.sent_at, r.sent_by, r.sent_to, r.sent_method = sent_at, actor, sent_to, method
        r.save(update_fields=["sent_at", "sent_by", "sent_to", "sent_method"])
        audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=r.pk,
                     participant_id=r.adverse_event.participant_id,
                     changes={"sent_at": [None, sent_at], "sent_to": [None, sent_to], "method": [None, method]})
    return r


def record_report_acknowledged(*, actor, report_id: int, acknowledged_at: datetime, acknowledged_by: str) -> SaeReport:
    acknowledged_at = _moment("acknowledged_at", acknowledged_at)
    acknowledged_by = _text("acknowledged_by", acknowledged_by, max_len=120)
    with transaction.atomic():
        assert_writable("SAE report")
        assert_record_writable(_owner(SaeReport, report_id, "adverse_event__participant_id"), "", AE_LOG)
        r = _report(report_id)
        if r.sent_at is None:
            raise RuleViolation("acknowledged_at", "the report has not been sent yet; record the sending first")
        if acknowledged_at < r.sent_at:
            raise RuleViolation("acknowledged_at", f"is before the report was sent ({_local(r.sent_at)})")
        if r.acknowledged_at is not None:
            raise RuleViolation("acknowledged_at", "the acknowledgement is already recorded")
        r.acknowledged_at, r.acknowledged_by, r.ack_recorded_by = acknowledged_at, acknowledged_by, actor
        r.save(update_fields=["acknowledged_at", "acknowledged_by", "ack_recorded_by"])
        audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=r.pk,
                     participant_id=r.adverse_event.participant_id,
                     changes={"acknowledged_at": [None, acknowledged_at], "acknowledged_by": [None, acknowledged_by]})
    return r


def notify_overdue(*, now: datetime | None = None, actor=None) -> int:
    """Tell the investigators and coordinators once about each report whose clock ran out."""
    now = now or timezone.now()
    count = 0
    if is_locked():
        # after the lock nothing is reported any more: the checklist closed or waived every report
        return 0
    with transaction.atomic():
        late = (SaeReport.objects.select_for_update().select_related("adverse_event__participant")
                .filter(sent_at__isnull=True, not_required_since__isnull=True, overdue_notified_at__isnull=True,
                        due_at__lt=now))
        staff = None
        for r in late:
            staff = staff if staff is not None else _staff(["investigator", "coordinator"])
            notify(users=staff, actor=actor, kind="sae_overdue", participant_id=r.adverse_event.participant_id,
                   subject=f"SAE report OVERDUE: {r.adverse_event.label} to {r.recipient_name}",
                   body=f"Due {_local(r.due_at)} (Asia/Shanghai); not yet recorded as sent.",
                   link=reverse("safety_sae_report", args=[r.pk]))
            r.overdue_notified_at = now
            r.save(update_fields=["overdue_notified_at"])
            audit.record(actor=actor, action="change", obj_type="sae_report", obj_id=r.pk,
                         participant_id=r.adverse_event.participant_id,
                         changes={"overdue_notified_at": [None, now]}, reason="reporting deadline passed")
            count += 1
    return count


# ---- withdrawal for safety ---------------------------------------------------------------------

def withdraw_for_event(*, actor, adverse_event_id: int, withdrawn_on: date, details: str):
    from annulus.participants import services as participants

    ae = AdverseEvent.objects.filter(pk=adverse_event_id).first()
    if ae is None:
        raise RuleViolation("adverse_event", "no such adverse event")
    if isinstance(withdrawn_on, date) and withdrawn_on < timezone.localtime(ae.onset_at).date():
        raise RuleViolation("withdrawn_on", "is before the onset of the adverse event")
    return participants.withdraw(actor=actor, participant_id=ae.participant_id, withdrawn_on=withdrawn_on,
                                 category="adverse_event", details=details, adverse_event_id=ae.pk)


# ---- DSMB thresholds --------------------------------------------------------------------------

def system_arm(participant_id: int) -> str | None:
    """A participant's arm for system checks (threshold evaluation, the scheduled closed report).
    Never shown to a blinded user."""
    try:
        from annulus.allocation.selectors import arm_of_for_system
    except ImportError:  # allocation not installed: nobody is allocated yet
        return None
    return arm_of_for_system(participant_id)


def _matches(t, ae: AdverseEvent, related: set[str]) -> bool:
    if t.fatal is not None and (ae.outcome == "fatal") != t.fatal:
        return False
    if t.serious is not None and ae.serious != t.serious:
        return False
    if t.min_grade is not None and ae.grade < t.min_grade:
        return False
    if t.related_to_product is not None and (ae.causality_product in related) != t.related_to_product:
        return False
    return True


def evaluate_thresholds(*, actor, trigger: AdverseEvent) -> list[DsmbAlert]:
    """Evaluate every protocol threshold on the events as they now stand; record and notify each
    new alert. A threshold of one event (any death, any related SAE) alerts on every qualifying
    event, once per event; a threshold of N events alerts each time the count (per arm for
    per-arm thresholds) reaches a new multiple of N: 3, 6, 9 ..."""
    protocol = active_protocol()
    related = set(protocol.safety.related_causality)
    events = list(AdverseEvent.objects.all().only("id", "participant_id", "outcome", "serious", "grade", "causality_product"))
    arms_cache: dict[int, str | None] = {}
    new = []
    for t in protocol.safety.dsmb_thresholds:
        hits = [e for e in events if _matches(t, e, related)]
        groups: dict[str, list[int]] = {}
        if t.per_arm:
            for e in hits:
                if e.participant_id not in arms_cache:
                    arms_cache[e.participant_id] = system_arm(e.participant_id)
                arm = arms_cache[e.participant_id]
                if arm:
                    groups.setdefault(arm, []).append(e.pk)
        elif hits:
            groups[""] = [e.pk for e in hits]
        earlier = list(DsmbAlert.objects.filter(threshold_id=t.id).values("arm", "level", "event_id", "adverse_event_ids"))
        for arm, ids in groups.items():
            if t.count_at_least == 1:
                # every qualifying event not yet in an alert of this threshold
                told = {i for a in earlier if a["arm"] == arm for i in a["adverse_event_ids"]}
                keys = [{"event_id": i, "defaults": {"level": 0, "adverse_event_ids": [i]}} for i in ids if i not in told]
            else:
                level = len(ids) // t.count_at_least * t.count_at_least
                top = max((a["level"] for a in earlier if a["arm"] == arm and a["event_id"] is None), default=0)
                keys = [{"level": level, "event__isnull": True, "defaults": {"adverse_event_ids": ids}}] \
                    if level >= t.count_at_least and level > top else []
            for key in keys:
                defaults = {"description": t.description.get("en")[:300], "count": len(ids),
                            "triggered_by_ae": trigger, **key.pop("defaults")}
                alert, created = DsmbAlert.objects.get_or_create(threshold_id=t.id, arm=arm, **key, defaults=defaults)
                if created:
                    _announce_alert(actor, t, alert)
                    new.append(alert)
    return new


def _announce_alert(actor, t, alert: DsmbAlert) -> None:
    """Audit and notify one alert. Neither names the arm nor an event: the audit trail is read by
    blinded roles, and the notification is also mailed. The mail carries a link to the alert's
    page, where the DSMB sees the arm and the events in the app."""
    audit.record(actor=actor, action="create", obj_type="dsmb_alert", obj_id=alert.pk,
                 changes={"threshold": [None, t.id], "count": [None, alert.count],
                          "scope": [None, "one arm" if t.per_arm else "all participants"]})
    every = t.count_at_least == 1
    notify(users=_staff(["dsmb"]), actor=actor, kind="dsmb_alert", trial_wide=True,
           subject=f"DSMB safety threshold crossed: {t.description.get('en')}"[:200],
           body=(f"One more event meets the safety threshold '{t.description.get('en')}'." if every else
                 f"The safety threshold '{t.description.get('en')}' is reached (again, at a new multiple of its count).")
                + " The details are shown to the DSMB in Annulus only: open the link.",
           link=reverse("safety_dsmb_alert", args=[alert.pk]))


# ---- DSMB recommendations and reports ----------------------------------------------------------

def record_recommendation(*, actor, meeting_on: date, decision: str, summary: str, closed_notes: str = "",
                          as_of: date | None = None) -> DsmbRecommendation:
    problems = Problems()  # every problem at once, each on its field
    if not isinstance(meeting_on, date):
        problems.add("meeting_on", "must be a date")
    elif meeting_on > timezone.localdate():
        problems.add("meeting_on", "cannot be in the future")
    elif as_of is not None and as_of > meeting_on:
        problems.add("as_of", "the data cut-off cannot be after the meeting")
    with problems.check():
        decision = _choice("decision", decision, DsmbRecommendation.DECISIONS)
    with problems.check():
        summary = _text("summary", summary)
    with problems.check():
        closed_notes = _text("closed_notes", closed_notes, required=False)
    problems.raise_any()
    with transaction.atomic():
        assert_writable("DSMB recommendation")
        rec = DsmbRecommendation.objects.create(meeting_on=meeting_on, as_of=as_of, decision=decision, summary=summary,
                                                closed_notes=closed_notes, recorded_by=actor)
        # closed notes may discuss arms: the audit keeps only that they exist
        audit.record(actor=actor, action="create", obj_type="dsmb_recommendation", obj_id=rec.pk,
                     changes={"meeting_on": [None, meeting_on], "decision": [None, decision],
                              "summary": [None, summary], "closed_notes": [None, "(recorded)" if closed_notes else ""]})
        from django.utils.translation import override

        with override("en"):  # notifications are written in English, whatever the language of the page
            label = str(dict(DsmbRecommendation.DECISIONS)[decision])
        notify(users=_staff(["investigator"]), actor=actor, kind="dsmb_recommendation",
               subject=f"DSMB recommendation ({meeting_on.isoformat()}): {label}",
               body=summary, link=reverse("safety_dsmb"))
    return rec


def closed_arms(user=None) -> dict[int, str]:
    """Arms for a closed report: through the blind's gate for a person (``NotPermitted`` unless
    a DSMB member); the system reading when there is no person (scheduled run)."""
    if user is not None:
        from annulus.allocation.selectors import arms_for_closed_report

        return dict(arms_for_closed_report(user))
    out = {}
    for pid in Participant.objects.filter(enrolled_at__isnull=False).values_list("id", flat=True):
        arm = system_arm(pid)
        if arm:
            out[pid] = arm
    return out


def generate_report(*, actor, as_of: date, kind: str, scheduled: bool = False):
    """Produce and keep an interim safety report. ``actor`` None is the scheduled system run."""
    from annulus.accounts.permissions import require

    from . import reports
    from .models import DsmbReport

    kind = _choice("kind", kind, DsmbReport.KINDS)
    if not isinstance(as_of, date) or isinstance(as_of, datetime):
        raise RuleViolation("as_of", "must be a date")
    if as_of > timezone.localdate():
        raise RuleViolation("as_of", "cannot be in the future")
    if actor is not None:
        require(actor, "dsmb.generate")
        require(actor, "dsmb.closed" if kind == "closed" else "dsmb.open")
        from .selectors import trial_wide

        if not trial_wide(actor):
            # the report lists the whole trial's serious events by participant
            raise NotPermitted("interim reports cover every site; an account limited to sites cannot make them")
    protocol = active_protocol()
    arms = closed_arms(actor) if kind == "closed" else None
    data = reports.build(as_of=as_of, protocol=protocol, arms=arms)
    now = timezone.now()
    html = {lang: reports.render_html(data, registry=protocol.trial.registry_number, generated_at=now,
                                      generated_by=getattr(actor, "username", "system"), scheduled=scheduled,
                                      language=lang)
            for lang in reports.LANGUAGES}
    with transaction.atomic():
        rep = DsmbReport.objects.create(kind=kind, as_of=as_of, scheduled=scheduled, html=html["en"], html_zh=html["zh-hans"],
                                        summary=reports.summary(data), generated_by=actor)
        audit.record(actor=actor, action="create", obj_type="dsmb_report", obj_id=rep.pk,
                     changes={"kind": [None, kind], "as_of": [None, as_of], "scheduled": [None, scheduled]})
    return rep


def generate_due_reports(*, today: date | None = None) -> list:
    """The scheduled run: for each due date already passed without reports, produce the open and
    the closed report (as of that date)."""
    from . import reports
    from .models import DsmbReport

    today = today or timezone.localdate()
    made = []
    for due in reports.schedule(months=active_protocol().safety.dsmb_interim_months, today=today):
        if due > today:
            break
        for kind in ("open", "closed"):
            if not DsmbReport.objects.filter(kind=kind, as_of=due, scheduled=True).exists():
                made.append(generate_report(actor=None, as_of=due, kind=kind, scheduled=True))
    return made


# ---- adverse-event tasks -------------------------------------------------------------------------

def open_ae_task(*, actor, participant_id: int, key: str, source: str, description: str, term: str = "",
                 **_signal) -> AeTask | None:
    """Open a task for a finding that may be an adverse event (once per ``key``), in the caller's
    transaction. Receives ``annulus.visits.signals.adverse_event_prompt``."""
    if source not in dict(AeTask.SOURCES):
        raise RuleViolation("source", f"must be one of {', '.join(dict(AeTask.SOURCES))}")
    with transaction.atomic():
        assert_writable("adverse-event task")
        assert_record_writable(participant_id)
        if AeTask.objects.filter(key=key).exists():
            return None
        task = AeTask.objects.create(participant_id=participant_id, key=key[:80], source=source,
                                     description=description[:300], term=term[:200], opened_at=timezone.now(),
                                     opened_by=actor if getattr(actor, "pk", None) else None)
        audit.record(actor=actor, action="create", obj_type="ae_task", obj_id=task.pk, participant_id=participant_id,
                     changes={"source": [None, source], "description": [None, task.description]},
                     reason="a finding that may be an adverse event")
    return task


def _open_task(task_id, participant_id: int | None = None) -> AeTask:
    """The task, locked, if it is still open (and, when ``participant_id`` is given, that
    participant's)."""
    try:
        task = AeTask.objects.select_for_update().get(pk=int(task_id))
    except (AeTask.DoesNotExist, TypeError, ValueError):
        raise RuleViolation("task_id", "no such adverse-event task") from None
    if participant_id is not None and task.participant_id != participant_id:
        raise RuleViolation("task_id", "the task belongs to another participant")
    if task.closed_at is not None:
        raise RuleViolation("task_id", f"the task is already closed ({task.state})")
    return task


def _close_task(actor, task: AeTask, *, ae: AdverseEvent | None = None, reason: str = "") -> AeTask:
    task.closed_at, task.closed_by = timezone.now(), actor
    task.adverse_event, task.dismissed_reason = ae, reason
    task.save(update_fields=["closed_at", "closed_by", "adverse_event", "dismissed_reason"])
    changes = {"state": ["open", task.state]}
    if ae is not None:
        changes["adverse_event"] = [None, ae.label]
    audit.record(actor=actor, action="change", obj_type="ae_task", obj_id=task.pk, participant_id=task.participant_id,
                 changes=changes, reason=reason or f"adverse event {ae.label} recorded")
    return task


def link_ae_task(*, actor, task_id: int, adverse_event_id: int) -> AeTask:
    """Close a task with an adverse event already recorded for the same participant."""
    with transaction.atomic():
        assert_writable("adverse-event task")
        assert_record_writable(_owner(AeTask, task_id, "participant_id"), "", AE_LOG)
        task = _open_task(task_id)
        ae = AdverseEvent.objects.filter(pk=adverse_event_id, participant_id=task.participant_id).first() \
            if str(adverse_event_id or "").isdigit() else None
        if ae is None:
            raise RuleViolation("adverse_event_id", "choose an adverse event of this participant")
        return _close_task(actor, task, ae=ae)


def dismiss_ae_task(*, actor, task_id: int, reason: str) -> AeTask:
    """Close a task without an adverse event: the finding is not one (the reason is audited)."""
    reason = _text("reason", reason, min_len=10)
    with transaction.atomic():
        assert_writable("adverse-event task")
        assert_record_writable(_owner(AeTask, task_id, "participant_id"), "", AE_LOG)
        task = _open_task(task_id)
        return _close_task(actor, task, reason=reason)
