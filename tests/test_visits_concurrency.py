"""Against PostgreSQL: eCRF forms of one visit saved at the same moment by several users all
land, the participant moves to follow-up once, and the audit chain stays whole (X-7.3, P-4.5).

Run with, for example:
ANNULUS_TEST_DB_NAME=test_visits DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    .venv/bin/pytest tests/test_visits_concurrency.py
"""

import pytest

from tests.conftest import postgres_url, race

from .test_allocation_concurrency import committed  # noqa: F401
from .test_visits_support import GOOD, at_w1, transplant_dates, trial_participant  # noqa: F401

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")]


@pytest.mark.req("P-4.5", "X-7.3")
def test_first_follow_up_forms_saved_at_once_all_land(committed, at_w1, users):
    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import verify_chain
    from annulus.participants.models import Participant
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, visit = at_w1
    assert Participant.objects.get(pk=p.pk).status == "treated"
    forms = ["vas", "odi", "joa", "sf36", "vitals", "adverse_events"]
    who = [users["coordinator"], users["investigator"]]

    def save(i, form_id):
        return lambda: vs.save_form(actor=who[i % 2], participant_id=p.pk, visit_key="w1", form_id=form_id,
                                    items=GOOD[form_id], complete=True)

    results = race([save(i, f) for i, f in enumerate(forms)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert set(FormRecord.objects.filter(visit=visit).values_list("form_id", flat=True)) == set(forms)
    assert Participant.objects.get(pk=p.pk).status == "in_follow_up"
    moves = AuditEvent.objects.filter(participant_id=p.pk, object_type="participant", payload__contains="in_follow_up")
    assert moves.count() == 1
    assert verify_chain().ok
