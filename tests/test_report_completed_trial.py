"""The trial report of a simulated completed trial (issue 15): 100 participants filled through
every visit to 24 months with the simulator's known dose effect on the VAS
(``annulus.simulator.trajectories.expected_change``), reported blinded before unblinding and by
treatment after the second level, in both languages, through the service the page and the command
use. The CONSORT counts equal the database's, the estimated effects recover the simulated ones,
and the blinded report carries no arm."""

from __future__ import annotations

import re

import pytest

from annulus.simulator.trajectories import DOSES, expected_change

pytestmark = [pytest.mark.django_db, pytest.mark.req("X-8.5")]

N = 100


@pytest.fixture
def completed(db, tmp_path, settings):
    from annulus.bench.fill import fill

    settings.VAR_DIR = tmp_path
    return fill(N, seed=11, chunk=25, pool=12)


def _state(state: str) -> None:
    from annulus.trial.models import TrialState

    TrialState.objects.update_or_create(id=1, defaults={"state": state})


def _results(user, tmp_path, *, unblinded: bool, language: str = "en", fmt: str = "html"):
    from annulus.reports import services

    got = {}
    report = services.build(actor=user, unblinded=unblinded, language=language, fmt=fmt,
                            out=tmp_path / f"report-{unblinded}-{language}.{fmt}", results_sink=got.update)
    return report, got


def test_blinded_and_unblinded_reports_of_a_completed_trial(completed, tmp_path):
    from django.contrib.auth import get_user_model

    from annulus.allocation.models import Envelope
    from annulus.participants.models import Participant
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    stat = get_user_model().objects.get(username="statistician")
    randomised = Envelope.objects.filter(participant__isnull=False).count()
    consented = Participant.objects.filter(consents__isnull=False).distinct().count()
    assert randomised == N

    # before unblinding: only the blinded report; everything pooled, no arm anywhere
    report, blinded = _results(stat, tmp_path, unblinded=False)
    assert report.blinding == "blinded" and blinded["arms"] is None
    assert blinded["consort"]["assessed"] == consented and blinded["consort"]["randomised"] == randomised
    html = (tmp_path / "report-False-en.html").read_text(encoding="utf-8")
    for arm in protocol.arms:
        assert arm.name.en not in html
    assert not re.search(r"Group [A-D]", html)
    vas = blinded["endpoints"][0]
    assert vas["parameter"] == "VAS" and vas["model"]["n_subjects"] == randomised
    assert {r["arm"] for r in vas["lsmeans"]} == {None}

    # after the second-level unblinding: by treatment, and the effects are recovered
    _state("unblinded_2")
    report, unblinded = _results(stat, tmp_path, unblinded=True)
    assert report.blinding == "arms"
    assert sum(a["allocated"] for a in unblinded["consort"]["arms"]) == randomised
    names = {a.name.en: a.id for a in protocol.arms}
    vas = unblinded["endpoints"][0]
    primary = [c for c in vas["contrasts"] if c["visit"] == protocol.analysis.primary.primary_visit]
    assert len(primary) == 3
    day = {v.id: v.offset_days for v in protocol.schedule.visits}[protocol.analysis.primary.primary_visit]
    for c in primary:
        truth = expected_change(DOSES[names[c["arm"]]], day) - expected_change(0.0, day)
        # the Dunnett-adjusted intervals cover the three true differences together with 95 % confidence
        assert c["lower_dunnett"] <= truth <= c["upper_dunnett"], (c["arm"], truth, c)
        assert c["estimate"] < 0  # every dose lowers the pain more than placebo
    assert vas["mcpmod"]["selected"] is not None  # a dose-response signal is found

    # the Chinese PDF of the same data
    report, zh = _results(stat, tmp_path, unblinded=True, language="zh-hans", fmt="pdf")
    pdf = (tmp_path / "report-True-zh-hans.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and report.sha256 and report.size == len(pdf)
    # the same numbers under the Chinese names of the arms (matched by dose)
    def by_dose(r):
        return {(r["doses"][c["arm"]], c["visit"]): round(c["estimate"], 6) for c in r["endpoints"][0]["contrasts"]}

    assert by_dose(zh) == by_dose(unblinded) and len(by_dose(zh)) == 21
