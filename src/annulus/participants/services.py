"""Every write of a participant's journey. Each function checks the rules, writes the records
and their audit events in one transaction, or raises ``RuleViolation`` having written nothing."""

from __future__ import annotations

import re
from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from annulus.audit import services as audit
from annulus.checks import clean_moment
from annulus.checks import clean_text as _text
from annulus.errors import NotPermitted, Problems, RuleViolation
from annulus.protocol import EvidenceError, clean_evidence, evaluate
from annulus.trial.lock import assert_writable
from annulus.trial.selectors import active_protocol, active_version

from . import selectors, states
from .evidence_words import evidence_message
from .locks import assert_record_writable
from .models import Consent, EligibilityDecision, Evidence, Participant, StatusChange, Withdrawal

def _not_future(field: str, value: date | datetime) -> None:
    if isinstance(value, datetime):
        clean_moment(field, value)
    elif value > timezone.localdate():
        raise RuleViolation(field, "cannot be in the future")


def _not_before_trial(field: str, value: date) -> None:
    """Nothing of the trial happens before its first protocol version took effect."""
    from annulus.trial.models import ProtocolVersion

    start = ProtocolVersion.objects.order_by("effective_date").values_list("effective_date", flat=True).first()
    if start is not None and value < start:
        raise RuleViolation(field, f"cannot be before the trial's protocol took effect ({start.isoformat()})")


def _set_status(participant: Participant, target: str, actor, reason: str = "") -> None:
    states.check(participant.status, target)
    old = participant.status
    participant.status = target
    participant.save(update_fields=["status", "updated_at"])
    StatusChange.objects.create(participant=participant, from_status=old, to_status=target, by=actor, reason=reason)
    audit.record(actor=actor, action="change", obj_type="participant", obj_id=participant.pk,
                 participant_id=participant.pk, changes={"status": [old, target]}, reason=reason,
                 protocol_version=participant.protocol_version.version)


def _locked(participant_id: int) -> Participant:
    try:
        return Participant.objects.select_for_update().select_related("protocol_version").get(pk=participant_id)
    except Participant.DoesNotExist:
        raise RuleViolation("participant", "no such participant") from None


def _may_record_at(actor, site: str) -> bool:
    """A user scoped to sites pre-screens only at those sites (else they could not see the record)."""
    from .selectors import user_sites

    sites = user_sites(actor)
    return sites is None or site in sites


def _check_prescreen(problems: Problems, actor, *, initials="", sex="", recruitment_source="", prescreened_on=None,
                     full_name="", phone="", site=""):
    """The checks of a pre-screening, each problem added to ``problems``; the cleaned initials,
    site, name and phone."""
    protocol = active_protocol()
    with problems.check():
        initials = _text("initials", initials, max_len=10)
        if not re.fullmatch(r"[A-Za-z\u4e00-\u9fff\-]{1,10}", initials):
            raise RuleViolation("initials", "letters only, at most 10")
    if sex not in ("F", "M"):
        problems.add("sex", "must be F or M")
    site_ids = [s.id for s in protocol.site_list]
    site = site.strip() if isinstance(site, str) else ""
    if not site and len(site_ids) == 1:
        site = site_ids[0]
    if not site:
        problems.add("site", f"is required (one of {', '.join(site_ids)})")
    elif site not in site_ids:
        problems.add("site", f"must be one of {', '.join(site_ids)}")
    elif not _may_record_at(actor, site):
        problems.add("site", f"you are not assigned to site {site}")
    if recruitment_source not in protocol.recruitment_sources:
        problems.add("recruitment_source", f"must be one of {', '.join(protocol.recruitment_sources)}")
    with problems.check():
        if not isinstance(prescreened_on, date):
            raise RuleViolation("prescreened_on", "must be a date")
        _not_future("prescreened_on", prescreened_on)
        _not_before_trial("prescreened_on", prescreened_on)
    with problems.check():
        full_name = _text("full_name", full_name, required=False, max_len=120)
    with problems.check():
        phone = _text("phone", phone, required=False, max_len=40)
        if phone and not re.fullmatch(r"[0-9+\-() ]{5,40}", phone):
            raise RuleViolation("phone", "digits, spaces, + - ( ) only")
    return initials, site, full_name, phone


def prescreen_problems(*, actor, **fields) -> list[RuleViolation]:
    """What ``prescreen`` would refuse in these fields, every problem at once, writing nothing
    (a page whose own form refuses a field shows these beside it). A field left out is not
    checked."""
    problems = Problems()
    _check_prescreen(problems, actor, **fields)
    return [v for v in problems.violations if v.field in fields]


