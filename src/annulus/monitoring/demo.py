"""Demo step 60: monitoring through the services, so the monitor's pages are alive. The monitor
verifies the screening records and the first visits of the first enrolled participants against
source; a VAS verified at one visit is then corrected by the coordinator (its verification is
cleared); the auditor records review findings and resolves one."""

from __future__ import annotations

from annulus.errors import RuleViolation
from annulus.visits.models import FormRecord

from . import selectors, services

VERIFIED_PARTICIPANTS = 12


def monitoring_all(ctx) -> None:
    monitor, auditor, coord = ctx.users.get("monitor"), ctx.users.get("auditor"), ctx.users.get("coordinator")
    if monitor is None:
        return
    ids = ctx.enrolled[:VERIFIED_PARTICIPANTS]
    points = selectors.evaluate(ids)
    for pid in ids:
        done = set()
        for pt in points.get(pid, []):
            address = (pt.visit, pt.form, pt.record)
            if address in done or not pt.required or pt.visit not in ("screening", "baseline", "transplant", "w1"):
                continue
            done.add(address)
            try:
                services.verify(actor=monitor, participant_id=pid, visit=pt.visit, form=pt.form, record=pt.record)
            except RuleViolation:
                continue
    # a verified VAS corrected afterwards: its verification is cleared (shown on the monitor's pages)
    for pid in ids:
        fr = FormRecord.objects.filter(participant_id=pid, visit__visit_id="w1", form_id="vas",
                                       state__in=(FormRecord.COMPLETE, FormRecord.CHANGED)).first()
        if fr is None or coord is None:
            continue
        from annulus.visits import services as vs

        value = fr.items.get("vas_mm")
        if not isinstance(value, (int, float)):
            continue
        try:
            vs.save_form(actor=coord, participant_id=pid, visit_key="w1", form_id="vas",
                         items={**fr.items, "vas_mm": max(0, min(100, value - 4 if value >= 4 else value + 4))},
                         complete=True, reason="Transcription error: the paper line was measured again")
        except RuleViolation:
            continue
        break
    if auditor is None or not ids:
        return
    services.record_finding(actor=auditor, participant_id=ids[0], visit="screening", form="consent",
                            category="consent", text="The signed consent form in the site file has no time of "
                                                     "signature; the eCRF records 09:00.")
    f = services.record_finding(actor=auditor, participant_id=ids[min(1, len(ids) - 1)], category="audit_trail",
                                text="Two evidence corrections on the same day without a reason in the source notes.")
    services.resolve_finding(actor=auditor, finding_id=f.pk,
                             resolution="The reasons are recorded in the audit trail; the site notes were completed.")


STEPS = [(60, monitoring_all)]
