"""Reads of the casebook: its canonical content, its hash and the state of its signature.

The casebook is everything collected about one participant, as a canonical, deterministic dict
(keys sorted when hashed, dates as ISO text, times in UTC, decimals as text): identification
(without name or phone), consent, screening evidence, the eligibility decision, the liposuction,
the transplantation record, every visit with each form's current answers and computed scores,
adverse events, SAE reports, emergency-unblinding records and the end-of-study status. It never
holds an allocation arm, group label or treatment: blinded investigators sign it, and every role
that reads the participant may read it.

Several participants are read together in a fixed number of queries (``contents``), so the
signature status of a whole trial costs no query per participant.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.utils import timezone

from .models import CasebookSignature

MEANING = "I approve the data in this casebook as complete and accurate"
SIGNED, INVALIDATED, UNSIGNED = "signed", "invalidated", "unsigned"
# the content's section of the adverse-event log (a key the signatures hash; not a form of the protocol)
ADVERSE_EVENTS = "adverse_events"


# ---- canonical values ---------------------------------------------------------------------

def _v(value):
    """A value as it enters the canonical casebook."""
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, dict):
        return {str(k): _v(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_v(v) for v in value]
    return value


def canonical_json(content) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_of(content) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _name(user) -> str:
    if user is None:
        return ""
    return user.get_full_name().strip() or user.username


# ---- the content ----------------------------------------------------------------------------

def contents(participant_ids) -> dict[int, dict]:
    """The canonical casebook of each participant (id -> dict), in a fixed number of queries.
    One participant's casebook is built from the rows its page reads anyway (``read_once``), so
    its page checks the signature without reading them twice; the result is the same."""
    from annulus.participants.models import Participant

    ids = sorted({int(i) for i in participant_ids})
    people = {p.pk: p for p in Participant.objects.filter(pk__in=ids)}
    ids = [i for i in ids if i in people]
    rows = _rows_of_one(ids[0]) if len(ids) == 1 else _rows_of_many(ids)
    return _assemble(ids, people, *rows)


def _rows_of_many(ids):
    from annulus.allocation import selectors as blind
    from annulus.participants.models import Consent, EligibilityDecision, Evidence, Withdrawal
    from annulus.safety.models import AdverseEvent, SaeReport
    from annulus.visits.models import FormRecord, Liposuction, Visit

    by = defaultdict(lambda: defaultdict(list))
    for c in Consent.objects.filter(participant_id__in=ids).select_related("taken_by").order_by("consented_at", "id"):
        by[c.participant_id]["consent"].append(c)
    for e in Evidence.objects.filter(participant_id__in=ids, superseded=False).select_related("entered_by").order_by("id"):
        by[e.participant_id]["evidence"].append(e)
    decisions = {}
    for d in (EligibilityDecision.objects.filter(participant_id__in=ids, superseded=False)
              .select_related("decided_by").order_by("id")):
        decisions[d.participant_id] = d
    withdrawals = {w.participant_id: w for w in Withdrawal.objects.filter(participant_id__in=ids)}
    lipos = {}
    for lp in Liposuction.objects.filter(participant_id__in=ids, superseded=False).order_by("id"):
        lipos[lp.participant_id] = lp
    transplants = blind.transplant_records(ids)
    forms = defaultdict(list)
    for f in FormRecord.objects.filter(participant_id__in=ids).order_by("id"):
        forms[f.visit_id].append(f)
    for v in Visit.objects.filter(participant_id__in=ids).order_by("id"):
        by[v.participant_id]["visits"].append(v)
    for ae in AdverseEvent.objects.filter(participant_id__in=ids).order_by("number", "id"):
        by[ae.participant_id]["aes"].append(ae)
    for r in (SaeReport.objects.filter(adverse_event__participant_id__in=ids)
              .select_related("adverse_event", "sent_by").order_by("id")):
        by[r.adverse_event.participant_id]["saes"].append(r)
    unblinded = set(blind.emergency_unblinded_participant_ids()) & set(ids)
    return by, decisions, withdrawals, lipos, transplants, forms, unblinded


def _rows_of_one(pid):
    """``_rows_of_many([pid])``, from the readers a participant's page shares."""
    from annulus.allocation import selectors as blind
    from annulus.participants import selectors as people
    from annulus.safety.models import SaeReport
    from annulus.safety.selectors import adverse_events_of
    from annulus.visits.selectors import current_liposuction, forms_of, visits_of

    by = defaultdict(lambda: defaultdict(list))
    got = by[pid]
    got["consent"] = list(people.consents_of(pid))
    got["evidence"] = [e for e in people.evidence_of(pid) if not e.superseded]
    current = [d for d in people.decisions_of(pid) if not d.superseded]
    decisions = {pid: current[-1]} if current else {}
    w = people.withdrawal_of(pid)
    withdrawals = {pid: w} if w is not None else {}
    lp = current_liposuction(pid)
    lipos = {pid: lp} if lp is not None else {}
    transplants = blind.transplant_records_of_one(pid)
    forms = defaultdict(list)
    for f in forms_of(pid):
        forms[f.visit_id].append(f)
    got["visits"] = list(visits_of(pid))
    got["aes"] = sorted(adverse_events_of(pid), key=lambda ae: (ae.number, ae.id))
    if got["aes"]:
        got["saes"] = list(SaeReport.objects.filter(adverse_event__participant_id=pid)
                           .select_related("adverse_event", "sent_by").order_by("id"))
    unblinded = {pid} if blind.emergency_unblindings_of(pid) else set()
    return by, decisions, withdrawals, lipos, transplants, forms, unblinded