def prescreen(*, actor, initials: str, sex: str, recruitment_source: str, prescreened_on: date,
              full_name: str = "", phone: str = "", site: str = "") -> Participant:
    """Record a candidate. ``site`` is one of the protocol's site ids; with one site it may be
    left empty (the one site), with several it must be chosen."""
    problems = Problems()  # every problem at once, each naming its field
    initials, site, full_name, phone = _check_prescreen(
        problems, actor, initials=initials, sex=sex, recruitment_source=recruitment_source,
        prescreened_on=prescreened_on, full_name=full_name, phone=phone, site=site)
    problems.raise_any()
    pv = active_version()
    with transaction.atomic():
        assert_writable("pre-screening", exclusive=True)
        # participants are never deleted, so the count under the lock numbers them without gaps
        # (ids skip values after a rolled-back insert on PostgreSQL)
        number = f"S{Participant.objects.count() + 1:04d}"
        p = Participant.objects.create(
            screening_number=number, initials=initials.upper(), full_name=full_name, sex=sex, phone=phone,
            recruitment_source=recruitment_source, site=site, prescreened_on=prescreened_on,
            protocol_version=pv, created_by=actor,
        )
        StatusChange.objects.create(participant=p, from_status="", to_status=states.PRE_SCREENED, by=actor)
        audit.record(actor=actor, action="create", obj_type="participant", obj_id=p.pk, participant_id=p.pk,
                     changes={k: [None, v] for k, v in {
                         "screening_number": number, "initials": p.initials, "sex": sex,
                         "recruitment_source": recruitment_source, "site": site, "prescreened_on": prescreened_on,
                         "status": states.PRE_SCREENED}.items()},
                     protocol_version=pv.version)
    return p


def approved_icf_versions(on: date | None = None):
    """The informed-consent form versions of the protocol in force approved by the ethics
    committee on or before ``on`` (default today), newest approval first; None when the protocol
    declares none (the version is then free text)."""
    rules = active_protocol().consent
    return None if rules is None else rules.approved(on or timezone.localdate())


def _check_icf_version(version: str, consented_at: datetime | None) -> None:
    rules = active_protocol().consent
    if rules is None:
        return
    listed = {v.version: v for v in rules.icf_versions}
    icf = listed.get(version)
    if icf is None:
        raise RuleViolation("consent_version", f"'{version}' is not an informed-consent form version approved by "
                                               f"the ethics committee (approved: {', '.join(listed)})")
    if consented_at is not None and icf.approved_on > timezone.localtime(consented_at).date():
        raise RuleViolation("consent_version", f"version {version} was approved by the ethics committee on "
                                               f"{icf.approved_on.isoformat()}, after the day the consent was signed")


def record_consent(*, actor, participant_id: int, consent_version: str, consented_at: datetime, taken_by) -> Consent:
    problems = Problems()  # every problem at once, each naming its field
    with problems.check():
        consent_version = _text("consent_version", consent_version, max_len=40)
    with problems.check():
        if not isinstance(consented_at, datetime):
            raise RuleViolation("consented_at", "must be a date and time")
        _not_future("consented_at", consented_at)
    if taken_by is None:
        problems.add("taken_by", "is required")
    if not problems.broken("consent_version"):
        with problems.check():
            _check_icf_version(consent_version, None if problems.broken("consented_at") else consented_at)
    problems.raise_any()
    with transaction.atomic():
        assert_writable("consent")
        assert_record_writable(participant_id, "screening", "consent")
        p = _locked(participant_id)
        local_day = timezone.localtime(consented_at).date()
        if local_day < p.prescreened_on:
            raise RuleViolation("consented_at", "is before the pre-screening date")
        latest = p.consents.order_by("-consented_at").first()
        if latest is None:
            first_procedure = (Evidence.objects.filter(participant=p).order_by("collected_on")
                               .values_list("collected_on", flat=True).first())
            if first_procedure and local_day > first_procedure:
                raise RuleViolation("consented_at", f"is after a study procedure on {first_procedure.isoformat()}; "
                                                    "consent must come before any procedure")
        elif consented_at <= latest.consented_at:
            # a re-consent (new consent version) follows the consent it renews; procedures done
            # under the earlier consent stay covered by it
            raise RuleViolation("consented_at", "a re-consent must be later than the consent of "
                                                f"{timezone.localtime(latest.consented_at):%Y-%m-%d %H:%M}")
        if p.status == states.PRE_SCREENED:
            pass
        elif p.status in states.TRANSITIONS and p.status not in (states.SCREEN_FAILED, states.WITHDRAWN, states.LOST, states.COMPLETED):
            pass  # re-consent on a new consent version
        else:
            states.check(p.status, states.CONSENTED)
        pv = active_version()
        c = Consent.objects.create(participant=p, consent_version=consent_version, consented_at=consented_at,
                                   taken_by=taken_by, recorded_by=actor, protocol_version=pv)
        audit.record(actor=actor, action="create", obj_type="consent", obj_id=c.pk, participant_id=p.pk,
                     changes={"consent_version": [None, consent_version], "consented_at": [None, consented_at],
                              "taken_by": [None, taken_by.username]}, protocol_version=pv.version)
        if p.status == states.PRE_SCREENED:
            _set_status(p, states.CONSENTED, actor, "informed consent signed")
    return c


