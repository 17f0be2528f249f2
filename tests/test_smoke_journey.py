import pytest


@pytest.mark.req("P-2.3")
def test_make_participant_reaches_enrolled(make_participant):
    p = make_participant("enrolled")
    assert p.status == "enrolled"
    assert p.case_number == "001"
