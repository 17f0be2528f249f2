"""The data-dictionary page (a table that sorts and filters) and its CSV download."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from annulus.accounts.permissions import need
from annulus.dictionary import to_csv

from .selectors import active_protocol, data_dictionary

TYPE_LABELS = {"number": _("number"), "integer": _("whole number"), "code": _("scored code"), "choice": _("choice"),
               "text": _("text"), "date": _("date"), "datetime": _("date and time"), "bool": _("yes/no")}
SCOPE_LABELS = {"visit": _("visit form"), "screening": _("screening record"), "log": _("log (repeating)"),
                "participant": _("participant record")}
SORTS = {
    "form": lambda r: r["order"],
    "item": lambda r: (r["entry"].item, r["order"]),
    "label": lambda r: (r["label"].lower(), r["order"]),
    "type": lambda r: (r["entry"].type, r["order"]),
    "sdv": lambda r: (not r["entry"].sdv_critical, r["order"]),
    "sdtm": lambda r: (r["entry"].sdtm_domain or "~", r["entry"].sdtm_testcd, r["entry"].sdtm_variable, r["order"]),
}


def _visit_names(protocol, language) -> dict:
    names = {v.id: v.name.get(language) for v in protocol.schedule.visits}
    names["screening"] = str(_("Screening"))
    return names


def _rows(dictionary, language, visit_names) -> list[dict]:
    out = []
    for n, e in enumerate(dictionary.entries):
        form = dictionary.form(e.form)
        out.append({
            "order": n, "entry": e, "form": form, "form_name": form.name(language), "label": e.label(language),
            "type": TYPE_LABELS.get(e.type, e.type), "scope": SCOPE_LABELS.get(form.scope, form.scope),
            "codes": e.code_lines(language),
            "visits": [visit_names.get(v, v) for v in e.visits],
        })
    return out


def data_dictionary_page(request):
    need(request, "protocol.view")
    language = get_language()
    protocol = active_protocol()
    dictionary = data_dictionary()
    visit_names = _visit_names(protocol, language)
    rows = _rows(dictionary, language, visit_names)
    total = len(rows)
    q = request.GET.get("q", "").strip()
    form = request.GET.get("form", "")
    visit = request.GET.get("visit", "")
    type_ = request.GET.get("type", "")
    sdv = request.GET.get("sdv", "")
    sort = request.GET.get("sort", "form")
    if dictionary.form(form) is None:
        form = ""
    if visit not in visit_names and visit not in ("log", "participant"):
        visit = ""
    if type_ not in TYPE_LABELS:
        type_ = ""
    if sdv not in ("yes", "no"):
        sdv = ""
    if sort.removeprefix("-") not in SORTS:
        sort = "form"
    if form:
        rows = [r for r in rows if r["entry"].form == form]
    if visit in ("log", "participant"):
        rows = [r for r in rows if r["form"].scope == visit]
    elif visit:
        rows = [r for r in rows if visit in r["entry"].visits]
    if type_:
        rows = [r for r in rows if r["entry"].type == type_]
    if sdv:
        rows = [r for r in rows if r["entry"].sdv_critical == (sdv == "yes")]
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in r["entry"].item.lower() or needle in r["label"].lower()
                or needle in r["entry"].label_en.lower() or needle in r["entry"].sdtm.lower()]
    rows.sort(key=SORTS[sort.removeprefix("-")], reverse=sort.startswith("-"))
    visits = [("screening", visit_names["screening"])]
    visits += [(v.id, v.name.get(language)) for v in protocol.schedule.visits]
    visits += [("log", _("adverse-event log")), ("participant", _("participant records"))]
    context = {
        "rows": rows, "total": total, "q": q, "form": form, "visit": visit, "type": type_, "sdv": sdv, "sort": sort,
        "forms": [(f.id, f.name(language)) for f in dictionary.forms], "visits": visits,
        "types": [(t, label) for t, label in TYPE_LABELS.items() if any(e.type == t for e in dictionary.entries)],
        "protocol_version": dictionary.protocol_version, "n_forms": len(dictionary.forms),
        "n_critical": sum(e.sdv_critical for e in dictionary.entries),
    }
    template = "trial/_dictionary_table.html" if request.headers.get("HX-Request") else "trial/dictionary.html"
    return render(request, template, context)


def data_dictionary_csv(request):
    need(request, "protocol.view")
    dictionary = data_dictionary()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="data-dictionary-v{dictionary.protocol_version}.csv"'
    response.write("\ufeff")  # lets spreadsheet programs read the Chinese text as UTF-8
    response.write(to_csv(dictionary))
    return response