def current_evidence(p: Participant) -> dict[str, Evidence]:
    """The evidence in force by field (outside a GET request always read afresh)."""
    return {e.field: e for e in selectors.evidence_of(p.pk) if not e.superseded}


def _check_evidence(problems: Problems, values, collected_on, reason) -> tuple[dict, str]:
    """Each value against its field, the collection date and the reason, every problem added to
    ``problems``; the cleaned values and reason."""
    protocol = active_protocol()
    with problems.check():
        if not isinstance(collected_on, date):
            raise RuleViolation("collected_on", "must be a date")
        _not_future("collected_on", collected_on)
    cleaned = {}
    for field, value in (values.items() if isinstance(values, dict) else ()):
        try:
            cleaned.update(clean_evidence(protocol.eligibility, {field: value}, today=timezone.localdate()))
        except EvidenceError as exc:
            problems.add(exc.field, evidence_message(exc))
    with problems.check():
        reason = _text("reason", reason, required=False)
    return cleaned, reason


def evidence_problems(*, values: dict, collected_on, reason: str = "") -> list[RuleViolation]:
    """What ``enter_evidence`` would refuse in these values before reading the participant,
    writing nothing (a page whose own form refuses a field shows these beside it)."""
    problems = Problems()
    _check_evidence(problems, values, collected_on, reason)
    return problems.violations


def enter_evidence(*, actor, participant_id: int, values: dict, collected_on: date, reason: str = "") -> list[Evidence]:
    """Enter screening evidence. A value that replaces an earlier one needs a reason."""
    problems = Problems()  # every wrong value at once, each on its field
    cleaned, reason = _check_evidence(problems, values, collected_on, reason)
    problems.raise_any()
    with transaction.atomic():
        assert_writable("screening evidence")
        assert_record_writable(participant_id, "screening", "screening")
        p = _locked(participant_id)
        if p.status not in (states.CONSENTED, states.SCREENING, states.ELIGIBLE):
            if p.status == states.PRE_SCREENED:
                raise RuleViolation("status", "nothing can be recorded before informed consent")
            raise RuleViolation("status", f"screening evidence cannot be entered for a participant who is {p.status_label}")
        consent = p.consents.order_by("consented_at").first()
        if consent is None:
            raise RuleViolation("status", "nothing can be recorded before informed consent")
        if collected_on < timezone.localtime(consent.consented_at).date():
            raise RuleViolation("collected_on", "is before informed consent; no procedure may precede consent")
        existing = current_evidence(p)
        pv = active_version()
        changes: dict = {}
        to_supersede = []
        written = []
        for field, value in cleaned.items():
            stored = value.isoformat() if isinstance(value, date) else value
            old = existing.get(field)
            if old is not None and old.value == stored:
                continue
            if old is not None and not reason:
                raise RuleViolation("reason", f"changing {field} from {old.value!r} needs a reason")
            if old is not None:
                to_supersede.append(old.pk)
            changes[field] = [old.value if old else None, stored]
            written.append(Evidence(participant=p, field=field, value=stored, collected_on=collected_on,
                                    entered_by=actor, protocol_version=pv, change_reason=reason if old else ""))
        if to_supersede:
            Evidence.objects.filter(pk__in=to_supersede).update(superseded=True)
        written = Evidence.objects.bulk_create(written)
        if written:
            # one audit event per entry, with every field's old and new value
            audit.record(actor=actor, action="change" if to_supersede else "create", obj_type="screening_evidence",
                         obj_id=p.pk, participant_id=p.pk, changes={**changes, "collected_on": [None, collected_on]},
                         reason=reason if to_supersede else "", protocol_version=pv.version)
        if written and p.status == states.CONSENTED:
            _set_status(p, states.SCREENING, actor, "screening started")
        elif written and p.status == states.ELIGIBLE:
            # the earlier decision no longer stands on the evidence; decide again
            EligibilityDecision.objects.filter(participant=p, superseded=False).update(superseded=True)
            _set_status(p, states.SCREENING, actor, reason or "screening evidence changed after the decision")
    return written


