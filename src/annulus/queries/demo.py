"""Demo step 70: data-quality work on the trial in follow-up, through the services, so the query
pages show every state. The monitor raises queries by hand on data points of the first participants
in follow-up (some still open, some answered by the coordinator, some answered and closed by the
monitor); two VAS entries trip the protocol's edit check "VAS changed by more than 50 mm": a typing
slip the coordinator corrects (the check's query closes itself) and a flare the coordinator confirms
against the source (answered, for the monitor to close)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.participants import states
from annulus.participants.models import Participant
from annulus.visits.models import FormRecord, Visit

from . import services
from .models import CHECK, Query

DONE = (FormRecord.COMPLETE, FormRecord.CHANGED)

# (form, item, question, the coordinator's answer, the monitor's closing words); the question names
# the value as recorded
MANUAL = [
    ("vas", "vas_mm", "The {visit} VAS is recorded as {value} mm. The paper line in the source shows a crossed-out first "
                      "mark: please confirm which mark the participant made.",
     "Checked with the participant's paper form: the second mark is the participant's, as entered; the first was "
     "crossed out by the participant before signing.", "Source checked at the monitoring visit; answer accepted."),
    ("vitals", "systolic_bp", "Systolic blood pressure at {visit} is recorded as {value} mmHg; the nurse's chart in the "
                              "source reads differently. Please check the chart.",
     "The nurse's chart was re-read: the value entered is the second reading, taken after 5 minutes' rest, as the "
     "protocol asks.", "Second reading confirmed in the chart; closed."),
    ("odi", "s5", "ODI section 5 (sitting) at {visit} is answered {value}, while the participant's other sections "
                  "improved. Please confirm against the paper questionnaire.",
     "Confirmed against the paper questionnaire: the participant ticked this statement.", "Answer accepted."),
]
QUERIES_PER_STATE = 3


def _at(day, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


def _past(moment: datetime, now: datetime) -> datetime:
    return min(moment, now - timedelta(hours=1))


def manual_queries(ctx, monitor, coord, now) -> None:
    """Open, answered and closed queries, QUERIES_PER_STATE each, on completed forms of visits at
    least a month old of the participants in follow-up (one query per participant)."""
    people = list(Participant.objects.filter(pk__in=ctx.enrolled, status=states.IN_FOLLOW_UP)
                  .order_by("case_number").values_list("pk", flat=True))
    wanted = ["closed"] * QUERIES_PER_STATE + ["answered"] * QUERIES_PER_STATE + ["open"] * QUERIES_PER_STATE
    for n, pid in enumerate(people):
        if not wanted:
            return
        form, item, question, answer, closing = MANUAL[n % len(MANUAL)]
        fr = (FormRecord.objects.filter(participant_id=pid, form_id=form, state__in=DONE,
                                        visit__visit_date__lte=ctx.today - timedelta(days=30))
              .select_related("visit").order_by("-visit__visit_date").first())
        if fr is None or fr.items.get(item) is None:
            continue
        state = wanted[0]
        # the open ones were raised at the last monitoring visit; the others earlier, with time to answer
        raised = _past(now - timedelta(days=2), now) if state == "open" else _at(fr.visit.visit_date + timedelta(days=6), 10)
        from annulus.trial.selectors import active_protocol

        visit_name = next((v.name.en for v in active_protocol().schedule.visits if v.id == fr.visit.visit_id),
                          fr.visit.key)
        value = fr.items[item]
        try:
            q = services.raise_query(actor=monitor, participant_id=pid, visit=fr.visit.key, form=form, item=item,
                                     text=question.format(visit=visit_name, value=value), assigned_to="site",
                                     at=raised)
            if state in ("answered", "closed"):
                services.answer_query(actor=coord, query_id=q.pk, text=answer,
                                      at=_past(raised + timedelta(days=2, hours=3), now))
            if state == "closed":
                services.close_query(actor=monitor, query_id=q.pk, text=closing,
                                     at=_past(raised + timedelta(days=9), now))
        except RuleViolation:
            continue
        wanted.pop(0)


def _previous_vas(visit: Visit):
    fr = (FormRecord.objects.filter(participant_id=visit.participant_id, form_id="vas", state__in=DONE,
                                    visit__visit_date__lt=visit.visit_date)
          .order_by("-visit__visit_date").first())
    value = fr.items.get("vas_mm") if fr else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def vas_edit_checks(ctx, coord, now) -> None:
    """The two VAS entries still to make at visits already held: a slip (a digit dropped) that the
    edit check catches and the coordinator corrects, and a flare the coordinator confirms."""
    slip = flare = False
    for v in (Visit.objects.filter(participant_id__in=ctx.enrolled, outcome="attended", visit_date__lte=ctx.today)
              .order_by("visit_date", "id")):
        if "vas" not in v.forms or (slip and flare):
            continue
        fr = FormRecord.objects.filter(visit=v, form_id="vas").first()
        if fr is not None and fr.state in DONE:
            continue
        previous = _previous_vas(v)
        if previous is None:
            continue
        drafted = fr.items.get("vas_mm") if fr is not None else None
        meant = drafted if isinstance(drafted, int) and not isinstance(drafted, bool) else previous
        try:
            if not slip and meant >= 56 and abs(meant // 10 - previous) > 50:
                # "76" keyed as "7": the check raises a query; the coordinator reads the paper again
                services_v().save_form(actor=coord, participant_id=v.participant_id, visit_key=v.key, form_id="vas",
                                       items={"vas_mm": meant // 10}, complete=True)
                q = _check_query(v)
                if q is not None:
                    services.answer_query(actor=coord, query_id=q.pk, text=f"Typing error: the paper line reads "
                                          f"{meant} mm, not {meant // 10}. Corrected.", at=now - timedelta(minutes=20))
                services_v().save_form(actor=coord, participant_id=v.participant_id, visit_key=v.key, form_id="vas",
                                       items={"vas_mm": meant}, complete=True,
                                       reason=f"Typing error: a digit was dropped; the paper line reads {meant} mm")
                slip = True
            elif not flare and previous <= 45:
                services_v().save_form(actor=coord, participant_id=v.participant_id, visit_key=v.key, form_id="vas",
                                       items={"vas_mm": previous + 51}, complete=True)
                q = _check_query(v)
                if q is not None:
                    services.answer_query(actor=coord, query_id=q.pk, text="Confirmed against the paper VAS: the "
                                          "participant reports a flare of back pain after lifting a heavy load two "
                                          "days before the visit.", at=now - timedelta(minutes=10))
                flare = True
        except RuleViolation:
            continue


def services_v():
    from annulus.visits import services as vs

    return vs


def _check_query(v: Visit):
    return (Query.objects.filter(participant_id=v.participant_id, visit=v.key, form="vas", origin=CHECK,
                                 status="open").order_by("-id").first())


def queries_all(ctx) -> None:
    monitor, coord = ctx.users.get("monitor"), ctx.users.get("coordinator")
    if monitor is None or coord is None:
        return
    now = timezone.now()
    manual_queries(ctx, monitor, coord, now)
    vas_edit_checks(ctx, coord, now)


STEPS = [(70, queries_all)]
