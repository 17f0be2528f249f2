"""Fill an empty database with N simulated participants who completed follow-up (bulk, fast).

``annulus bench fill -n N`` fills the configured database (which must hold no participants); the
export benchmark (``annulus bench export``) and its test call ``fill(n)``. The participants are
written straight into the tables in chunks (``bulk_create``), far faster than the demo's service
calls (10,000 participants, about a million eCRF forms, in minutes on SQLite). The rows are the ones the services write, with the same JSON shapes:

- the shipped protocol and an amendment with room for N (``_journey.sized_protocol_text``), the
  demo users and the sealed allocation list through the real services;
- per participant, in the order of the journey: pre-screening, consent, screening evidence
  (cleaned by ``annulus.protocol.clean_evidence``), the signed eligibility decision with every
  criterion's evaluation (``annulus.protocol.evaluate``), enrolment (case number), the envelope
  opened, liposuction, the product's release checks (``allocation.services.check_release``),
  dispensing, transplantation, then every scheduled visit attended with every form complete -
  items cleaned and scored by the eCRF's own ``visits.crf.clean`` / ``crf.compute`` (the
  instruments' scorers), each with its ``FormRevision``, a few VAS forms corrected with a reason
  (revision 2, "changed after completion"), non-serious adverse events from the simulator with
  their first revision, and every status change;
- an audit event for every write, appended to the hash chain with the audit app's own
  ``canonical`` and ``chain_hash`` (``annulus audit verify`` passes).

About one participant in twenty more is a screen failure (consented, screened, failed), as in
a real trial. The answers come from the outcome simulator (``simulator.trajectories``): a pool
of simulated participants' visits is scored once and drawn from per participant and visit; the
VAS (the primary end point) is drawn per participant from the simulator's dose-response model
with the participant's allocated arm, so the efficacy data of a filled trial show the effect.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from decimal import Decimal
import random
from zoneinfo import ZoneInfo


POOL = 48  # simulated participants whose scored visits are drawn from
CHUNK = 100  # participants per transaction
SCREEN_FAILURE_SHARE = 0.05
VAS_CORRECTION_P = 0.04
CORRECTION_REASON = "Transcription error: corrected against the source document"


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--participants", type=int, default=1000,
                        help="participants who complete follow-up (default 1000)")
    parser.add_argument("--seed", type=int, default=1)


def run(args) -> int:
    import time

    from annulus.cli import CliError, setup_django

    if not 1 <= args.participants <= 200_000:
        raise CliError("--participants must be between 1 and 200000")
    setup_django()
    from django.core.management import call_command

    from annulus.participants.models import Participant

    call_command("migrate", interactive=False, verbosity=0)
    if Participant.objects.exists():
        raise CliError("the database already holds participants; point DATABASE_URL at an empty one")
    started = time.perf_counter()
    counts = fill_with_progress(args.participants, seed=args.seed)
    print(f"filled {args.participants} participants in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def fill_with_progress(n: int, *, seed: int = 1) -> dict:
    """``fill`` with a progress bar (rich) on the terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"filling {n} participants", total=n)
        return fill(n, seed=seed, progress=lambda done, total: bar.update(task, completed=done))