def _assemble(ids, people, by, decisions, withdrawals, lipos, transplants, forms, unblinded) -> dict[int, dict]:
    from annulus.allocation import selectors as blind
    from annulus.safety import causality
    from annulus.trial.selectors import active_protocol

    # each causality to a procedure the protocol names is an item of its own, causality_<id>
    protocol = active_protocol()

    out = {}
    for pid in ids:
        p, got = people[pid], by[pid]
        d, w, lp = decisions.get(pid), withdrawals.get(pid), lipos.get(pid)
        out[pid] = {
            "participant": {
                "screening_number": p.screening_number, "case_number": p.case_number or "",
                "initials": p.initials, "sex": p.sex, "recruitment_source": p.recruitment_source,
                "prescreened_on": _v(p.prescreened_on), "enrolled_at": _v(p.enrolled_at),
            },
            "consent": [{"version": c.consent_version, "consented_at": _v(c.consented_at),
                         "taken_by": c.taken_by.username} for c in got["consent"]],
            "screening_evidence": {e.field: {"value": _v(e.value), "collected_on": _v(e.collected_on),
                                             "entered_by": e.entered_by.username} for e in got["evidence"]},
            "eligibility": None if d is None else {
                "outcome": d.outcome, "failing": list(d.failing), "decided_at": _v(d.decided_at),
                "decided_by": d.decided_by.username,
                "criteria": {c["id"]: c.get("passed") for c in d.criteria},
            },
            "liposuction": None if lp is None else {
                "performed_on": _v(lp.performed_on), "fat_volume_ml": _v(lp.fat_volume_ml),
                "anaesthesia": lp.anaesthesia, "observation_hours": _v(lp.observation_hours),
                "complications": lp.complications,
            },
            "transplant": None if pid not in transplants else _v(transplants[pid]),
            "visits": {v.key: {
                "visit": v.visit_id, "outcome": v.outcome, "visit_date": _v(v.visit_date), "reason": v.reason,
                "forms": {f.form_id: {"state": f.state, "revision": f.revision, "collected_at": _v(f.collected_at),
                                      "items": _v(f.items), "computed": _v(f.computed)} for f in forms[v.pk]},
            } for v in got["visits"]},
            ADVERSE_EVENTS: {f"AE{ae.number}": {
                "term": ae.term, "meddra_pt_code": ae.meddra_pt_code, "meddra_version": ae.meddra_version,
                "description": ae.description, "onset_at": _v(ae.onset_at), "end_at": _v(ae.end_at),
                "serious": ae.serious, "serious_criteria": list(ae.serious_criteria), "grade": ae.grade,
                **causality.flat(ae, protocol), "expectedness": ae.expectedness,
                "action_taken": ae.action_taken, "outcome": ae.outcome,
                "first_knowledge_at": _v(ae.first_knowledge_at), "revision": ae.revision,
            } for ae in got["aes"]},
            "sae_reports": {f"AE{r.adverse_event.number}/{r.recipient}{'/expedited' if r.expedited else ''}": {
                "recipient": r.recipient_name, "due_at": _v(r.due_at), "sent_at": _v(r.sent_at),
                "sent_by": r.sent_by.username if r.sent_by else "", "sent_to": r.sent_to, "sent_method": r.sent_method,
                "acknowledged_at": _v(r.acknowledged_at), "acknowledged_by": r.acknowledged_by,
                "not_required_since": _v(r.not_required_since),
            } for r in got["saes"]},
            "emergency_unblindings": [] if pid not in unblinded else [
                {"number": u.number, "at": _v(u.at), "by": u.requested_by.username, "reason": u.reason, "scope": u.scope}
                for u in blind.emergency_unblindings_of(pid)],
            "end_of_study": {
                "status": p.status,
                "withdrawal": None if w is None else {"withdrawn_on": _v(w.withdrawn_on), "category": w.category,
                                                      "details": w.details, "adverse_event_id": w.adverse_event_id},
            },
        }
    return out


