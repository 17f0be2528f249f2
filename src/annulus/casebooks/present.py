"""The canonical casebook as pages and the printout show it: sections of records, each a list of
(label, value) in the page's language, times in Asia/Shanghai, items by their labels and coded
answers by their words. Reads only the content dict (and the protocol for names)."""

from __future__ import annotations

import re

from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .selectors import ADVERSE_EVENTS, shown


def _causality_labels() -> dict[str, str]:
    """"Causality: <procedure>" of each procedure the protocol in force names (``causality_<id>``)."""
    try:
        from annulus.safety.causality import items
        from annulus.safety.forms import causality_label
        from annulus.trial.selectors import active_protocol
    except ImportError:  # noqa: BLE001 - without the safety module: the items by their keys
        return {}
    return {c.field: str(causality_label(c.name)) for c in items(active_protocol())}


def _labels() -> dict[str, str]:
    return {**_causality_labels(),
        "screening_number": _("Screening number"), "case_number": _("Case number"), "initials": _("Initials"),
        "sex": _("Sex"), "recruitment_source": _("Recruitment source"), "prescreened_on": _("Pre-screened on"),
        "enrolled_at": _("Enrolled at"), "version": _("Consent form version"), "consented_at": _("Consented at"),
        "taken_by": _("Taken by"), "outcome": _("Outcome"), "failing": _("Failing criteria"),
        "decided_at": _("Decided at"), "decided_by": _("Decided by"), "performed_on": _("Performed on"),
        "fat_volume_ml": _("Fat volume (mL)"), "anaesthesia": _("Anaesthesia"),
        "observation_hours": _("Observation (hours)"), "complications": _("Complications"),
        "transplanted_at": _("Transplanted at"), "disc_level": _("Disc level"), "needle_gauge": _("Needle gauge"),
        "approach": _("Approach"), "volume_ml": _("Volume (mL)"),
        "drug_code_entered": _("Drug code"), "activity_restriction_until": _("Activity restricted until"),
        "notes": _("Notes"), "recorded_by": _("Recorded by"), "visit_date": _("Visit date"), "reason": _("Reason"),
        "state": _("State"), "revision": _("Revision"), "collected_at": _("Collected at"), "term": _("Term"),
        "meddra_pt_code": _("MedDRA PT code"), "meddra_version": _("MedDRA version"),
        "description": _("Description"), "onset_at": _("Onset"), "end_at": _("End"), "serious": _("Serious"),
        "serious_criteria": _("Seriousness criteria"), "grade": _("Grade (CTCAE)"),
        "causality_product": _("Causality: product"), "expectedness": _("Expectedness"),
        "action_taken": _("Action taken"), "first_knowledge_at": _("First knowledge"),
        "recipient": _("Recipient"), "due_at": _("Due by"), "sent_at": _("Sent at"), "sent_by": _("Sent by"),
        "sent_to": _("Sent to"), "sent_method": _("Method"), "acknowledged_at": _("Acknowledged at"),
        "acknowledged_by": _("Acknowledged by"), "not_required_since": _("Not required since"),
        "number": _("Number"), "at": _("At"), "by": _("By"), "scope": _("Scope"), "status": _("Status"),
        "withdrawn_on": _("Withdrawn on"), "category": _("Category"), "details": _("Details"),
        "adverse_event_id": _("Adverse event"), "value": _("Value"), "collected_on": _("Collected on"),
        "entered_by": _("Entered by"),
    }


def _page_sections(protocol) -> list[tuple[str, str, object]]:
    """The cell product's procedures recorded on its own pages (``Protocol.page_procedures``), in
    the protocol's order, each a section of the casebook: (its key in the content, the procedure's
    id; the data dictionary's form that records it, the schedule's form for the procedure, or in a
    file written before ``procedures:`` the form named after it; the procedure)."""
    out = []
    for procedure in protocol.procedure_list:
        if procedure.id in protocol.page_procedures:
            form = protocol.procedure_form(procedure.id)
            out.append((procedure.id, form.id if form is not None else procedure.id, procedure))
    return out


def _running_name(procedure, language) -> str:
    """The procedure as running text names it: its ``event_name``, else its name without what a
    bracket adds ("Liposuction (day 0)" -> "liposuction"), in lower case."""
    if procedure.event_name is not None:
        return procedure.event_name.get(language)
    return re.split(r"\s*[(（]", procedure.name.get(language), maxsplit=1)[0].lower()


