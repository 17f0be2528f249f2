"""Thin views: the coordinator's page that issues a link, and the participant's pages (no account)
that ask for the card code and then the questionnaires."""

from __future__ import annotations

import io

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annulus.accounts.backends import client_source
from annulus.accounts.permissions import need
from annulus.errors import RuleViolation
from annulus.participants.selectors import participant_or_404
from annulus.trial.lock import TrialLocked
from annulus.trial.selectors import active_protocol, protocol_for
from annulus.visits import selectors as visit_selectors

from . import selectors, senders, services

SESSION_KEY = "selfentry"  # link id -> proof, for a participant whose card code was right


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as an inline SVG (no script: allowed by the page's policy)."""
    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=5, border=2,
                                     svgclass="qr", title=_("QR code of the link"))
    return out.getvalue().decode("utf-8")


def issue(request, pk, key):
    """A visit's self-entry links; issuing a new one (shown once with its QR code and slip, and
    sent when asked), revoking one, the participant's card code and contact for sending."""
    need(request, "visits.edit")
    p = participant_or_404(pk, user=request.user)
    slot = visit_selectors.slot_for(p, key)
    if slot is None:
        raise Http404
    issued, error, status, new_code, done = None, None, 200, None, ""
    if request.method == "POST":
        action = request.POST.get("action", "issue")
        try:
            if action in ("issue", "send"):
                issued = services.issue_link(actor=request.user, participant_id=p.pk, visit_key=key,
                                             send=action == "send", url_base=request.build_absolute_uri("/"))
            elif action == "revoke":
                link_id = int(request.POST.get("link") or 0)
                if link_id not in {r["link"].pk for r in selectors.links_of(p.pk, key)}:
                    raise RuleViolation("link", "no such link for this visit")
                services.revoke_link(actor=request.user, link_id=link_id, reason=request.POST.get("reason", ""))
                done = _("Link revoked: it no longer works.")
            elif action == "reset_code":
                new_code = services.reset_card_code(actor=request.user, participant_id=p.pk,
                                                    reason=request.POST.get("reason", ""))
            elif action == "contact":
                services.set_contact(actor=request.user, participant_id=p.pk, email=request.POST.get("email", ""),
                                     language=request.POST.get("language", ""), reason=request.POST.get("reason", ""))
                done = _("Contact for sending saved.")
            else:
                raise RuleViolation("action", "unknown action")
        except ValueError:
            error, status = _("link: no such link for this visit"), 400
        except RuleViolation as exc:
            error, status = (exc.message if isinstance(exc, TrialLocked) else f"{exc.field}: {exc.message}"), (
                409 if isinstance(exc, TrialLocked) else 400)
    visit = visit_selectors.get_visit(p.pk, key)
    contact = selectors.contact_of(p.pk)
    sender = senders.get_sender()
    forms = visit.forms if visit is not None else (slot.forms if not slot.procedure else [])
    protocol = protocol_for(visit.protocol_version) if visit is not None else active_protocol()
    context = {"p": p, "slot": slot, "visit": visit, "error": error, "done": done, "new_code": new_code,
               "rows": selectors.links_of(p.pk, key), "patient_forms": selectors.patient_forms(protocol, forms),
               "window_open": visit is None and slot.window_start is not None
               and slot.window_start <= timezone.localdate() <= slot.window_end,
               "contact": contact, "has_card": selectors.current_card(p.pk) is not None,
               "sender_channel": sender.channel,
               "can_send": sender.can_reach(services.recipient_of(p)),
               "message_languages": [("zh-hans", "中文"), ("en", "English")]}
    if issued is not None:
        url = request.build_absolute_uri(reverse("selfentry", args=[issued.token]))
        context.update(issued=issued, url=url, qr=qr_svg(url),
                       form_names=[visit_selectors.form_name(protocol, f) for f in issued.link.instruments])
    return render(request, "selfentry/issue.html", context, status=status)


def _gone(request, token=""):
    """The one page for a link that does not work: unknown, expired, used, revoked or void. Each
    counts against the client's address (see ``services.note_gone``)."""
    services.note_gone(client_source(request), token)
    return render(request, "selfentry/gone.html", {}, status=404)


def _refused(request):
    """An address that asked for too many links that do not work: the same page, 429, whatever
    the link."""
    response = render(request, "selfentry/gone.html", {}, status=429)
    response["Retry-After"] = str(60 * settings.ANNULUS_SELFENTRY_GUESS_MINUTES)
    return response


def _verified(request, link) -> bool:
    proof = request.POST.get("proof") or (request.session.get(SESSION_KEY) or {}).get(str(link.pk), "")
    return services.proof_matches(proof, link)


def _questionnaire(request, token, link, *, answers=None, problems=None, status=200):
    protocol = selectors.protocol_of(link)
    language = get_language()
    questions = selectors.questions(protocol, link.instruments, language)
    names_of = {f: visit_selectors.form_name(protocol, f) for f in link.instruments}
    answers = answers or {}
    for q in questions:
        q["form_name"] = names_of.get(q["form"], q["form"])
        q["answer"] = answers.get(q["name"], "")
        q["problem"] = (problems or {}).get(q["name"], "")
    return render(request, "selfentry/questionnaire.html", {
        "token": token, "link": link, "questions": questions, "total": len(questions),
        "proof": services.proof_for(link), "problems": problems or {},
        "storage_key": "annulus-selfentry-" + link.token_hash[:16], "lang_next": request.path}, status=status)


