"""Reading self-entry links: by token (through its hash), the questions a participant answers,
and the links of a visit for the coordinator. Nothing here reads the allocation."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from django.utils import timezone

from annulus.visits import crf
from annulus.visits import selectors as visit_selectors

from .models import SelfEntryLink

# the patient-reported forms, in the order a participant answers them
PATIENT_FORMS = ("vas", "odi", "joa", "sf36")
# the JOA items the patient answers (the signs are the investigator's examination)
JOA_PATIENT_GROUPS = ("subjective", "adl", "bladder")


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


def usable(link: SelfEntryLink, now: datetime | None = None) -> bool:
    """Whether the link still works: not used, not expired, the visit attended, the participant
    still in the trial."""
    now = now or timezone.now()
    return (link.used_at is None and link.expires_at > now and link.visit.outcome == "attended"
            and link.participant.status in visit_selectors.ACTIVE)


def patient_items(protocol, form_id: str):
    """The items of ``form_id`` the participant answers (the whole form but for JOA)."""
    spec = crf.spec_for(protocol, form_id)
    if form_id == "joa":
        return [i for i in spec.items if i.group in JOA_PATIENT_GROUPS]
    return list(spec.items)


def state_of(link: SelfEntryLink, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if link.used_at is not None:
        return "used"
    if link.expires_at <= now:
        return "expired"
    if link.participant.status not in visit_selectors.ACTIVE:
        return "void"
    return "issued"


def state_label(state: str) -> str:
    from django.utils.translation import gettext as _

    return {"used": _("questionnaire done"), "expired": _("expired"), "void": _("no longer valid"),
            "issued": _("issued, not yet answered")}[state]


def links_of_visit(visit) -> list[dict]:
    from annulus.trial.selectors import protocol_for

    now = timezone.now()
    protocol = protocol_for(visit.protocol_version)
    rows = []
    for link in SelfEntryLink.objects.filter(visit=visit).select_related("participant", "issued_by").order_by("id"):
        state = state_of(link, now)
        names = [visit_selectors.form_name(protocol, f) for f in link.instruments]
        rows.append({"link": link, "state": state, "label": state_label(state), "names": names})
    return rows


def done_visits(participant_ids) -> set[tuple[int, int]]:
    """(participant id, visit row id) of visits whose questionnaire the participant has submitted."""
    return set(SelfEntryLink.objects.filter(participant_id__in=list(participant_ids), used_at__isnull=False)
               .values_list("participant_id", "visit_id"))


_SCORE_PREFIX = re.compile(r"^[\u2212+-]?\d+\s*(?:[\u2013-]\s*)?")
_NUMBERING = re.compile(r"^\d+\.\s*")


def _choice_words(ask, value: str, en: str, zh: str, zh_wanted: bool) -> str:
    pair = ask.choices.get(value) if ask else None
    if pair:
        return pair[1] if zh_wanted else pair[0]
    text = zh if zh_wanted else en
    return _SCORE_PREFIX.sub("", text) or text


def questions(protocol, instruments, language: str) -> list[dict]:
    """The questions of a link in the order asked: one dict per question with its form, item,
    field name (``form-item``), the question and its lead and choices in ``language`` in the
    participant's words where the instrument declares them (``FormSpec.asks``), else the eCRF's
    label without its number and the choices without their scores."""
    zh_wanted = (language or "").lower().startswith("zh")
    out = []
    for form_id in instruments:
        spec = crf.spec_for(protocol, form_id)
        items = patient_items(protocol, form_id)
        for n, item in enumerate(items, 1):
            ask = spec.asks.get(item.id)
            choices = [(v, _choice_words(ask, v, en, zh, zh_wanted)) for v, en, zh in item.choices]
            label = (ask.text(language) if ask else "") or _NUMBERING.sub("", item.label(language))
            out.append({"form": form_id, "item": item, "name": f"{form_id}-{item.id}", "first": n == 1,
                        "label": label if form_id != "vas" else "", "lead": ask.lead(language) if ask else "",
                        "number_in_form": n, "of_form": len(items), "choices": choices, "kind": item.kind,
                        "required": item.required})
    return out


def form_and_item(protocol, field: str) -> tuple[str, str]:
    """("odi", "s3") from a violation's field "odi.s3"."""
    form_id, _, item_id = str(field).partition(".")
    return form_id, item_id