def _label(labels: dict, form: str | None, key: str, language) -> str:
    """An item's label: the casebook's own word for it, else the data dictionary's label of the
    item on ``form`` in the page's language, else its key."""
    if key in labels:
        return labels[key]
    if form:
        try:
            from annulus.trial.selectors import data_dictionary

            entry = data_dictionary().entry(form, key)
        except Exception:  # noqa: BLE001 - no dictionary: the key
            entry = None
        if entry is not None:
            return entry.label(language)
    return key


def _fields(record: dict, labels: dict, skip=(), values: dict | None = None) -> list[tuple[str, str]]:
    """(label, shown value) of a record; a coded value by its words (``values``: key -> code -> words)."""
    values = values or {}

    def word(k, v):
        names = values.get(k)
        if names is None:
            return shown(v)
        if isinstance(v, list):
            return ", ".join(str(names.get(x, x)) for x in v) or "—"
        return str(names.get(v, shown(v)))

    return [(labels.get(k, k), word(k, v)) for k, v in record.items() if k not in skip]


def _coded(form: str, item: str, value, language: str | None):
    """A coded value by its words in the data dictionary's codelist, in the page's language (None:
    the item is not coded there, or the value is not in its codelist)."""
    try:
        from annulus.trial.selectors import data_dictionary

        entry = data_dictionary().entry(form, item)
    except Exception:  # noqa: BLE001 - no dictionary: the caller's own words
        return None
    if entry is None or not entry.codelist or value is None or isinstance(value, dict):
        return None
    zh = (language or "").lower().startswith("zh")

    def key(v):
        return str(v).lower() if isinstance(v, bool) else str(v)

    names = {key(c[0]): (c[2] if zh else c[1]) for c in entry.codelist}
    if isinstance(value, list):
        if not all(key(v) in names for v in value):
            return None
        return ", ".join(names[key(v)] for v in value) or "—"
    return names.get(key(value))


def _dictionary_fields(form: str, record: dict, labels: dict, language, skip=(), values=None):
    """``_fields`` with every value the data dictionary codes for ``form`` shown by its words, and
    an item without the casebook's own label by the dictionary's."""
    rows = _fields(record, labels, skip=skip, values=values)
    out = []
    keys = [k for k in record if k not in skip]
    for k, row in zip(keys, rows, strict=True):
        word = None if (values or {}).get(k) else _coded(form, k, record[k], language)
        out.append((_label(labels, form, k, language), word if word is not None else row[1]))
    return out


def _withdrawal_categories(categories) -> dict[str, str]:
    """The withdrawal categories in the page's language (their Chinese is in the data dictionary)."""
    try:
        from annulus.dictionary.records import WITHDRAWAL_CATEGORIES
    except ImportError:  # noqa: BLE001 - without the dictionary: the model's English words
        return dict(categories)
    zh = (get_language() or "").lower().startswith("zh")
    return {k: (z if zh else e) for k, e, z in WITHDRAWAL_CATEGORIES}


def _codes() -> dict[str, dict]:
    """The words of coded values, by section (the harvest's page record by its procedure's id)."""
    from annulus.participants.models import SOURCE_LABELS, Withdrawal
    from annulus.safety import models as sm
    from annulus.trial.selectors import active_protocol
    from annulus.visits.models import Liposuction

    def words(choices):
        return {k: str(v) for k, v in choices}

    causality = {k: words(sm.CAUSALITY) for k in [*_causality_labels(), sm.PRODUCT_CAUSALITY]}
    # the harvest is recorded on the cell product's page in the ``Liposuction`` table
    pid = active_protocol().page_procedure("harvest")
    harvest = {} if pid is None else {pid: {"anaesthesia": words(Liposuction.ANAESTHESIA)}}
    return {
        "participant": {"sex": {"F": _("female"), "M": _("male")}, "recruitment_source": words(SOURCE_LABELS.items())},
        "eligibility": {"outcome": {"eligible": _("eligible"), "ineligible": _("screen failure")}},
        **harvest,
        "adverse_event": {"serious_criteria": words(sm.SERIOUS_CRITERIA), "grade": words(sm.GRADES),
                          **causality, "expectedness": words(sm.EXPECTEDNESS),
                          "action_taken": words(sm.ACTIONS), "outcome": words(sm.OUTCOMES)},
        "withdrawal": {"category": _withdrawal_categories(Withdrawal.CATEGORIES)},
    }