def _plain_problem(q: dict, given: bool) -> str:
    """What the participant is asked to do about one question, in plain words: never the eCRF's
    message (that names the item's technical label, its unit and the value sent)."""
    item = q["item"]
    if q["line"]:
        return (_("Please mark a point on the line between 0 and 100.") if given
                else _("Please mark on the line how bad your pain is."))
    if item.kind in ("code", "choice", "bool"):
        return _("Please choose one of the answers shown.") if given else _("Please choose an answer.")
    if given and item.min is not None and item.max is not None:
        return _("Please give a number between %(low)s and %(high)s.") % {"low": f"{item.min:g}",
                                                                            "high": f"{item.max:g}"}
    return _("Please check this answer.") if given else _("Please answer this question.")


def _problems(protocol, exc, questions_by_name, answers=None) -> dict:
    """Each broken rule on its question ("odi.s3" -> the field "odi-s3"), said to the participant
    in plain words in the page's language, naming the question by its number and its short text
    so they can go back to it; a rule that belongs to no question gets one general line. The
    eCRF's own messages are for the staff and are not shown here."""
    answers = answers or {}
    numbers = {name: n for n, name in enumerate(questions_by_name, 1)}
    found = {}
    general = ""
    for v in getattr(exc, "violations", [exc]):
        form_id, item_id = selectors.form_and_item(protocol, v.field)
        name = f"{form_id}-{item_id}"
        q = questions_by_name.get(name)
        if q is None:
            general = general or (_("The study no longer accepts answers. Please contact the research team.")
                                  if isinstance(exc, TrialLocked) else
                                  _("Your answers could not be saved. Please check them and send them again, "
                                    "or contact the research team."))
            continue
        if name in found:
            continue
        label = q["question"].rstrip(":： ")
        found[name] = _("Question %(number)s, “%(question)s”: %(message)s") % {
            "number": numbers[name], "question": Truncator(label).chars(60),
            "message": _plain_problem(q, bool(str(answers.get(name, "")).strip()))}
    out = {name: found[name] for name in sorted(found, key=numbers.get)}
    if general:
        out["_"] = general
    return out


def participant_page(request, token):
    if selectors.source_blocked(client_source(request)):
        return _refused(request)
    link = selectors.link_by_token(token)
    if request.method == "POST" and request.POST.get("action") == "code":
        try:
            result, link = services.check_code(token=token, code=request.POST.get("code", ""))
        except (TrialLocked, services.RecordClosed) as exc:
            return render(request, "selfentry/code.html", {"token": token, "error": exc.message,
                                                                "lang_next": request.path}, status=409)
        if result == services.CodeResult.GONE:
            return _gone(request, token)
        if result == services.CodeResult.OK:
            proofs = dict(request.session.get(SESSION_KEY) or {})
            proofs[str(link.pk)] = services.proof_for(link)
            request.session[SESSION_KEY] = proofs
            return _questionnaire(request, token, link)
        error = (_("Too many wrong codes. Please try again later, or ask the research team.")
                 if result == services.CodeResult.LOCKED else
                 _("That code is not right. Please check the code on your card."))
        return render(request, "selfentry/code.html", {"token": token, "error": error,
                                                            "lang_next": request.path}, status=200)
    if link is None or not selectors.usable(link) or link.locks >= services.MAX_LOCKS:
        return _gone(request, token)
    if request.method == "POST" and request.POST.get("action") == "submit":
        if not _verified(request, link):
            return render(request, "selfentry/code.html", {"token": token, "lang_next": request.path})
        protocol = selectors.protocol_of(link)
        answers = {}
        for q in selectors.questions(protocol, link.instruments, get_language()):
            value = request.POST.get(q["name"], "")
            if value.strip():
                answers.setdefault(q["form"], {})[q["item"].id] = value.strip()[:50]
        try:
            services.submit(token=token, answers=answers, device=request.headers.get("User-Agent", ""))
        except services.LinkGone:
            return _gone(request, token)
        except services.RecordClosed as exc:
            return render(request, "selfentry/code.html", {"token": token, "error": exc.message,
                                                                "lang_next": request.path}, status=409)
        except RuleViolation as exc:
            flat = {f"{form}-{item}": v for form, items in answers.items() for item, v in items.items()}
            questions = {q["name"]: q for q in selectors.questions(protocol, link.instruments, get_language())}
            status = 409 if isinstance(exc, TrialLocked) else 400
            return _questionnaire(request, token, link, answers=flat,
                                  problems=_problems(protocol, exc, questions, flat), status=status)
        proofs = dict(request.session.get(SESSION_KEY) or {})
        proofs.pop(str(link.pk), None)
        request.session[SESSION_KEY] = proofs
        return render(request, "selfentry/thanks.html", {"storage_key": "annulus-selfentry-" + link.token_hash[:16]})
    if _verified(request, link):
        return _questionnaire(request, token, link)
    return render(request, "selfentry/code.html", {"token": token, "lang_next": request.path})
