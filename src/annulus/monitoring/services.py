"""Writes of monitoring: source-data verification marks (the monitor) and review findings (the
auditor). Each checks the role, calls the database-lock guard first inside its transaction and
writes its audit event in the same transaction; nothing is changed or deleted afterwards except a
finding's resolution, which is audited with its old and new state."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annulus.accounts.permissions import require
from annulus.audit import services as audit
from annulus.errors import Problems, RuleViolation
from annulus.participants.models import Participant
from annulus.participants.selectors import scoped
from annulus.trial.lock import assert_writable

from . import plan as sdv_plan
from . import selectors
from .models import ReviewFinding, SdvMark

TEXT_MAX = 4000


def _participant(participant_id, actor) -> Participant:
    """The participant; one of a site ``actor`` is not scoped to is answered as unknown."""
    try:
        return scoped(actor, Participant.objects, "").select_related("protocol_version").get(pk=int(participant_id))
    except (Participant.DoesNotExist, TypeError, ValueError):
        raise RuleViolation("participant", "no such participant") from None


def _address(points, visit: str, form: str, record: int, item: str) -> list:
    """The data points at this address (one item, or every item of the form's record), or the
    field that names what does not exist."""
    in_visit = [p for p in points if p.visit == visit]
    if not in_visit:
        raise RuleViolation("visit", f"no data recorded at visit '{visit}'")
    in_form = [p for p in in_visit if p.form == form]
    if not in_form:
        raise RuleViolation("form", f"no form '{form}' recorded at this visit")
    in_record = [p for p in in_form if p.record == record]
    if not in_record:
        raise RuleViolation("record", f"no record {record} in form '{form}'")
    if not item:
        return in_record
    found = [p for p in in_record if p.item == item]
    if not found:
        raise RuleViolation("item", f"no item '{item}' in form '{form}'")
    return found


def verify(*, actor, participant_id, visit: str, form: str, record: int = 0, item: str = "") -> list[SdvMark]:
    """Mark an item (or, with ``item`` empty, every item of the form's record) verified against
    source: each mark keeps the record's revision and a SHA-256 of the value verified. Items whose
    current value is already verified are left as they are; if nothing is left, it is refused."""
    require(actor, "sdv.verify")
    with transaction.atomic():
        assert_writable("source-data verification")
        p = _participant(participant_id, actor)
        try:
            record = int(record or 0)
        except (TypeError, ValueError):
            raise RuleViolation("record", "must be a whole number") from None
        points = selectors.evaluate([p.pk])[p.pk]
        targets = [t for t in _address(points, visit or "", form or "", record, item or "") if t.state != "verified"]
        if not targets:
            raise RuleViolation("item" if item else "form", "already verified (the current value is the one verified)")
        now = timezone.now()
        marks = SdvMark.objects.bulk_create([
            SdvMark(participant=p, visit=t.visit, form=t.form, record=t.record, item=t.item, revision=t.revision,
                    value_hash=sdv_plan.value_hash(t.value), verified_by=actor, verified_at=now) for t in targets])
        audit.record(actor=actor, action="verify", obj_type="sdv_mark", obj_id=f"{p.pk}:{visit}:{form}:{record}",
                     participant_id=p.pk, protocol_version=p.protocol_version.version, when=now,
                     changes={"visit": visit, "form": form, "record": record,
                              "items": {t.item: {"revision": t.revision, "value_hash": sdv_plan.value_hash(t.value),
                                                 "was": t.state} for t in targets}})
    return marks


def record_finding(*, actor, participant_id, category: str, text: str, visit: str = "", form: str = "",
                   record: int = 0, item: str = "") -> ReviewFinding:
    """The auditor's finding on a participant, or on one of its visits, forms or items."""
    require(actor, "review.record")
    with transaction.atomic():
        assert_writable("review finding")
        problems = Problems()
        p = None
        with problems.check():
            p = _participant(participant_id, actor)
        text = (text or "").strip()
        if not text:
            problems.add("text", "describe the finding")
        elif len(text) > TEXT_MAX:
            problems.add("text", f"at most {TEXT_MAX} characters")
        if category not in dict(ReviewFinding.CATEGORIES):
            problems.add("category", "choose a category")
        try:
            record = int(record or 0)
        except (TypeError, ValueError):
            problems.add("record", "must be a whole number")
            record = 0
        visit, form, item = visit or "", form or "", item or ""
        if record and not form:
            problems.add("record", "a record is named within its form")
        if p is not None and (visit or form or item):
            if item and not form:
                problems.add("form", "an item is named within its form")
            elif form:
                with problems.check():
                    _address(selectors.data_points([p.pk])[p.pk], visit, form, record, item)
            elif visit and not any(pt.visit == visit for pt in selectors.data_points([p.pk])[p.pk]):
                from annulus.visits.models import Visit, parse_visit_key

                vid, number = parse_visit_key(visit)
                if not Visit.objects.filter(participant=p, visit_id=vid, number=number).exists():
                    problems.add("visit", f"no data recorded at visit '{visit}'")
        problems.raise_any()
        now = timezone.now()
        f = ReviewFinding.objects.create(participant=p, visit=visit, form=form, record=record, item=item,
                                         category=category, text=text, raised_by=actor, raised_at=now)
        audit.record(actor=actor, action="create", obj_type="review_finding", obj_id=f.pk, participant_id=p.pk,
                     protocol_version=p.protocol_version.version, when=now,
                     changes={"visit": visit, "form": form, "record": record, "item": item, "category": category,
                              "text": text, "status": f.status})
    return f


def resolve_finding(*, actor, finding_id, resolution: str) -> ReviewFinding:
    require(actor, "review.record")
    with transaction.atomic():
        assert_writable("review finding")
        try:
            f = scoped(actor, ReviewFinding.objects).select_for_update().select_related("participant__protocol_version").get(
                pk=int(finding_id))
        except (ReviewFinding.DoesNotExist, TypeError, ValueError):
            raise RuleViolation("finding", "no such finding") from None
        resolution = (resolution or "").strip()
        problems = Problems()
        if f.status != ReviewFinding.OPEN:
            problems.add("finding", "already resolved")
        if not resolution:
            problems.add("resolution", "say how the finding was resolved")
        elif len(resolution) > TEXT_MAX:
            problems.add("resolution", f"at most {TEXT_MAX} characters")
        problems.raise_any()
        now = timezone.now()
        f.status, f.resolution, f.resolved_by, f.resolved_at = ReviewFinding.RESOLVED, resolution, actor, now
        f.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit.record(actor=actor, action="change", obj_type="review_finding", obj_id=f.pk,
                     participant_id=f.participant_id, protocol_version=f.participant.protocol_version.version,
                     when=now, reason=resolution,
                     changes={"status": [ReviewFinding.OPEN, ReviewFinding.RESOLVED], "resolution": ["", resolution]})
    return f
