"""An adverse-event task still open is open work before the database lock: it is listed on the
pre-lock checklist until an adverse event answers it or it is dismissed with a reason."""

from __future__ import annotations

import pytest

from annulus.allocation import selectors
from annulus.safety import services as safety

pytestmark = [pytest.mark.django_db, pytest.mark.req("X-7.5", "P-6.1")]


def _keys():
    return set(selectors.lock_checklist()["items"])


def test_an_open_ae_task_is_on_the_checklist_until_dismissed(users, make_participant):
    p = make_participant("enrolled")
    task = safety.open_ae_task(actor=users["coordinator"], participant_id=p.pk, key=f"test:{p.pk}", source="ae_review",
                               description="AE review = yes at the 1-week visit")
    checklist = selectors.lock_checklist()
    assert f"ae_task:{task.pk}" in _keys()
    group = next(g for g in checklist["groups"] if g["group"] == "ae_tasks")
    assert group["open"] == 1 and "AE review = yes" in group["items"][0]["label"]
    assert any(i["key"] == f"ae_task:{task.pk}" for i in checklist["blocking"])
    safety.dismiss_ae_task(actor=users["investigator"], task_id=task.pk, reason="Reviewed: back pain known at baseline")
    assert f"ae_task:{task.pk}" not in _keys()
