"""``annulus unblinding seal|emergencies``."""

import pytest

from annulus.allocation import services, testing
from annulus.allocation.models import Envelope
from annulus.cli import main
from tests.conftest import TEST_PASSWORD


@pytest.mark.req("P-3.3", "P-3.6")
def test_seal_check(users, capsys):
    assert main(["unblinding", "seal"]) == 2
    assert "no allocation list" in capsys.readouterr().err
    testing.generate(users)
    assert main(["unblinding", "seal"]) == 0
    assert "100 envelopes" in capsys.readouterr().out
    e = Envelope.objects.get(serial=3)
    Envelope.objects.filter(pk=e.pk).update(group_label="A" if e.group_label != "A" else "B")
    assert main(["unblinding", "seal"]) == 1
    assert "BROKEN table" in capsys.readouterr().out


@pytest.mark.req("P-3.7")
def test_emergency_listing(users, make_participant, capsys, monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    services.emergency_unblind(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD,
                               reason="Emergency surgery; anaesthetist asks")
    assert main(["unblinding", "emergencies"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "number,case_number,time,by,reason,scope"
    assert out[1].startswith("EU-001,001,") and out[1].endswith("participant 001 only")
    for arm in ("high", "mid", "low", "control", "Placebo"):
        assert arm not in "\n".join(out)
