"""The two key holders land on their own work: the pharmacist's queue and the designer's list."""

import pytest

from annulus.allocation import testing
from annulus.allocation.models import Envelope


@pytest.mark.req("P-3.4", "P-4.2")
def test_pharmacist_dashboard_shows_the_queue(users, make_participant, client_for, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)
    people = testing.randomised(users, make_participant, 3)
    envelopes = [Envelope.objects.get(participant=p) for p in people]
    testing.released_and_dispensed(users, envelopes[0])
    testing.transplanted(users, people[1], envelopes[1])
    html = client_for("pharmacist").get("/").content.decode()
    assert "Pharmacy work queue" in html
    # one awaiting release, one dispensed awaiting transplant, one transplanted
    assert "awaiting release checks</span><b>1</b>" in html
    assert "dispensed, awaiting transplant</span><b>1</b>" in html
    assert "transplanted</span><b>1</b>" in html


@pytest.mark.req("P-3.1")
def test_designer_dashboard_shows_the_list_state(users, make_participant, client_for):
    assert "No allocation list has been generated yet." in client_for("designer").get("/").content.decode()
    testing.generate(users)
    html = client_for("designer").get("/").content.decode()
    assert "The list is generated and sealed." in html and "still sealed" in html


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("role", ["coordinator", "investigator", "monitor", "statistician"])
def test_blinded_roles_do_not_get_the_key_holders_panels(users, client_for, role):
    html = client_for(role).get("/").content.decode()
    assert "Pharmacy work queue" not in html and "Randomisation list" not in html