def casebook_content(participant) -> dict:
    """The canonical casebook of one participant (hashable; also what the PDF prints)."""
    pid = getattr(participant, "pk", participant)
    return contents([pid])[pid]


def content_hash(participant) -> str:
    """SHA-256 of the participant's canonical casebook (sorted-key JSON, UTF-8)."""
    return hash_of(casebook_content(participant))


# ---- signatures -----------------------------------------------------------------------------

def latest_signatures(participant_ids=None) -> dict[int, CasebookSignature]:
    """The signature in force (the newest) of each signed participant, in one query (without
    the signed content, which only the diff of one casebook needs)."""
    from django.db.models import Max

    newest = CasebookSignature.objects.values("participant_id").annotate(last=Max("id")).values("last")
    if participant_ids is not None:
        newest = newest.filter(participant_id__in=list(participant_ids))
    rows = CasebookSignature.objects.filter(pk__in=newest).select_related("signed_by").defer("content")
    return {s.participant_id: s for s in rows}


def signature_status(participant_ids=None, latest: dict | None = None) -> dict[int, str]:
    """participant id -> "signed" | "invalidated" | "unsigned": signed when the newest signature's
    hash is the casebook's current hash, invalidated when the casebook changed after it. Every
    participant with informed consent (``participant_ids`` None) or each id given; a fixed number
    of queries whatever their number. ``latest``: their ``latest_signatures`` when already read."""
    from annulus.participants.models import Participant

    if participant_ids is None:
        ids = list(Participant.objects.filter(consents__isnull=False).distinct().values_list("pk", flat=True))
    else:
        ids = [int(i) for i in participant_ids]
    latest = latest_signatures(ids) if latest is None else latest
    current = contents(list(latest)) if latest else {}
    out = {}
    for pid in ids:
        s = latest.get(pid)
        if s is None:
            out[pid] = UNSIGNED
        else:
            out[pid] = SIGNED if pid in current and hash_of(current[pid]) == s.content_hash else INVALIDATED
    return out


