"""Helpers shared by the trial-report page and API tests (no tests here)."""

from __future__ import annotations

import re

import pytest

from .conftest import fresh, shared_rows

# the demo accounts ``annulus.bench.fill`` creates, by the role they hold
DEMO = {"statistician": "statistician", "pi": "pi", "investigator": "investigator", "data_manager": "datamanager",
        "coordinator": "coordinator", "monitor": "monitor", "pharmacist": "pharmacist", "designer": "designer",
        "dsmb": "dsmb", "ethics": "ethics", "auditor": "auditor", "admin": "admin"}
# who builds the report (``report.build``: the statistician, the investigator - the PI - and the data
# manager) and who may not
BUILDERS = ["statistician", "pi", "data_manager"]
FORBIDDEN = ["designer", "dsmb", "ethics", "coordinator", "monitor", "pharmacist", "auditor", "admin"]
PARTICIPANTS = 24


def filled(n: int = PARTICIPANTS) -> dict:
    """A trial of ``n`` participants who completed follow-up (``annulus.bench.fill``, the simulator's
    dose effect on the VAS), still blinded; returns its accounts by role."""
    from django.contrib.auth import get_user_model

    from annulus.bench.fill import fill

    fill(n, seed=5, chunk=25, pool=8)
    users = get_user_model().objects
    return {role: users.get(username=name) for role, name in DEMO.items()}


@pytest.fixture(scope="class")
def _filled(request, django_db_setup, django_db_blocker):
    """``filled()`` once for a class of tests (``conftest.shared_rows``): what a test writes is
    undone after it, the filled trial after the class."""
    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            accounts = filled()
        yield accounts


@pytest.fixture
def people(_filled, db) -> dict:
    """The filled trial's accounts by role (fresh copies for each test)."""
    return {role: fresh(user) for role, user in _filled.items()}


def set_state(state: str) -> None:
    """The trial's state as the unblinding steps leave it (their signatures are tested elsewhere)."""
    from annulus.trial.models import TrialState

    TrialState.objects.update_or_create(id=1, defaults={"state": state})


def arm_leaks(text: str) -> list[str]:
    """Whatever in a report's text names an arm or a group: an arm's name in either language, a
    group label (``Group A``, ``A组``)."""
    from annulus.trial.selectors import active_protocol

    found = []
    for arm in active_protocol().arms:
        found += [name for name in (arm.name.en, arm.name.zh) if name in text]
    return found + re.findall(r"\bGroup [A-D]\b", text) + re.findall(r"(?<![A-Za-z])[A-D]组", text)


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def body(resp) -> bytes:
    return b"".join(resp.streaming_content) if resp.streaming else resp.content