def _form_rows(protocol, form_id: str, form: dict, language: str) -> list[tuple[str, str]]:
    from annulus.visits import crf

    items = dict(form.get("items") or {})
    for key, value in list(items.items()):
        word = _coded(form_id, key, value, language)
        if word is not None:  # the dictionary's words for a coded answer (yes/no included)
            items[key] = word
    try:
        rows = crf.answers_text(crf.spec_for(protocol, form_id), items, language)
    except Exception:  # noqa: BLE001 - a form the protocol in force no longer declares: its raw answers
        rows = [(k, shown(v)) for k, v in items.items()]
    try:
        names = crf.analyte_names(protocol, language)
        scores = [(label, shown(v)) for label, v in crf.headline(form_id, form.get("computed") or {}, names,
                                                                         protocol=protocol)]
    except Exception:  # noqa: BLE001 - scores of an unknown shape are shown as stored below
        scores = []
    score = _("score")
    return [(label, str(text)) for label, text in rows] + [(f"{score}: {label}", v) for label, v in scores]


def sections(content: dict) -> list[dict]:
    """[{title, records: [{heading, fields: [(label, value)]}], empty}] in the page's language."""
    from annulus.participants import states
    from annulus.trial.selectors import active_protocol
    from annulus.visits.selectors import form_name

    language = get_language()
    protocol = active_protocol()
    labels = _labels()
    codes = _codes()
    out = []
    ident = dict(content["participant"])
    out.append({"title": _("Identification"), "records": [{"heading": "", "fields": _fields(ident, labels, values=codes["participant"])}]})
    out.append({"title": _("Informed consent"), "empty": _("No consent recorded."),
                "records": [{"heading": "", "fields": _dictionary_fields("consent", c, labels, language)}
                            for c in content["consent"]]})
    evidence = []
    for field, e in content["screening_evidence"].items():
        try:
            name = protocol.eligibility.field(field).label.get(language)
        except Exception:  # noqa: BLE001 - a field of an earlier protocol version
            name = field
        word = _coded("screening", field, e["value"], language)
        evidence.append((name, f"{word if word is not None else shown(e['value'])} ({labels['collected_on']} {e['collected_on']}, "
                               f"{labels['entered_by']} {e['entered_by']})"))
    out.append({"title": _("Screening evidence"), "empty": _("No screening evidence."),
                "records": [{"heading": "", "fields": evidence}] if evidence else []})
    d = content["eligibility"]
    out.append({"title": _("Eligibility decision"), "empty": _("No eligibility decision."),
                "records": [] if d is None else [{"heading": "", "fields": _fields(d, labels, skip=("criteria",), values=codes["eligibility"]) + [
                    (_("Criteria"), ", ".join(f"{cid} {'✔' if ok else '✘' if ok is False else '?'}"
                                              for cid, ok in d["criteria"].items()))]}]})
    for key, form, procedure in _page_sections(protocol):
        record = content.get(key)
        out.append({"title": procedure.name.get(language),
                    "empty": _("No %(procedure)s recorded.") % {"procedure": _running_name(procedure, language)},
                    "records": [] if record is None else [{"heading": "", "fields": _dictionary_fields(
                        form, record, labels, language, values=codes.get(key))}]})
    visits = []
    visit_names = {v.id: v.name.get(language) for v in protocol.schedule.visits}
    words = {"attended": _("attended"), "missed": _("missed"), "revision": _("revision"), "complete": _("complete"),
             "draft": _("draft"), "collected": _("collected")}
    for key, v in content["visits"].items():
        name = visit_names.get(v["visit"], _("Unscheduled visit") + f" {key}")
        head = f"{name} · {shown(v['visit_date'])} · {words['attended' if v['outcome'] == 'attended' else 'missed']}"
        visits.append({"heading": head, "fields": [(labels["reason"], v["reason"])] if v["reason"] else [],
                       "subrecords": [{"heading": f"{form_name(protocol, fid)} · {words['revision']} {f['revision']} · "
                                                  f"{words['complete' if f['state'] != 'draft' else 'draft']} · "
                                                  f"{words['collected']} {shown(f['collected_at'])}",
                                       "fields": _form_rows(protocol, fid, f, language)}
                                      for fid, f in v["forms"].items()]})
    out.append({"title": _("Visits and forms"), "empty": _("No visit recorded."), "records": visits})
    out.append({"title": _("Adverse events"), "empty": _("No adverse events."),
                "records": [{"heading": k, "fields": _dictionary_fields("adverse_event", ae, labels, language,
                                                                 values=codes["adverse_event"])}
                            for k, ae in content[ADVERSE_EVENTS].items()]})
    out.append({"title": _("SAE reports"), "empty": _("No SAE reports."),
                "records": [{"heading": k, "fields": _fields(r, labels)} for k, r in content["sae_reports"].items()]})
    if content["emergency_unblindings"]:
        out.append({"title": _("Emergency unblinding records"),
                    "records": [{"heading": "", "fields": _fields(u, labels)} for u in content["emergency_unblindings"]]})
    end = content["end_of_study"]
    fields = [(labels["status"], str(states.LABELS.get(end["status"], end["status"])))]
    if end["withdrawal"]:
        fields += _fields(end["withdrawal"], labels, values=codes["withdrawal"])
    out.append({"title": _("End of study"), "records": [{"heading": "", "fields": fields}]})
    return out