def evaluate_participant(p: Participant):
    protocol = active_protocol()
    consent = next(iter(selectors.consents_of(p.pk)), None)
    ref = timezone.localtime(consent.consented_at).date() if consent else timezone.localdate()
    values = {}
    for field, e in current_evidence(p).items():
        spec = protocol.eligibility.field(field)
        values[field] = date.fromisoformat(e.value) if spec.type == "date" and e.value else e.value
    return evaluate(protocol.eligibility, values, ref), values


ELIGIBILITY_SIGNATURE = "eligibility decision signed"


def decide_eligibility(*, actor, participant_id: int, password: str | None = None, signature=None,
                       decided_at: datetime | None = None) -> EligibilityDecision:
    """Evaluate every criterion from the evidence and record eligible or screen failure, signed by
    an investigator who re-enters their password (``password``; or a ``Signature`` from
    ``annulus.accounts.services.sign`` for a batch). A coordinator prepares the evidence but cannot
    decide. A wrong password counts towards the investigator's lockout.
    ``decided_at`` (default now) may be earlier when the decision is entered after the fact."""
    from annulus.accounts.permissions import has
    from annulus.accounts.services import Signature, sign

    if not has(actor, "participant.decide"):
        raise NotPermitted("participant.decide")
    if decided_at is not None:
        _not_future("decided_at", decided_at)
    if isinstance(signature, Signature):
        if signature.user.pk != actor.pk or signature.meaning != ELIGIBILITY_SIGNATURE:
            raise RuleViolation("password", "the signature is not this investigator's eligibility signature")
    else:
        # before the transaction: a failed attempt is kept even though the decision is refused
        sign(user=actor, password=password, meaning=ELIGIBILITY_SIGNATURE)
    with transaction.atomic():
        assert_writable("eligibility decision")
        assert_record_writable(participant_id, "screening", "eligibility")
        p = _locked(participant_id)
        if p.status != states.SCREENING:
            if p.status == states.PRE_SCREENED:
                raise RuleViolation("status", "nothing can be recorded before informed consent")
            if p.status == states.CONSENTED:
                raise RuleViolation("evidence", "no screening evidence has been entered yet")
            states.check(p.status, states.ELIGIBLE)
        result, values = evaluate_participant(p)
        if result.outcome == "incomplete":
            missing = ", ".join(r.criterion.id for r in result.undecided)
            raise RuleViolation("evidence", f"criteria cannot be decided yet, evidence missing for: {missing}")
        # with who entered each value: the signed record names them, one query instead of one per value
        evidence = {e.field: e for e in Evidence.objects.filter(participant=p, superseded=False)
                    .select_related("entered_by")}
        criteria = [
            {
                "id": r.criterion.id, "box": r.box, "holds": r.holds, "passed": r.passed,
                "text": r.criterion.text.en,
                "evidence": {f: {"value": evidence[f].value, "entered_by": evidence[f].entered_by.username,
                                 "entered_at": evidence[f].entered_at.isoformat()}
                             for f in r.criterion.fields if f in evidence},
            }
            for r in result.results
        ]
        failing = [r.criterion.id for r in result.failing]
        pv = active_version()
        if decided_at is not None:
            last = max((e.collected_on for e in evidence.values()), default=None)
            if last and timezone.localtime(decided_at).date() < last:
                raise RuleViolation("decided_at", f"is before the evidence collected on {last.isoformat()}")
        d = EligibilityDecision.objects.create(participant=p, outcome=result.outcome, criteria=criteria,
                                               failing=failing, decided_by=actor, protocol_version=pv)
        if decided_at is not None:
            EligibilityDecision.objects.filter(pk=d.pk).update(decided_at=decided_at)
            d.decided_at = decided_at
        audit.record(actor=actor, action="create", obj_type="eligibility_decision", obj_id=d.pk, participant_id=p.pk,
                     changes={"outcome": [None, result.outcome], "failing": [None, failing],
                              "signature": [None, ELIGIBILITY_SIGNATURE]},
                     reason=f"electronic signature: {ELIGIBILITY_SIGNATURE}", protocol_version=pv.version)
        target = states.ELIGIBLE if result.outcome == "eligible" else states.SCREEN_FAILED
        why = "all criteria met" if target == states.ELIGIBLE else "failed: " + ", ".join(failing)
        _set_status(p, target, actor, why)
    return d


