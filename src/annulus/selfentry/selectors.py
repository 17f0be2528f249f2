"""Reading self-entry links: by token (through its hash), the questions a participant answers,
and the links of a visit for the coordinator. Nothing here reads the allocation."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from django.utils import timezone
from django.utils.translation import get_language

from annulus.instruments.items import LINE, SCALE
from annulus.visits import crf
from annulus.visits import selectors as visit_selectors
from annulus.visits.models import parse_visit_key

from .models import SelfEntryLink



def patient_forms(protocol, among=None) -> list[str]:
    """The protocol's patient-reported forms (those whose instrument declares a ``SelfReport``),
    in the order of the schedule's forms, which is the order a participant answers them; of
    ``among`` (a visit's forms) when given."""
    out = []
    for form in protocol.schedule.forms:
        if not form.instrument or form.panel or form.procedure or (among is not None and form.id not in among):
            continue
        if crf.spec_for(protocol, form.id).patient_reported:
            out.append(form.id)
    return out


def token_hash(token: str) -> str:
    return hashlib.sha256(str(token or "").encode("utf-8", "replace")).hexdigest()


def link_by_token(token: str, *, lock: bool = False) -> SelfEntryLink | None:
    token = str(token or "")
    if not 20 <= len(token) <= 100:
        token = ""  # hashed all the same, so that a malformed token costs the same as a real one
    qs = SelfEntryLink.objects.select_related("participant", "visit", "visit__protocol_version")
    if lock:
        qs = qs.select_for_update(of=("self",))
    link = qs.filter(token_hash=token_hash(token)).first()
    return link if token else None


def visit_of(link: SelfEntryLink):
    """The visit row of the link: the one it was issued for, or, for a link the schedule issued
    before the visit was recorded, the visit recorded since (None while there is none)."""
    if link.visit_id is not None:
        return link.visit
    return visit_selectors.get_visit(link.participant_id, link.visit_key)


def usable(link: SelfEntryLink, now: datetime | None = None) -> bool:
    """Whether the link still works: not revoked, not used, not expired, the visit attended or
    not yet recorded, the participant still in the trial."""
    now = now or timezone.now()
    if link.revoked_at is not None or link.used_at is not None or link.expires_at <= now:
        return False
    if link.participant.status not in visit_selectors.ACTIVE:
        return False
    visit = visit_of(link)
    return visit is None or visit.outcome == "attended"


def live_links(participant_ids=None, now: datetime | None = None):
    """Links that may still be answered (not used, revoked or expired), of ``participant_ids``."""
    now = now or timezone.now()
    qs = SelfEntryLink.objects.filter(used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)
    if participant_ids is not None:
        qs = qs.filter(participant_id__in=list(participant_ids))
    return qs


def current_card(participant_id: int):
    from .models import CardCode

    return CardCode.objects.filter(participant_id=participant_id, replaced_at__isnull=True).first()


def contact_of(participant_id: int):
    """The participant's current contact for sending (the latest row), or None."""
    from .models import Contact

    return Contact.objects.filter(participant_id=participant_id).order_by("-id").first()


def patient_items(protocol, form_id: str):
    """The items of ``form_id`` the participant answers, as its instrument declares them (the
    whole form, or the item groups that are the patient's to tell)."""
    return list(crf.spec_for(protocol, form_id).patient_items())


def state_of(link: SelfEntryLink, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if link.used_at is not None:
        return "used"
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    if link.participant.status not in visit_selectors.ACTIVE:
        return "void"
    return "issued"


def state_label(state: str) -> str:
    from django.utils.translation import gettext as _

    return {"used": _("questionnaire done"), "expired": _("expired"), "void": _("no longer valid"),
            "issued": _("issued, not yet answered"), "revoked": _("revoked")}[state]


# a link's state as the UI's status colours: done green, waiting amber, void red, others plain
STATE_CSS = {"used": "completed", "issued": "due", "void": "bad", "expired": "", "revoked": ""}


def links_of(participant_id: int, visit_key: str, protocol=None) -> list[dict]:
    """The links of one participant's visit (issued before or after the visit was recorded)."""
    from annulus.trial.selectors import active_protocol

    now = timezone.now()
    protocol = protocol or active_protocol()
    rows = []
    for link in (SelfEntryLink.objects.filter(participant_id=participant_id, visit_key=visit_key)
                 .select_related("participant", "issued_by", "revoked_by").order_by("id")):
        state = state_of(link, now)
        names = [visit_selectors.form_name(protocol, f) for f in link.instruments]
        rows.append({"link": link, "state": state, "label": state_label(state), "css": STATE_CSS[state],
                     "names": names})
    return rows


def links_of_visit(visit) -> list[dict]:
    from annulus.trial.selectors import protocol_for

    return links_of(visit.participant_id, visit.key, protocol_for(visit.protocol_version))


# ---- the questionnaire of each visit: done, waiting, not issued -------------------------------

DONE, ENTERED, ISSUED, NOT_ISSUED = "done", "entered", "issued", "not_issued"
STATUS_CSS = {DONE: "completed", ENTERED: "completed", ISSUED: "due", NOT_ISSUED: ""}


def status_label(status: str) -> str:
    from django.utils.translation import gettext as _

    return {DONE: _("completed by participant"), ENTERED: _("entered by staff"),
            ISSUED: _("link issued, not completed"), NOT_ISSUED: _("no link issued")}[status]


def questionnaire_statuses(pairs, now: datetime | None = None, among=None) -> dict[tuple[int, str], dict]:
    """For (participant id, visit key) pairs: the questionnaire's status (``DONE`` the participant
    sent the answers through a link, ``ENTERED`` every patient-reported form is complete otherwise,
    ``ISSUED`` a link is waiting, ``NOT_ISSUED``), its label and status colour, and the waiting
    link (for when it expires). Two queries whatever the number of pairs; ``among``, a query of
    participants holding those of the pairs, is read instead of the pairs' ids."""
    from annulus.trial.selectors import active_protocol
    from annulus.visits.models import FormRecord

    now = now or timezone.now()
    patient = patient_forms(active_protocol())
    pairs = {(int(pid), str(key)) for pid, key in pairs}
    ids = {pid for pid, _ in pairs} if among is None else among.values("pk")
    used, live = set(), {}
    for link in SelfEntryLink.objects.filter(participant_id__in=ids).order_by("id"):
        pair = (link.participant_id, link.visit_key)
        if link.used_at is not None:
            used.add(pair)
        elif link.revoked_at is None and link.expires_at > now:
            live[pair] = link
    complete: dict[tuple[int, str], set] = {}
    expected: dict[tuple[int, str], set] = {}
    # only the visits asked about (never an empty list, so that the query runs either way)
    visit_ids = sorted({parse_visit_key(key)[0] for _, key in pairs}) or [""]
    for pid, visit_id, number, forms, form_id, state in (
            FormRecord.objects.filter(participant_id__in=ids, form_id__in=patient, visit__visit_id__in=visit_ids)
            .values_list("participant_id", "visit__visit_id", "visit__number", "visit__forms", "form_id", "state")):
        key = f"u{number}" if visit_id == "unscheduled" else visit_id
        if (pid, key) not in expected:
            expected[(pid, key)] = {f for f in forms if f in patient}
        if state in ("complete", "changed"):
            complete.setdefault((pid, key), set()).add(form_id)
    out = {}
    for pair in pairs:
        if pair in used:
            status = DONE
        elif pair in expected and expected[pair] and expected[pair] <= complete.get(pair, set()):
            status = ENTERED
        elif pair in live:
            status = ISSUED
        else:
            status = NOT_ISSUED
        out[pair] = {"status": status, "label": status_label(status), "css": STATUS_CSS[status],
                     "link": live.get(pair)}
    return out


def to_remind(*, participant_ids=None) -> list[dict]:
    """Participants to remind of a questionnaire: a link is waiting (issued, not used, revoked or
    expired) and the questionnaire is not done. Once the answers are in, the row is gone."""
    from annulus.trial.selectors import active_protocol

    now = timezone.now()
    links = list(live_links(participant_ids, now).filter(participant__status__in=visit_selectors.ACTIVE)
                 .select_related("participant").order_by("expires_at", "id"))
    statuses = questionnaire_statuses({(link.participant_id, link.visit_key) for link in links}, now)
    protocol = active_protocol()
    names = {v.id: v.name.get(get_language()) for v in protocol.schedule.visits}
    rows, seen = [], set()
    for link in links:
        pair = (link.participant_id, link.visit_key)
        if pair in seen or statuses[pair]["status"] != ISSUED:
            continue
        seen.add(pair)
        rows.append({"participant": link.participant, "visit_key": link.visit_key,
                     "visit_name": names.get(link.visit_key, link.visit_key), "link": link,
                     "days_left": (timezone.localdate(link.expires_at) - timezone.localdate(now)).days})
    return rows


def done_visits(participant_ids) -> set[tuple[int, int]]:
    """(participant id, visit row id) of visits whose questionnaire the participant has submitted."""
    return set(SelfEntryLink.objects.filter(participant_id__in=list(participant_ids), used_at__isnull=False,
                                            visit__isnull=False).values_list("participant_id", "visit_id"))


_SCORE_PREFIX = re.compile(r"^[\u2212+-]?\d+\s*(?:[\u2013-]\s*)?")
_NUMBERING = re.compile(r"^\d+\.\s*")


def _choice_words(ask, value: str, en: str, zh: str, zh_wanted: bool) -> str:
    pair = ask.choices.get(value) if ask else None
    if pair:
        return pair[1] if zh_wanted else pair[0]
    text = zh if zh_wanted else en
    return _SCORE_PREFIX.sub("", text) or text


def _scale(item) -> list[tuple[str, str]]:
    """The buttons of a numeric scale: each whole number from the item's ``min`` to its ``max``."""
    return [(str(n), str(n)) for n in range(int(item.min), int(item.max) + 1)]


def questions(protocol, instruments, language: str) -> list[dict]:
    """The questions of a link in the order asked: one dict per question with its form, item,
    field name (``form-item``), the question and its lead and choices in ``language`` in the
    participant's words where the instrument declares them (``FormSpec.asks``), else the eCRF's
    label without its number and the choices without their scores; how it is asked (``way``: a
    list of choices, the 100 mm line or a row of numbered buttons, with the words of its ends)
    and the form's introduction for participants, as its instrument declares them
    (``FormSpec.self_report``) unless the protocol's form has its own (``self_report_intro``)."""
    zh_wanted = (language or "").lower().startswith("zh")
    forms = {f.id: f for f in protocol.schedule.forms}
    out = []
    for form_id in instruments:
        spec = crf.spec_for(protocol, form_id)
        report = spec.self_report
        own = getattr(forms.get(form_id), "self_report_intro", None)  # the protocol's words, if it has them
        intro = own.get(language) if own is not None else report.text("intro", language)
        items = list(spec.patient_items())
        for n, item in enumerate(items, 1):
            ask = spec.asks.get(item.id)
            way = report.way
            if way == SCALE:
                choices = _scale(item)
            else:
                choices = [(v, _choice_words(ask, v, en, zh, zh_wanted)) for v, en, zh in item.choices]
            label = (report.text("question", language) or (ask.text(language) if ask else "")
                     or _NUMBERING.sub("", item.label(language)))
            line = way == LINE  # the 100 mm line: its question is in the legend, its words on the line
            out.append({"form": form_id, "item": item, "name": f"{form_id}-{item.id}", "first": n == 1,
                        "label": "" if line else label, "question": label, "line": line, "way": way,
                        "scale": way == SCALE, "intro": intro,
                        "low": report.text("low", language), "high": report.text("high", language),
                        "line_name": report.text("name", language), "number_label": report.text("number", language),
                        "unmarked": report.text("unmarked", language),
                        "lead": ask.lead(language) if ask else "",
                        "number_in_form": n, "of_form": len(items), "choices": choices, "kind": item.kind,
                        "required": item.required})
    return out


def form_and_item(protocol, field: str) -> tuple[str, str]:
    """("odi", "s3") from a violation's field "odi.s3"."""
    form_id, _, item_id = str(field).partition(".")
    return form_id, item_id


def source_blocked(source: str, now: datetime | None = None) -> bool:
    """Whether the address is refused for asking for too many links that do not work."""
    from .models import GuessCount

    now = now or timezone.now()
    return GuessCount.objects.filter(source=str(source or "?")[:64], blocked_until__gt=now).exists()


def open_questionnaires(*, today=None, people=None) -> list[dict]:
    """The scheduled visits with a patient-reported questionnaire whose window is open ``today``
    (not recorded as missed), of the participants in the trial (or of ``people``, a query of
    participants), each with its questionnaire's status: one dict per visit with the
    participant, the slot and ``questionnaire_statuses``' entry; ordered by participant."""
    from annulus.trial.selectors import active_protocol

    today = today or timezone.localdate()
    chosen = visit_selectors.open_window_people(today, people=people)
    patient = patient_forms(active_protocol())
    wanted = []
    for p, s in visit_selectors.open_window_slots(today, people=people):
        forms = s.record.forms if s.record is not None else s.forms
        if not any(f in forms for f in patient):
            continue
        if s.record is not None and s.record.outcome != "attended":
            continue
        wanted.append((p, s))
    # read among the participants chosen (a query, not their ids): the same two queries whether
    # or not a window is open today
    statuses = questionnaire_statuses([(p.pk, s.key) for p, s in wanted], among=chosen)
    return [{"participant": p, "slot": s, **statuses[(p.pk, s.key)]} for p, s in wanted]


def protocol_of(link: SelfEntryLink):
    """The protocol the link's questions come from: that of its visit, or the active one for a
    visit not yet recorded (it will be recorded under it)."""
    from annulus.trial.selectors import active_protocol, protocol_for

    visit = visit_of(link)
    return protocol_for(visit.protocol_version) if visit is not None else active_protocol()