def fill(n: int, *, seed: int = 1, progress=None, chunk: int = CHUNK, pool: int = POOL) -> dict:
    """Fill the (migrated, empty) database with ``n`` participants who completed follow-up (and
    about 5 % more screen failures). ``progress(done, total)`` is called after each chunk;
    ``pool`` simulated participants' visits are scored and drawn from (fewer: a faster start).
    Returns counts of what was written."""
    from django.conf import settings
    from django.db import connection, transaction

    from annulus.allocation import services as alloc
    from annulus.audit.models import AuditHead
    from annulus.bench import _journey
    from annulus.participants.models import Participant
    from annulus.trial.demo import create_demo_users
    from annulus.trial.models import TrialState
    from annulus.trial.selectors import active_protocol, active_version
    from annulus.trial.services import load_default_protocol, load_protocol_version

    if n < 1:
        raise ValueError("n must be at least 1")
    if Participant.objects.exists():
        raise ValueError("the database already holds participants; fill an empty one")
    load_default_protocol()
    load_protocol_version(actor=None, text=_journey.sized_protocol_text(n))
    users = create_demo_users()
    if alloc.current_list() is None:
        alloc.generate_list(actor=users["designer"], seed=alloc.demo_seed(seed))
    protocol = active_protocol()
    pv = active_version()
    zone = ZoneInfo(settings.TIME_ZONE)
    head = AuditHead.objects.filter(id=1).first()
    writer = _Writer(protocol, pv, users, zone, seed, chain=(head.last_hash, head.count) if head else None)
    writer.trial_state = TrialState.objects.filter(id=1).values_list("state", flat=True).first() or "setup"
    pool = _Pool(protocol, seed, pool)
    progress = progress or (lambda done, total: None)
    # the trial's timeline: pre-screening from a week after the protocol took effect until the
    # last participant's month-24 visit (plus its window) has passed
    start = protocol.effective_date + timedelta(days=7)
    today = datetime.now(zone).date()
    last = today - timedelta(days=880)
    span = max(30, (last - start).days)
    done = 0
    k = 0
    while done < n:
        take = min(chunk, n - done)
        first_day = start + timedelta(days=span * done // n)
        days = max(1, span * (done + take) // n - span * done // n)
        with transaction.atomic():
            writer.chunk(k, take, first_day, days, pool)
            writer.flush()
            if writer.trial_state == "recruiting":
                TrialState.objects.update_or_create(id=1, defaults={"state": "recruiting"})
            AuditHead.objects.update_or_create(id=1, defaults={"last_hash": writer.last_hash,
                                                               "count": writer.count})
        done += take
        k += 1
        progress(done, n)
    if connection.vendor == "postgresql":
        _reset_sequences(connection)
    return dict(writer.counts)


# ---- the pool of scored answers -----------------------------------------------------------------


class _Pool:
    """Scored forms (cleaned items and computed scores, as the eCRF stores them) of simulated
    participants who attended every visit: visit id -> list of {form id: (items, computed)}."""

    def __init__(self, protocol, seed: int, size: int = POOL):
        from annulus.simulator.trajectories import simulate_participant
        from annulus.visits import crf

        self.visits: dict[str, list[dict]] = {}
        arms = [a.id for a in protocol.arms]
        wanted = [v for v in protocol.schedule.visits if not v.procedure]
        index = 0
        while len(self.visits.get("baseline", [])) < size and index < size * 20 + 20:
            traj = simulate_participant(arms[index % len(arms)], seed=seed, index=100_000 + index)
            index += 1
            if traj.missed or traj.dropout_after is not None:
                continue
            if any(v.id not in traj.visits for v in wanted):
                continue
            for v in wanted:
                scored = {}
                for form_id in v.forms:
                    if form_id == "vas":
                        continue  # drawn per participant
                    raw = dict(traj.visits[v.id][form_id])
                    if form_id == "adverse_events":
                        raw["new_events"] = "no"  # "yes" opens an adverse-event task in the safety app
                    for key in list(raw):
                        if key.endswith("__cs"):
                            raw[key] = "no"  # "clinically significant" opens a task too
                    spec = crf.spec_for(protocol, form_id)
                    items = crf.clean(spec, raw)
                    computed = crf.compute(protocol, form_id, items)
                    problem = crf.completion_problem(protocol, form_id, items, computed)
                    if problem is not None:
                        raise problem
                    scored[form_id] = (items, computed)
                self.visits.setdefault(v.id, []).append(scored)


# ---- writing ------------------------------------------------------------------------------------


def _reset_sequences(connection) -> None:
    from django.apps import apps
    from django.core.management.color import no_style

    models = [m for m in apps.get_models() if m._meta.app_label in
              {"participants", "visits", "allocation", "safety", "audit"}]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)


class _Row:
    """One row to insert: its columns as attributes (foreign keys by their ``_id`` column)."""


class _Table:
    """How the rows of one model are inserted: the columns in order with a converter each (the
    value as the backend stores it, as Django's field would prepare it), and the defaults."""

    def __init__(self, model, connection):
        from datetime import timezone as tz

        ops = connection.ops
        sqlite = connection.vendor == "sqlite"
        self.model = model
        self.fields = model._meta.concrete_fields
        self.fk = {f.name: f.attname for f in self.fields if f.is_relation}
        self.defaults = {f.attname: (f.get_default() if f.has_default() else None) for f in self.fields}
        self.convert = []
        for f in self.fields:
            kind = f.get_internal_type()
            if kind == "JSONField":
                self.convert.append(None)  # see ``rows``: the same answers are dumped once
            elif kind == "DateTimeField" and sqlite:
                self.convert.append(lambda v: None if v is None else (
                    str(v)[:-6] if v.tzinfo is tz.utc else str(v.astimezone(tz.utc).replace(tzinfo=None))))
            elif kind == "DateField" and sqlite:
                self.convert.append(lambda v: None if v is None else v.isoformat())
            elif kind == "DecimalField":
                self.convert.append(lambda v, f=f: None if v is None else
                                    ops.adapt_decimalfield_value(v, f.max_digits, f.decimal_places))
            else:
                self.convert.append(False)
        self.json = (lambda v: ops.adapt_json_value(v, None))
        names = ", ".join(ops.quote_name(f.column) for f in self.fields)
        self.sql = (f"INSERT INTO {ops.quote_name(model._meta.db_table)} ({names}) "
                    f"VALUES ({', '.join(['%s'] * len(self.fields))})")

    def rows(self, objs: list, memo: dict) -> list[tuple]:
        out = []
        columns = [(f.attname, c) for f, c in zip(self.fields, self.convert)]
        for obj in objs:
            values = obj.__dict__
            row = []
            for name, convert in columns:
                v = values[name]
                if convert is None:  # JSON: answers shared by many forms are dumped once
                    if v is None:
                        row.append(None)
                        continue
                    key = id(v)
                    hit = memo.get(key)
                    if hit is None or hit[0] is not v:
                        hit = memo[key] = (v, self.json(v))
                    row.append(hit[1])
                elif convert is False:
                    row.append(v)
                else:
                    row.append(convert(v))
            out.append(tuple(row))
        return out


class _Writer:
    """Builds the rows of a chunk of participants with their ids given here, then inserts them
    table by table (one ``executemany`` per table and batch); audit events are chained in the
    order of the journey."""

    ORDER = ["Participant", "StatusChange", "Consent", "Evidence", "EligibilityDecision", "Liposuction",
             "ProductRelease", "Dispensing", "Transplant", "Visit", "FormRecord", "FormRevision", "AdverseEvent",
             "AdverseEventRevision", "AuditEvent"]

    def __init__(self, protocol, pv, users, zone, seed, chain):
        from django.apps import apps
        from django.db import connection

        from annulus.allocation.models import Envelope
        from annulus.audit.services import GENESIS

        self.protocol, self.pv, self.users, self.zone, self.seed = protocol, pv, users, zone, seed
        self.site = protocol.site_list[0].id  # every filled participant at the first site
        self.models = {name: next(m for m in apps.get_models() if m.__name__ == name
                                  and m._meta.app_label in {"participants", "visits", "allocation", "safety", "audit"})
                       for name in self.ORDER}
        self.tables = {name: _Table(model, connection) for name, model in self.models.items()}
        self.next_id = {}
        for name, model in self.models.items():
            top = model.objects.order_by("-pk").values_list("pk", flat=True).first()
            self.next_id[name] = (top or 0) + 1
        self.rows: dict[str, list] = {name: [] for name in self.ORDER}
        self.envelopes_opened: list = []
        self.last_hash, self.count = chain or (GENESIS, 0)
        self.counts: dict[str, int] = {}
        self.trial_state = "setup"
        lst = Envelope.objects.order_by("-allocation_list_id").values_list("allocation_list_id", flat=True).first()
        self.envelopes = {e.random_number: e for e in Envelope.objects.filter(allocation_list_id=lst)}
        from annulus.allocation.models import AllocationList

        self.level2 = AllocationList.objects.get(pk=lst).level2_key
        self.case_width = protocol.randomisation.case_number_width
        self.enrolled = 0
        self.screened = 0
        self.visits = [v for v in protocol.schedule.visits if not v.procedure]
        self.last_visit = [v for v in protocol.schedule.visits if v.follow_up][-1]

    # -- helpers

    def new(self, name: str, **fields):
        table = self.tables[name]
        obj = _Row()
        values = obj.__dict__
        values.update(table.defaults)
        for key, value in fields.items():
            if key in table.fk:
                values[table.fk[key]] = value if value is None or isinstance(value, int) else value.pk
            else:
                values[key] = value
        obj.id = self.next_id[name]
        self.next_id[name] += 1
        self.rows[name].append(obj)
        return obj

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A clinic time (the site's zone) on ``day``, in UTC as the audit trail stores it."""
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(dt_timezone.utc)

    def audit(self, actor, action: str, obj_type: str, obj_id, when: datetime, *, changes=None, reason: str = "",
              participant_id=None, version: str | None = None):
        from annulus.audit.services import canonical, chain_hash

        when = when.astimezone(dt_timezone.utc)
        version = self.pv.version if version is None else version
        self.count += 1
        body = {"seq": self.count, "timestamp": when.isoformat(), "actor": actor.username, "action": action,
                "object_type": obj_type, "object_id": str(obj_id), "participant_id": participant_id,
                "changes": changes or {}, "reason": reason, "protocol_version": version}
        payload = canonical(body)
        digest = chain_hash(self.last_hash, payload)
        self.new("AuditEvent", timestamp=when, actor=actor, actor_username=actor.username, action=action,
                 object_type=obj_type, object_id=str(obj_id), participant_id=participant_id, reason=reason,
                 protocol_version=version, payload=payload, prev_hash=self.last_hash, hash=digest)
        self.last_hash = digest

    def status(self, p, target: str, actor, when: datetime, reason: str = "") -> None:
        old = p.status
        p.status = target
        p.updated_at = when
        self.new("StatusChange", participant_id=p.id, from_status=old, to_status=target, at=when, by=actor,
                 reason=reason)
        self.audit(actor, "change", "participant", p.id, when, changes={"status": [old, target]}, reason=reason,
                   participant_id=p.id)

    def flush(self) -> None:
        from django.db import connection

        from annulus.allocation.models import Envelope

        memo: dict = {}
        with connection.cursor() as cursor:
            for name in self.ORDER:
                objs = self.rows[name]
                if objs:
                    table = self.tables[name]
                    rows = table.rows(objs, memo)
                    for i in range(0, len(rows), 2000):
                        cursor.executemany(table.sql, rows[i:i + 2000])
                    self.counts[name] = self.counts.get(name, 0) + len(objs)
                self.rows[name] = []
        if self.envelopes_opened:
            Envelope.objects.bulk_update(self.envelopes_opened, ["participant", "opened_at", "opened_by"],
                                         batch_size=500)
            self.counts["Envelope opened"] = self.counts.get("Envelope opened", 0) + len(self.envelopes_opened)
            self.envelopes_opened = []

    # -- the journey

    def chunk(self, k: int, take: int, first_day: date, days: int, pool: _Pool) -> None:
        from annulus.protocol import clean_evidence, evaluate
        from annulus.simulator import generate_candidates

        rng = random.Random(self.seed * 1_000_003 + k)
        taken = 0
        batch = 0
        people = []
        while taken < take:
            candidates = generate_candidates(take * 2 + 10, seed=self.seed * 1000 + k * 17 + batch,
                                             start=first_day, days=days)
            batch += 1
            for c in candidates:
                if taken >= take:
                    break
                if not c.consents:
                    continue
                consent_day = c.prescreened_on + timedelta(days=c.consent_delay_days)
                collected = consent_day + timedelta(days=2)
                cleaned = clean_evidence(self.protocol.eligibility, c.evidence, today=collected)
                result = evaluate(self.protocol.eligibility, cleaned, consent_day)
                if result.outcome == "eligible":
                    taken += 1
                elif result.outcome == "incomplete" or \
                        self.screened - self.enrolled >= SCREEN_FAILURE_SHARE * (self.enrolled + taken + 1):
                    continue
                people.append((c, consent_day, collected, cleaned, result))
                self.screened += 1
        sims = []
        for c, consent_day, collected, cleaned, result in people:
            p = self.screen(c, consent_day, collected, cleaned, result)
            if result.outcome == "eligible":
                sims.append(self.treat_and_follow(p, rng, pool))
        self.adverse_events(sims, k)

    def screen(self, c, consent_day: date, collected: date, cleaned: dict, result):
        from annulus.participants import services as ps

        coord, inv = self.users["coordinator"], self.users["investigator"]
        created = self.at(c.prescreened_on, 10)
        p = self.new("Participant", screening_number=f"S{self.next_id['Participant']:04d}",
                     initials=c.initials.upper(), full_name=c.full_name, sex=c.sex, phone=c.phone,
                     recruitment_source=c.source, site=self.site, prescreened_on=c.prescreened_on,
                     status="pre_screened", protocol_version=self.pv, created_by=coord, created_at=created,
                     updated_at=created)
        p.screening_number = f"S{p.id:04d}"
        self.new("StatusChange", participant_id=p.id, from_status="", to_status="pre_screened", at=created, by=coord,
                 reason="")
        self.audit(coord, "create", "participant", p.id, created, participant_id=p.id, changes={
            k: [None, v] for k, v in {"screening_number": p.screening_number, "initials": p.initials, "sex": p.sex,
                                      "recruitment_source": c.source, "site": self.site,
                                      "prescreened_on": c.prescreened_on, "status": "pre_screened"}.items()})
        consented_at = self.at(consent_day, 9)
        recorded = consented_at + timedelta(minutes=20)
        consent = self.new("Consent", participant_id=p.id, consent_version="1.0", consented_at=consented_at,
                           taken_by=inv, recorded_by=coord, recorded_at=recorded, protocol_version=self.pv)
        self.audit(coord, "create", "consent", consent.id, recorded, participant_id=p.id, changes={
            "consent_version": [None, "1.0"], "consented_at": [None, consented_at], "taken_by": [None, inv.username]})
        p.consent_day = consent_day
        self.status(p, "consented", coord, recorded, "informed consent signed")
        entered = self.at(collected, 12)
        stored = {f: (v.isoformat() if isinstance(v, date) else v) for f, v in cleaned.items()}
        evidence = {}
        for field, value in stored.items():
            evidence[field] = self.new("Evidence", participant_id=p.id, field=field, value=value,
                                       collected_on=collected, entered_by=coord, entered_at=entered,
                                       protocol_version=self.pv, superseded=False, change_reason="")
        self.audit(coord, "create", "screening_evidence", p.id, entered, participant_id=p.id,
                   changes={**{f: [None, v] for f, v in stored.items()}, "collected_on": [None, collected]})
        self.status(p, "screening", coord, entered, "screening started")
        decided = self.at(collected, 16)
        criteria = [{"id": r.criterion.id, "box": r.box, "holds": r.holds, "passed": r.passed,
                     "text": r.criterion.text.en,
                     "evidence": {f: {"value": evidence[f].value, "entered_by": coord.username,
                                      "entered_at": entered.isoformat()}
                                  for f in r.criterion.fields if f in evidence}}
                    for r in result.results]
        failing = [r.criterion.id for r in result.failing]
        d = self.new("EligibilityDecision", participant_id=p.id, outcome=result.outcome, criteria=criteria,
                     failing=failing, decided_at=decided, decided_by=inv, protocol_version=self.pv, superseded=False)
        self.audit(inv, "create", "eligibility_decision", d.id, decided, participant_id=p.id,
                   changes={"outcome": [None, result.outcome], "failing": [None, failing],
                            "signature": [None, ps.ELIGIBILITY_SIGNATURE]},
                   reason=f"electronic signature: {ps.ELIGIBILITY_SIGNATURE}")
        if result.outcome != "eligible":
            self.status(p, "screen_failed", inv, decided, "failed: " + ", ".join(failing))
            return p
        self.status(p, "eligible", inv, decided, "all criteria met")
        enrolled_at = self.at(collected + timedelta(days=3), 11)
        if self.trial_state == "setup":
            self.trial_state = "recruiting"
            self.audit(inv, "change", "trial_state", 1, enrolled_at, changes={"state": ["setup", "recruiting"]},
                       reason="first enrolment", version="")
        self.enrolled += 1
        number = f"{self.enrolled:0{self.case_width}d}"
        p.case_number, p.enrolled_at = number, enrolled_at
        self.audit(inv, "change", "participant", p.id, enrolled_at, participant_id=p.id,
                   changes={"case_number": [None, number], "enrolled_at": [None, enrolled_at]},
                   reason=f"enrolled as case {number}")
        self.status(p, "enrolled", inv, enrolled_at, f"enrolled as case {number}")
        return p

    def treat_and_follow(self, p, rng, pool: _Pool):
        from annulus.allocation import services as alloc
        from annulus.allocation.demo import DEMO_LOT_RESULTS
        from annulus.simulator.adverse_events import SimParticipant
        from annulus.visits import services as vs

        coord, inv, pharm = self.users["coordinator"], self.users["investigator"], self.users["pharmacist"]
        # randomisation: the envelope whose random number is the case number
        env = self.envelopes[p.case_number]
        opened = p.enrolled_at + timedelta(hours=1)
        env.participant_id, env.opened_at, env.opened_by = p.id, opened, inv
        self.envelopes_opened.append(env)
        self.audit(inv, "create", "randomisation", env.pk, opened, participant_id=p.id, reason="envelope opened",
                   changes={"random_number": [None, env.random_number], "drug_code": [None, env.drug_code]})
        self.status(p, "randomised", inv, opened, f"envelope {env.random_number} opened, drug code {env.drug_code}")
        arm = self.level2.get(env.group_label)
        # liposuction (day 0)
        enrolled_day = p.enrolled_at.astimezone(self.zone).date()
        lipo_day = enrolled_day + timedelta(days=int(rng.randrange(2, 9)))
        lipo_at = self.at(lipo_day, 14)
        volume = vs._decimal("fat_volume_ml", round(float(rng.gauss(150, 6))), *vs.FAT_VOLUME_ML, "mL")
        hours = vs._decimal("observation_hours", 4 if rng.random() > 0.1 else 4.5, *vs.OBSERVATION_HOURS, "hours")
        lipo = self.new("Liposuction", participant_id=p.id, performed_on=lipo_day, fat_volume_ml=volume,
                        anaesthesia="local", observation_hours=hours, complications="", recorded_by=inv,
                        recorded_at=lipo_at, protocol_version=self.pv, superseded=False, change_reason="")
        self.audit(inv, "create", "liposuction", lipo.id, lipo_at, participant_id=p.id, changes={
            k: [None, v] for k, v in {"performed_on": lipo_day, "fat_volume_ml": str(volume), "anaesthesia": "local",
                                      "observation_hours": str(hours), "complications": ""}.items()})
        # the product: released, dispensed, transplanted on day 21
        tx_day = lipo_day + timedelta(days=21)
        evaluated, failing = alloc.check_release(DEMO_LOT_RESULTS)
        checked_at = self.at(tx_day - timedelta(days=3), 15)
        lot = f"AD{env.random_number}-1"
        rel = self.new("ProductRelease", envelope_id=env.pk, lot_number=lot, tested_on=tx_day - timedelta(days=3),
                       results=evaluated, failing=failing, passed=not failing, checked_by=pharm, checked_at=checked_at,
                       superseded=False, reason="", qa_signed_by=None)
        self.audit(pharm, "create", "product_release", rel.id, checked_at, participant_id=p.id, version="",
                   reason="release checks recorded",
                   changes={"drug_code": [None, env.drug_code], "lot_number": [None, lot], "passed": [None, True],
                            "failing": [None, failing]})
        dispensed_at = self.at(tx_day, 8)
        disp = self.new("Dispensing", envelope_id=env.pk, release_id=rel.id, dispensed_at=dispensed_at,
                        dispensed_by=pharm)
        self.audit(pharm, "create", "dispensing", disp.id, dispensed_at, participant_id=p.id, version="",
                   reason="sachet dispensed", changes={"drug_code": [None, env.drug_code], "lot_number": [None, lot]})
        product = self.protocol.product
        tx_at = self.at(tx_day, 10)
        volume_ml = Decimal(str(product.injection_volume_ml))
        until = tx_day + timedelta(days=product.activity_restriction_days)
        t = self.new("Transplant", participant_id=p.id, envelope_id=env.pk, transplanted_at=tx_at,
                     disc_level=product.target_level, needle_gauge=product.needle_gauge, approach=product.approach,
                     imaging=product.imaging_guidance, volume_ml=volume_ml, drug_code_entered=env.drug_code,
                     activity_restriction_until=until, notes="", recorded_by=inv,
                     recorded_at=tx_at + timedelta(minutes=30))
        self.audit(inv, "create", "transplant", t.id, t.recorded_at, participant_id=p.id, changes={
            "transplanted_at": [None, tx_at], "disc_level": [None, t.disc_level],
            "needle_gauge": [None, t.needle_gauge], "approach": [None, t.approach], "imaging": [None, t.imaging],
            "volume_ml": [None, str(volume_ml)], "drug_code": [None, env.drug_code],
            "activity_restriction_until": [None, until]})
        self.status(p, "treated", inv, t.recorded_at, f"transplanted at {t.disc_level}, drug code {env.drug_code}")
        end_day = self.follow_up(p, rng, pool, arm, lipo_day, tx_day)
        return SimParticipant(p.id, p.consent_day, lipo_day, tx_day, arm), end_day

    def follow_up(self, p, rng, pool: _Pool, arm: str | None, lipo_day: date, tx_day: date) -> date:
        from annulus.simulator.trajectories import DOSES, VAS_MEAN, VAS_SD, expected_change
        from annulus.visits import crf, selectors

        coord, inv = self.users["coordinator"], self.users["investigator"]
        now = datetime.now(dt_timezone.utc)
        dose = DOSES.get(arm or "", 0.0)
        base_vas = min(95.0, max(40.0, rng.gauss(VAS_MEAN, VAS_SD)))
        responder = min(1.8, max(0.2, rng.gauss(1.0, 0.3)))
        baseline_score = None
        day = tx_day
        for pv in self.visits:
            target, start, end = selectors.window_of(pv, lipo_day, tx_day)
            if pv.id == "baseline":
                day = tx_day - timedelta(days=int(rng.randrange(1, 6)))
            else:
                day = target + timedelta(days=rng.randrange(-(pv.window.before_days // 2),
                                                          pv.window.after_days // 2 + 1))
            opened = self.at(day, 9)
            visit = self.new("Visit", participant_id=p.id, visit_id=pv.id, number=0, outcome="attended",
                             visit_date=day, reason="", forms=list(pv.forms), completed_at=None,
                             protocol_version=self.pv, created_by=coord, created_at=opened)
            self.audit(coord, "create", "visit", visit.id, opened, participant_id=p.id,
                       changes={"visit": [None, pv.id], "visit_date": [None, day], "outcome": [None, "attended"]})
            scored = pool.visits[pv.id][rng.randrange(len(pool.visits[pv.id]))]
            days = (day - tx_day).days if pv.id != "baseline" else 0
            change = expected_change(dose, days) * responder + (4.0 if pv.id == "w1" else 0.0)
            vas = int(round(min(100.0, max(0.0, base_vas + change + (rng.gauss(0, 8) if days > 0 else 0.0)))))
            collected = sorted(self.at(day, 9, int(rng.randrange(0, 59))) for _ in pv.forms)
            saves = []
            for form_id, when in zip(pv.forms, collected):
                late = rng.random() < 0.04
                delay = timedelta(days=float(rng.uniform(3.5, 8))) if late else timedelta(hours=float(rng.uniform(1, 40)))
                saves.append(when + delay)
            saves.sort()
            first_follow_up = pv.follow_up and p.status == "treated"
            for i, (form_id, when, saved) in enumerate(zip(pv.forms, collected, saves)):
                if form_id == "vas":
                    items = {"vas_mm": vas}
                    computed = crf.compute(self.protocol, "vas", items,
                                           baseline=baseline_score if pv.id != "baseline" else None)
                    if pv.id == "baseline":
                        baseline_score = computed.get("score")
                else:
                    items, computed = scored[form_id]
                actor = inv if form_id in ("imaging", "joa", "adverse_events") else coord
                record = self.new("FormRecord", visit_id=visit.id, participant_id=p.id, form_id=form_id,
                                  state="complete", items=items, computed=computed, revision=1, collected_at=when,
                                  submitted_at=saved, created_at=saved, updated_at=saved)
                self.new("FormRevision", form_id=record.id, number=1, state="complete", items=items,
                         computed=computed, collected_at=when, saved_by=actor, saved_at=saved, reason="")
                self.audit(actor, "create", "crf_form", record.id, saved, participant_id=p.id, changes={
                    "visit": pv.id, "form": form_id, "revision": 1, **{k: [None, v] for k, v in items.items()},
                    "state": [None, "complete"], "collected_at": [None, when]})
                if i == len(pv.forms) - 1:
                    visit.completed_at = saved
                    self.audit(actor, "change", "visit", visit.id, saved, participant_id=p.id,
                               changes={"visit": pv.id, "completed_at": [None, saved]})
                if first_follow_up and i == 0:
                    self.status(p, "in_follow_up", actor, saved,
                                f"first follow-up data saved ({pv.name.en} visit)")
                if pv.id == self.last_visit.id and i == len(pv.forms) - 1:
                    self.status(p, "completed", actor, saved, f"{self.last_visit.name.en} visit complete")
                if form_id == "vas" and pv.id != "baseline" and rng.random() < VAS_CORRECTION_P:
                    self.correct_vas(p, pv, record, vas, baseline_score, saved, rng, now)
        return day

    def correct_vas(self, p, pv, record, vas: int, baseline_score, saved: datetime, rng, now: datetime) -> None:
        """A transcription error found at source data verification, corrected with a reason."""
        from annulus.visits import crf

        inv = self.users["investigator"]
        fixed = {"vas_mm": int(min(100, max(0, vas + int(rng.choice([-2, -1, 1, 2])))))}
        if fixed["vas_mm"] == vas:
            return
        computed = crf.compute(self.protocol, "vas", fixed, baseline=baseline_score)
        when = min(saved + timedelta(days=int(rng.randrange(5, 15))), now - timedelta(minutes=5))
        record.state, record.items, record.computed, record.revision, record.updated_at = \
            "changed", fixed, computed, 2, when
        self.new("FormRevision", form_id=record.id, number=2, state="changed", items=fixed, computed=computed,
                 collected_at=record.collected_at, saved_by=inv, saved_at=when, reason=CORRECTION_REASON)
        self.audit(inv, "change", "crf_form", record.id, when, participant_id=p.id, reason=CORRECTION_REASON,
                   changes={"visit": pv.id, "form": "vas", "revision": 2, "vas_mm": [vas, fixed["vas_mm"]],
                            "state": ["complete", "changed"]})

    def adverse_events(self, sims: list, k: int) -> None:
        """The simulator's non-serious events within each participant's follow-up, each with its
        first revision (serious ones would need SAE reports and their clocks: left out)."""
        from annulus.safety import services as ss
        from annulus.safety.causality import stored as stored_causality
        from annulus.simulator.adverse_events import simulate_adverse_events

        if not sims:
            return
        ends = {s.id: end for s, end in sims}
        today = datetime.now(self.zone).date()
        events = simulate_adverse_events([s for s, _ in sims], seed=self.seed * 1000 + k, today=today)
        numbers: dict[int, int] = {}
        users = [self.users["coordinator"], self.users["investigator"]]
        for i, ev in enumerate(events):
            f = dict(ev.fields)
            if f.get("serious") or f["onset_at"].date() > ends[ev.participant_id]:
                continue
            for key in ("onset_at", "end_at", "first_knowledge_at"):
                if f.get(key) is not None:
                    f[key] = f[key].replace(tzinfo=self.zone).astimezone(dt_timezone.utc)
            data = ss.clean_event(f, protocol=self.protocol)
            actor = users[i % 2]
            numbers[ev.participant_id] = number = numbers.get(ev.participant_id, 0) + 1
            created = (data.get("first_knowledge_at") or data["onset_at"]) + timedelta(hours=3)
            ae = self.new("AdverseEvent", participant_id=ev.participant_id, number=number, protocol_version=self.pv,
                          created_by=actor, created_at=created, updated_at=created, revision=1,
                          **stored_causality(data))
            snap = ss.snapshot(ae, self.protocol)
            self.new("AdverseEventRevision", adverse_event_id=ae.id, revision=1, data=snap,
                     changes={key: [None, v] for key, v in snap.items()}, reason="", saved_by=actor, saved_at=created)
            self.audit(actor, "create", "adverse_event", ae.id, created, participant_id=ev.participant_id,
                       changes={key: [None, v] for key, v in snap.items() if v not in ("", None, [])})