def next_case_number(p: Participant, protocol) -> str:
    """The case number of the next enrolment: 001, 002, ... across the trial, or with
    ``randomisation.case_numbers: per_site`` the site's own series prefixed with its id (A-001,
    A-002, ...). Called under the enrolment's exclusive trial-state lock, which makes the count
    and the write one step on SQLite and PostgreSQL alike; numbers are never taken back (nothing
    is deleted), so the count of those given is the last number given."""
    width = protocol.randomisation.case_number_width
    if getattr(protocol.randomisation, "case_numbers", "global") == "per_site":
        given = Participant.objects.filter(case_number__isnull=False, site=p.site).count()
        return f"{p.site}-{given + 1:0{width}d}"
    return f"{Participant.objects.filter(case_number__isnull=False).count() + 1:0{width}d}"


def enrol(*, actor, participant_id: int, enrolled_at: datetime | None = None) -> Participant:
    """Give an eligible participant the next case number (001, 002, ... in order of enrolment, or
    per site: ``next_case_number``). ``enrolled_at`` defaults to now; a past time (entered after the
    fact) must not precede consent."""
    protocol = active_protocol()
    limit = protocol.sample_size.total
    try:
        with transaction.atomic():
            # the trial-state row lock makes case numbers strictly sequential under concurrency
            trial = assert_writable("enrolment", exclusive=True)
            assert_record_writable(participant_id)
            p = _locked(participant_id)
            if p.status == states.ENROLLED or p.case_number:
                raise RuleViolation("status", f"already enrolled as case {p.case_number}")
            if p.status == states.SCREEN_FAILED:
                raise RuleViolation("status", "a screen failure cannot be enrolled")
            states.check(p.status, states.ENROLLED)
            used = Participant.objects.filter(case_number__isnull=False).count()
            if used >= limit:
                raise RuleViolation("case_number", f"the trial has enrolled all {limit} participants; no case number is left")
            number = next_case_number(p, protocol)
            when = enrolled_at or timezone.now()
            _not_future("enrolled_at", when)
            consent = p.consents.order_by("consented_at").first()
            if consent and when < consent.consented_at:
                raise RuleViolation("enrolled_at", "is before informed consent")
            if trial.state == "setup":
                # the first enrolment opens recruitment
                trial.state = "recruiting"
                trial.save(update_fields=["state", "changed_at"])
                audit.record(actor=actor, action="change", obj_type="trial_state", obj_id=1,
                             changes={"state": ["setup", "recruiting"]}, reason="first enrolment")
            p.case_number = number
            p.enrolled_at = when
            p.save(update_fields=["case_number", "enrolled_at", "updated_at"])
            audit.record(actor=actor, action="change", obj_type="participant", obj_id=p.pk, participant_id=p.pk,
                         changes={"case_number": [None, number], "enrolled_at": [None, when]},
                         reason=f"enrolled as case {number}", protocol_version=p.protocol_version.version)
            _set_status(p, states.ENROLLED, actor, f"enrolled as case {number}")
    except IntegrityError:
        raise RuleViolation("case_number", "another enrolment took this number at the same moment; try again") from None
    return p


def withdraw(*, actor, participant_id: int, withdrawn_on: date, category: str, details: str,
             adverse_event_id: int | None = None) -> Withdrawal:
    problems = Problems()
    with problems.check():
        details = _text("details", details)
    if category not in dict(Withdrawal.CATEGORIES):
        problems.add("category", f"must be one of {', '.join(dict(Withdrawal.CATEGORIES))}")
    with problems.check():
        if not isinstance(withdrawn_on, date):
            raise RuleViolation("withdrawn_on", "must be a date")
        _not_future("withdrawn_on", withdrawn_on)
    problems.raise_any()
    with transaction.atomic():
        assert_writable("withdrawal")
        assert_record_writable(participant_id, "", "end_of_study")
        p = _locked(participant_id)
        if p.status == states.WITHDRAWN:
            raise RuleViolation("status", "this participant has already withdrawn")
        states.check(p.status, states.WITHDRAWN)
        if withdrawn_on < p.prescreened_on:
            raise RuleViolation("withdrawn_on", "is before the pre-screening date")
        pv = active_version()
        w = Withdrawal.objects.create(participant=p, withdrawn_on=withdrawn_on, category=category, details=details,
                                      from_status=p.status, adverse_event_id=adverse_event_id, recorded_by=actor,
                                      protocol_version=pv)
        audit.record(actor=actor, action="create", obj_type="withdrawal", obj_id=w.pk, participant_id=p.pk,
                     changes={"category": [None, category], "details": [None, details],
                              "withdrawn_on": [None, withdrawn_on], "adverse_event_id": [None, adverse_event_id]},
                     reason=details, protocol_version=pv.version)
        _set_status(p, states.WITHDRAWN, actor, f"{category}: {details}")
    return w


