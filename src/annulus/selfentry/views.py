"""Thin views: the coordinator's page that issues a link, and the participant's pages (no account)
that ask for the card code and then the questionnaires."""

from __future__ import annotations

import io

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annulus.accounts.permissions import need
from annulus.errors import RuleViolation
from annulus.participants.selectors import participant_or_404
from annulus.trial.lock import TrialLocked
from annulus.trial.selectors import protocol_for
from annulus.visits import selectors as visit_selectors

from . import selectors, services
from .selectors import PATIENT_FORMS

SESSION_KEY = "selfentry"  # link id -> proof, for a participant whose card code was right


def qr_svg(text: str) -> str:
    """The QR code of ``text`` as an inline SVG (no script: allowed by the page's policy)."""
    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=5, border=2,
                                     svgclass="qr", title=_("QR code of the link"))
    return out.getvalue().decode("utf-8")


def issue(request, pk, key):
    """A visit's self-entry links, and issuing a new one (shown once with its QR code and slip)."""
    need(request, "visits.edit")
    p = participant_or_404(pk, user=request.user)
    slot = visit_selectors.slot_for(p, key)
    if slot is None:
        raise Http404
    visit = slot.record
    issued, error, status = None, None, 200
    if request.method == "POST":
        try:
            issued = services.issue_link(actor=request.user, participant_id=p.pk, visit_key=key)
        except RuleViolation as exc:
            error, status = exc.message, (409 if isinstance(exc, TrialLocked) else 400)
    context = {"p": p, "slot": slot, "visit": visit, "error": error,
               "rows": selectors.links_of_visit(visit) if visit else [],
               "patient_forms": [f for f in PATIENT_FORMS if visit and f in visit.forms]}
    if issued is not None:
        url = request.build_absolute_uri(reverse("selfentry", args=[issued.token]))
        protocol = protocol_for(visit.protocol_version)
        context.update(issued=issued, url=url, qr=qr_svg(url),
                       form_names=[visit_selectors.form_name(protocol, f) for f in issued.link.instruments])
    return render(request, "selfentry/issue.html", context, status=status)


def _gone(request):
    """The one page for a link that does not work: unknown, expired, used, or void."""
    return render(request, "selfentry/gone.html", {}, status=404)


def _verified(request, link) -> bool:
    proof = request.POST.get("proof") or (request.session.get(SESSION_KEY) or {}).get(str(link.pk), "")
    return services.proof_matches(proof, link)


def _questionnaire(request, token, link, *, answers=None, problems=None, status=200):
    protocol = protocol_for(link.visit.protocol_version)
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


def _problems(protocol, exc, questions_by_name) -> dict:
    """Each broken rule on its question: "odi.s3" -> the field "odi-s3", with the question named."""
    out = {}
    for v in getattr(exc, "violations", [exc]):
        form_id, item_id = selectors.form_and_item(protocol, v.field)
        name = f"{form_id}-{item_id}"
        q = questions_by_name.get(name)
        label = (q["label"] or _("Pain now")) if q else ""
        text = _("“%(question)s”: %(message)s") % {"question": label, "message": v.message} if q else v.message
        out[name if q else "_"] = text
    return out


def participant_page(request, token):
    link = selectors.link_by_token(token)
    if request.method == "POST" and request.POST.get("action") == "code":
        try:
            result, link = services.check_code(token=token, code=request.POST.get("code", ""))
        except (TrialLocked, services.RecordClosed) as exc:
            return render(request, "selfentry/code.html", {"token": token, "error": exc.message,
                                                                "lang_next": request.path}, status=409)
        if result == services.CodeResult.GONE:
            return _gone(request)
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
        return _gone(request)
    if request.method == "POST" and request.POST.get("action") == "submit":
        if not _verified(request, link):
            return render(request, "selfentry/code.html", {"token": token, "lang_next": request.path})
        protocol = protocol_for(link.visit.protocol_version)
        answers = {}
        for q in selectors.questions(protocol, link.instruments, get_language()):
            value = request.POST.get(q["name"], "")
            if value.strip():
                answers.setdefault(q["form"], {})[q["item"].id] = value.strip()[:50]
        try:
            services.submit(token=token, answers=answers, device=request.headers.get("User-Agent", ""))
        except services.LinkGone:
            return _gone(request)
        except services.RecordClosed as exc:
            return render(request, "selfentry/code.html", {"token": token, "error": exc.message,
                                                                "lang_next": request.path}, status=409)
        except RuleViolation as exc:
            flat = {f"{form}-{item}": v for form, items in answers.items() for item, v in items.items()}
            questions = {q["name"]: q for q in selectors.questions(protocol, link.instruments, get_language())}
            status = 409 if isinstance(exc, TrialLocked) else 400
            return _questionnaire(request, token, link, answers=flat, problems=_problems(protocol, exc, questions),
                                  status=status)
        proofs = dict(request.session.get(SESSION_KEY) or {})
        proofs.pop(str(link.pk), None)
        request.session[SESSION_KEY] = proofs
        return render(request, "selfentry/thanks.html", {"storage_key": "annulus-selfentry-" + link.token_hash[:16]})
    if _verified(request, link):
        return _questionnaire(request, token, link)
    return render(request, "selfentry/code.html", {"token": token, "lang_next": request.path})