def differences(old, new, path=()) -> list[tuple[tuple, object, object]]:
    """What changed between two casebooks: (path, old value, new value) for every leaf that
    differs (a section or record added or removed is one entry)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            if k not in old:
                out.append(((*path, k), None, new[k]))
            elif k not in new:
                out.append(((*path, k), old[k], None))
            else:
                out += differences(old[k], new[k], (*path, k))
        return out
    return [] if old == new else [(path, old, new)]


def status_of(participant) -> dict:
    """The casebook's signature as the page, the PDF and the API show it: the state, the
    signature in force (who, printed name, when, meaning, the hash signed), the current hash and,
    when invalidated, what changed after signing."""
    content = casebook_content(participant)
    current = hash_of(content)
    s = (CasebookSignature.objects.filter(participant_id=participant.pk).select_related("signed_by")
         .order_by("-id").first())
    out = {"content": content, "content_hash": current, "signature": s, "changes": []}
    if s is None:
        out["state"] = UNSIGNED
    elif s.content_hash == current:
        out["state"] = SIGNED
    else:
        out["state"] = INVALIDATED
        out["changes"] = differences(s.content, content)
    out["history"] = list(CasebookSignature.objects.filter(participant_id=participant.pk)
                          .select_related("signed_by").order_by("-id").defer("content"))
    return out


# ---- the eligibility decision's signature ---------------------------------------------------

def _evidence_at_signing(decision) -> dict:
    found = {}
    for c in decision.criteria:
        for field, e in (c.get("evidence") or {}).items():
            found[field] = e.get("value")
    return found


def eligibility_signature(participant) -> dict | None:
    """The eligibility decision's electronic signature, manifested: who signed it (printed
    name), when, its meaning, and the SHA-256 of the evidence it was decided on (as kept in the
    decision), with whether the current evidence still has those values."""
    from annulus.participants.selectors import decisions_of, evidence_of
    from annulus.participants.services import ELIGIBILITY_SIGNATURE

    d = next(iter(reversed(decisions_of(participant.pk))), None)
    if d is None:
        return None
    signed = _evidence_at_signing(d)
    now = {e.field: e.value for e in evidence_of(participant.pk) if not e.superseded and e.field in signed}
    return {"decision": d, "outcome": d.outcome, "signer": d.decided_by.username, "signer_name": _name(d.decided_by),
            "signed_at": d.decided_at, "meaning": ELIGIBILITY_SIGNATURE, "superseded": d.superseded,
            "evidence_hash": hash_of(_v(signed)), "evidence_unchanged": _v(now) == _v(signed)}


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def shown(value) -> str:
    """A canonical value as a page shows it: times in local time (Asia/Shanghai), yes/no, lists."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        from django.utils.translation import gettext

        return gettext("yes") if value else gettext("no")
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            return timezone.localtime(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {shown(v)}" for k, v in value.items()) or "—"
    return str(value)


# ---- the data against the audit trail (``annulus audit verify --data``) -------------------------

# a signature's time is taken a moment before its event is written, in the same transaction
SIGNED_BEFORE_EVENT = 300  # seconds at most


def audit_mismatches(participant_ids) -> list[str]:
    """Each casebook signature of ``participant_ids`` that differs from what the audit trail
    records for it, one line each: the content hash signed, the signer (and the printed name), the
    meaning, and the time (at most ``SIGNED_BEFORE_EVENT`` seconds before its event's, which is
    written in the same transaction); and the signed content must still hash to the content hash
    (the trail keeps the hash, not the content)."""
    from annulus.audit.selectors import differences, new_value, recorded, screening_numbers

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    trail = {}
    for e in recorded(["casebook_signature"], ids):
        mine = trail.setdefault(e.object_id, {})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        mine.update(participant=e.participant_id, actor=e.actor, timestamp=e.timestamp)
    out = []
    rows = CasebookSignature.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "content_hash", "signer_name", "meaning", "signed_by__username", "signed_at", "content")
    for pk, pid, digest, name, meaning, signer, signed_at, content in rows:
        where = f"participant {numbers.get(pid, pid)}, casebook signature {pk}"
        audited = trail.pop(str(pk), None)
        if audited is None or audited["participant"] != pid:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [("content_hash", digest, audited.get("content_hash")),
                                   ("signer_name", name, audited.get("signer_name")),
                                   ("meaning", meaning, audited.get("meaning")),
                                   ("signed_by", signer, audited["actor"])])
        try:
            event_at = datetime.fromisoformat(audited["timestamp"])
        except ValueError:
            event_at = None
        if event_at is None or not 0 <= (event_at - signed_at).total_seconds() <= SIGNED_BEFORE_EVENT:
            out.append(f"{where}: signed_at is {signed_at.astimezone(dt_timezone.utc).isoformat()!r} in the "
                       f"database but the audit trail records the signature at {audited['timestamp']!r}")
        if hash_of(content) != digest:
            out.append(f"{where}: the signed content in the database does not hash to its content_hash")
    out += [f"casebook signature {pk}: in the audit trail but no longer in the database" for pk in trail]
    return out