def _path_words(path) -> str:
    """A content path in words: ("visits", "w1", "forms", "vas", "items", "vas_mm") -> "Visits and
    forms › 1 week › VAS › VAS pain (0-100 mm)"."""
    from annulus.trial.selectors import active_protocol
    from annulus.visits.selectors import form_name

    protocol = active_protocol()
    language = get_language()
    labels = _labels()
    pages = _page_sections(protocol)
    page_forms = {key: form for key, form, _procedure in pages}
    sections = {"participant": _("Identification"), "consent": _("Informed consent"),
                "screening_evidence": _("Screening evidence"), "eligibility": _("Eligibility decision"),
                **{key: procedure.name.get(language) for key, _form, procedure in pages},
                "visits": _("Visits and forms"), ADVERSE_EVENTS: _("Adverse events"), "sae_reports": _("SAE reports"),
                "emergency_unblindings": _("Emergency unblinding records"), "end_of_study": _("End of study"),
                "computed": _("score")}
    words = []
    form = None
    for i, part in enumerate(path):
        part = str(part)
        before = str(path[i - 1]) if i else ""
        if i == 0:
            words.append(sections.get(part, part))
        elif before == "visits":
            name = next((v.name.get(language) for v in protocol.schedule.visits if v.id == part), part)
            words.append(name)
        elif before == "forms":
            form = part
            words.append(form_name(protocol, part))
        elif part in ("forms", "items"):
            continue
        elif before == "items" and form:
            try:
                from annulus.visits import crf

                item = crf.spec_for(protocol, form).item(part)
                words.append(item.label(language) if item else part)
            except Exception:  # noqa: BLE001 - an item the protocol in force no longer declares
                words.append(part)
        elif path[0] == "screening_evidence" and i == 1:
            try:
                words.append(protocol.eligibility.field(part).label.get(language))
            except Exception:  # noqa: BLE001 - a field of an earlier protocol version
                words.append(part)
        else:
            words.append(str(sections.get(part) or _label(labels, page_forms.get(str(path[0])), part, language)))
    return " › ".join(words)


def _value_words(path, value, codes) -> str:
    """A changed value in words when it is coded (status, an adverse event's causality ...)."""
    from annulus.participants import states

    key = str(path[-1]) if path else ""
    names = None
    if key == "status":
        names = {k: str(v) for k, v in states.LABELS.items()}
    else:
        # a section's codes are under its key (a page procedure's too), the log's and the end's under their record's
        first = str(path[0]) if path else ""
        section = {ADVERSE_EVENTS: "adverse_event", "end_of_study": "withdrawal"}.get(first, first)
        names = codes.get(section, {}).get(key) if section else None
    if names is None or isinstance(value, dict):
        return shown(value)
    if isinstance(value, list):
        return ", ".join(str(names.get(v, v)) for v in value) or "—"
    return str(names.get(value, shown(value)))


def change_lines(changes) -> list[str]:
    """What changed after signing, one line each, in words: "Visits and forms › 1 week › VAS ›
    VAS pain (0-100 mm): 62 → 70"."""
    out = []
    codes = _codes()
    added, removed = _("added"), _("removed")
    for path, old, new in changes[:60]:
        where = _path_words(path)
        if old is None:
            out.append(f"{where}: {added}")
        elif new is None:
            out.append(f"{where}: {removed}")
        else:
            out.append(f"{where}: {_value_words(path, old, codes)} → {_value_words(path, new, codes)}")
    if len(changes) > 60:
        out.append(_("… and %(n)s more") % {"n": len(changes) - 60})
    return out


# the meanings of the signatures, as stored (English) and shown (translated)
MEANINGS = (gettext_noop("I approve the data in this casebook as complete and accurate"),
            gettext_noop("eligibility decision signed"))
