"""The canonical casebook as pages and the printout show it: sections of records, each a list of
(label, value) in the page's language, times in Asia/Shanghai, items by their labels and coded
answers by their words. Reads only the content dict (and the protocol for names)."""

from __future__ import annotations

from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .selectors import shown


def _labels() -> dict[str, str]:
    return {
        "screening_number": _("Screening number"), "case_number": _("Case number"), "initials": _("Initials"),
        "sex": _("Sex"), "recruitment_source": _("Recruitment source"), "prescreened_on": _("Pre-screened on"),
        "enrolled_at": _("Enrolled at"), "version": _("Consent form version"), "consented_at": _("Consented at"),
        "taken_by": _("Taken by"), "outcome": _("Outcome"), "failing": _("Failing criteria"),
        "decided_at": _("Decided at"), "decided_by": _("Decided by"), "performed_on": _("Performed on"),
        "fat_volume_ml": _("Fat volume (mL)"), "anaesthesia": _("Anaesthesia"),
        "observation_hours": _("Observation (hours)"), "complications": _("Complications"),
        "transplanted_at": _("Transplanted at"), "disc_level": _("Disc level"), "needle_gauge": _("Needle gauge"),
        "approach": _("Approach"), "imaging": _("Imaging guidance"), "volume_ml": _("Volume (mL)"),
        "drug_code_entered": _("Drug code"), "activity_restriction_until": _("Activity restricted until"),
        "notes": _("Notes"), "recorded_by": _("Recorded by"), "visit_date": _("Visit date"), "reason": _("Reason"),
        "state": _("State"), "revision": _("Revision"), "collected_at": _("Collected at"), "term": _("Term"),
        "meddra_pt_code": _("MedDRA PT code"), "meddra_version": _("MedDRA version"),
        "description": _("Description"), "onset_at": _("Onset"), "end_at": _("End"), "serious": _("Serious"),
        "serious_criteria": _("Seriousness criteria"), "grade": _("Grade (CTCAE)"),
        "causality_liposuction": _("Causality: liposuction"), "causality_injection": _("Causality: injection"),
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


def _withdrawal_categories(categories) -> dict[str, str]:
    """The withdrawal categories in the page's language (their Chinese is in the data dictionary)."""
    try:
        from annulus.dictionary.records import WITHDRAWAL_CATEGORIES
    except ImportError:  # noqa: BLE001 - without the dictionary: the model's English words
        return dict(categories)
    zh = (get_language() or "").lower().startswith("zh")
    return {k: (z if zh else e) for k, e, z in WITHDRAWAL_CATEGORIES}


def _codes() -> dict[str, dict]:
    """The words of coded values, by section."""
    from annulus.participants.models import SOURCE_LABELS, Withdrawal
    from annulus.safety import models as sm
    from annulus.visits.models import Liposuction

    def words(choices):
        return {k: str(v) for k, v in choices}

    return {
        "participant": {"sex": {"F": _("female"), "M": _("male")}, "recruitment_source": words(SOURCE_LABELS.items())},
        "eligibility": {"outcome": {"eligible": _("eligible"), "ineligible": _("screen failure")}},
        "liposuction": {"anaesthesia": words(Liposuction.ANAESTHESIA)},
        "adverse_event": {"serious_criteria": words(sm.SERIOUS_CRITERIA), "grade": words(sm.GRADES),
                          "causality_liposuction": words(sm.CAUSALITY), "causality_injection": words(sm.CAUSALITY),
                          "causality_product": words(sm.CAUSALITY), "expectedness": words(sm.EXPECTEDNESS),
                          "action_taken": words(sm.ACTIONS), "outcome": words(sm.OUTCOMES)},
        "withdrawal": {"category": _withdrawal_categories(Withdrawal.CATEGORIES)},
    }


def _form_rows(protocol, form_id: str, form: dict, language: str) -> list[tuple[str, str]]:
    from annulus.visits import crf

    items = form.get("items") or {}
    try:
        rows = crf.answers_text(crf.spec_for(protocol, form_id), items, language)
    except Exception:  # noqa: BLE001 - a form the protocol in force no longer declares: its raw answers
        rows = [(k, shown(v)) for k, v in items.items()]
    try:
        names = crf.analyte_names(protocol, language)
        scores = [(label, shown(v)) for label, v in crf.headline(form_id, form.get("computed") or {}, names)]
    except Exception:  # noqa: BLE001 - scores of an unknown shape are shown as stored below
        scores = []
    return [(label, str(text)) for label, text in rows] + [(f"{_('score')}: {label}", v) for label, v in scores]


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
                "records": [{"heading": "", "fields": _fields(c, labels)} for c in content["consent"]]})
    evidence = []
    for field, e in content["screening_evidence"].items():
        try:
            name = protocol.eligibility.field(field).label.get(language)
        except Exception:  # noqa: BLE001 - a field of an earlier protocol version
            name = field
        evidence.append((name, f"{shown(e['value'])} ({labels['collected_on']} {e['collected_on']}, "
                               f"{labels['entered_by']} {e['entered_by']})"))
    out.append({"title": _("Screening evidence"), "empty": _("No screening evidence."),
                "records": [{"heading": "", "fields": evidence}] if evidence else []})
    d = content["eligibility"]
    out.append({"title": _("Eligibility decision"), "empty": _("No eligibility decision."),
                "records": [] if d is None else [{"heading": "", "fields": _fields(d, labels, skip=("criteria",), values=codes["eligibility"]) + [
                    (_("Criteria"), ", ".join(f"{cid} {'✔' if ok else '✘' if ok is False else '?'}"
                                              for cid, ok in d["criteria"].items()))]}]})
    lp = content["liposuction"]
    out.append({"title": _("Liposuction (day 0)"), "empty": _("No liposuction recorded."),
                "records": [] if lp is None else [{"heading": "", "fields": _fields(lp, labels, values=codes["liposuction"])}]})
    tx = content["transplant"]
    out.append({"title": _("Transplantation"), "empty": _("No transplantation recorded."),
                "records": [] if tx is None else [{"heading": "", "fields": _fields(tx, labels)}]})
    visits = []
    visit_names = {v.id: v.name.get(language) for v in protocol.schedule.visits}
    for key, v in content["visits"].items():
        name = visit_names.get(v["visit"], _("Unscheduled visit") + f" {key}")
        head = f"{name} · {shown(v['visit_date'])} · {_('attended') if v['outcome'] == 'attended' else _('missed')}"
        visits.append({"heading": head, "fields": [(labels["reason"], v["reason"])] if v["reason"] else [],
                       "subrecords": [{"heading": f"{form_name(protocol, fid)} · {_('revision')} {f['revision']} · "
                                                  f"{_('complete') if f['state'] != 'draft' else _('draft')} · "
                                                  f"{_('collected')} {shown(f['collected_at'])}",
                                       "fields": _form_rows(protocol, fid, f, language)}
                                      for fid, f in v["forms"].items()]})
    out.append({"title": _("Visits and forms"), "empty": _("No visit recorded."), "records": visits})
    out.append({"title": _("Adverse events"), "empty": _("No adverse events."),
                "records": [{"heading": k, "fields": _fields(ae, labels, values=codes["adverse_event"])}
                            for k, ae in content["adverse_events"].items()]})
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


def change_lines(changes) -> list[str]:
    """What changed after signing, one line each: "visits › w1 › forms › vas › items › vas_mm: 62 → 70"."""
    out = []
    for path, old, new in changes[:60]:
        where = " › ".join(str(p) for p in path)
        if old is None:
            out.append(f"{where}: {_('added')}")
        elif new is None:
            out.append(f"{where}: {_('removed')}")
        else:
            out.append(f"{where}: {shown(old)} → {shown(new)}")
    if len(changes) > 60:
        out.append(_("… and %(n)s more") % {"n": len(changes) - 60})
    return out


# the meanings of the signatures, as stored (English) and shown (translated)
MEANINGS = (gettext_noop("I approve the data in this casebook as complete and accurate"),
            gettext_noop("eligibility decision signed"))
