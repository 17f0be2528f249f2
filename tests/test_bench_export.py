"""The export benchmark's bulk fill (``annulus.bench.fill``): the rows it writes straight into the
tables are read by the export reader like the services' rows - every participant with every
scheduled visit's forms, values within the data dictionary's ranges and codelists, scores as the
eCRF computes them, corrections in the change history - and the audit chain it appends to stays
intact (X-7.6)."""

from __future__ import annotations

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.django_db]

N = 20


@pytest.fixture
def filled(db):
    from annulus.bench.fill import fill

    return fill(N, seed=5, chunk=8, pool=6)


def _in_range(entry, value) -> bool:
    if value is None:
        return True
    if entry.codelist:
        codes = {str(c[0]) for c in entry.codelist}
        values = value if isinstance(value, list) else [value]
        return all(str(v) in codes for v in values)
    if entry.type in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (entry.min is None or value >= entry.min) and (entry.max is None or value <= entry.max)
    return True


@pytest.mark.req("X-7.6")
def test_fill_is_read_by_the_export_reader_with_every_visit_and_valid_values_and_a_valid_audit_chain(
        filled, capsys):
    from django.contrib.auth import get_user_model

    from annulus.exports import source
    from annulus.trial.selectors import active_protocol, data_dictionary

    protocol, dictionary = active_protocol(), data_dictionary()
    statistician = get_user_model().objects.get(username="statistician")
    now = timezone.now()
    subjects = list(source.subjects(statistician, as_of=now))
    assert source.count(now) == len(subjects)
    followed = [s for s in subjects if s.case_number]
    assert len(followed) == N
    assert filled["FormRecord"] >= N * 80
    scheduled = [v for v in protocol.schedule.visits if not v.procedure]
    checked = 0
    corrected = 0
    for s in followed:
        assert s.status == "completed"
        assert s.transplanted_at and s.randomised_at and s.liposuction_on
        assert s.group_label is None and s.arm is None  # the statistician is blinded
        assert [v.visit for v in s.visits if v.outcome == "attended" and v.visit in {x.id for x in scheduled}] == \
            [v.id for v in scheduled]
        records = {(r.visit, r.form): r for r in s.records}
        for v in scheduled:
            for form_id in v.forms:
                r = records.get((v.id, form_id))
                assert r is not None, f"{s.subject} {v.id} {form_id} missing"
                assert r.state in ("complete", "changed")
                assert r.changes and r.changes[0].revision == 1
                corrected += r.state == "changed"
                for item, value in r.values.items():
                    entry = dictionary.entry(form_id, item)
                    assert entry is not None, f"{form_id}.{item} is not in the dictionary"
                    assert _in_range(entry, value), f"{s.subject} {v.id} {form_id}.{item} = {value!r}"
                    checked += 1
        vas = records[("m12", "vas")]
        assert vas.computed.get("vas_mm") == vas.values["vas_mm"]
        sf36 = records[("baseline", "sf36")]
        assert isinstance(sf36.computed.get("pcs"), float) and isinstance(sf36.computed.get("mcs"), float)
        assert records[("screening", "eligibility")].values["outcome"] == "eligible"
    assert checked > N * 600
    # a screen failure or two besides: consented, screened and failed, read as such
    assert all(s.eligible is False and s.failed_criteria for s in subjects if not s.case_number)
    # a correction is a change with its reason in the record's history
    changed = [r for s in followed for r in s.records if r.state == "changed"]
    assert corrected == len(changed)
    for r in changed:
        assert len(r.changes) == 2 and r.changes[1].reason and r.changes[1].values != r.changes[0].values

    # the audit chain it appended to is intact, and every form's creation is on it
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import verify_chain
    from annulus.cli import main
    from annulus.visits.models import FormRecord

    result = verify_chain()
    assert result.ok
    assert result.checked == AuditEvent.objects.count()
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out
    # every form's creation is on the trail, under the form's id
    forms = set(FormRecord.objects.values_list("id", flat=True))
    audited = {int(i) for i in AuditEvent.objects.filter(object_type="crf_form", action="create")
               .values_list("object_id", flat=True)}
    assert forms == audited