def advance(*, actor, participant_id: int, target: str, reason: str) -> Participant:
    """Move a participant along the machine (used by allocation, visits and safety modules).
    A status change after the first save needs its reason (X-7.3)."""
    reason = _text("reason", reason)
    with transaction.atomic():
        assert_writable("participant status")
        assert_record_writable(participant_id)
        p = _locked(participant_id)
        _set_status(p, target, actor, reason)
    return p


# ---- record locks (X-7.5) ----------------------------------------------------------------------


def gettext(message: str) -> str:
    from django.utils.translation import gettext as translate

    return translate(message)


def _lock_target(participant_id, visit, form) -> tuple[str, str]:
    from .locks import check_target

    visit = "" if visit is None else visit
    form = "" if form is None else form
    if not isinstance(participant_id, int) or isinstance(participant_id, bool):
        raise RuleViolation("participant", "no such participant")
    check_target(participant_id, visit, form)
    return visit, form


def lock_record(*, actor, participant_id: int, visit: str = "", form: str = "", at: datetime | None = None):
    """The data manager locks a participant's casebook (visit and form ""), one visit (form "")
    or one form of a visit. Refused while work on the record is open (draft forms, open queries,
    adverse-event tasks, SAE reports to send), listing it; refused if the record is already
    locked. Audited in the same transaction."""
    from annulus.accounts.permissions import has

    from .locks import open_work
    from .models import RecordLock

    if not has(actor, "record.lock"):
        raise NotPermitted("record.lock")
    with transaction.atomic():
        assert_writable("record lock")
        p = _locked(participant_id)
        visit, form = _lock_target(p.pk, visit, form)
        # locked already, or covered by the lock of its visit or of the casebook: RecordLocked (409)
        # names the lock in force, who set it and since when
        assert_record_writable(p.pk, visit, form)
        work = open_work(p.pk, visit, form)
        if work:
            raise RuleViolation("lock", gettext("open work must be finished first: %(work)s") % {
                "work": "; ".join(work)})
        now = at or timezone.now()
        lock = RecordLock.objects.create(participant=p, visit=visit, form=form, locked_by=actor, locked_at=now)
        audit.record(actor=actor, action="create", obj_type="record_lock", obj_id=lock.pk, participant_id=p.pk,
                     changes={"level": lock.level, "visit": visit, "form": form, "locked": [False, True]},
                     protocol_version=p.protocol_version.version, when=now)
    return lock


def unlock_record(*, actor, participant_id: int, reason: str, visit: str = "", form: str = "",
                  at: datetime | None = None):
    """The data manager unlocks a record, giving the reason; the lock row is closed (kept)."""
    from annulus.accounts.permissions import has

    from .locks import record_name
    from .models import RecordLock

    if not has(actor, "record.lock"):
        raise NotPermitted("record.lock")
    reason = _text("reason", reason, min_len=5)
    with transaction.atomic():
        assert_writable("record unlock")
        p = _locked(participant_id)
        visit, form = _lock_target(p.pk, visit, form)
        lock = (RecordLock.objects.select_for_update().filter(participant=p, visit=visit, form=form,
                                                              unlocked_at__isnull=True).first())
        if lock is None:
            raise RuleViolation("lock", gettext("%(what)s is not locked") % {"what": record_name(visit, form)})
        now = at or timezone.now()
        lock.unlocked_by, lock.unlocked_at, lock.unlock_reason = actor, now, reason
        lock.save(update_fields=["unlocked_by", "unlocked_at", "unlock_reason"])
        audit.record(actor=actor, action="change", obj_type="record_lock", obj_id=lock.pk, participant_id=p.pk,
                     changes={"level": lock.level, "visit": visit, "form": form, "locked": [True, False]},
                     reason=reason, protocol_version=p.protocol_version.version, when=now)
    return lock
