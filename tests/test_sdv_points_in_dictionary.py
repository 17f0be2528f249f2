"""Every data point the monitoring plan puts up for source-data verification is an entry of the data
dictionary (P-7.1): the two lists agree, so nothing derived (the activity restriction computed from
the transplantation day) is offered for verification and nothing typed is left out of the dictionary."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")


def test_every_sdv_point_is_a_dictionary_entry(at_w1, users):  # noqa: F811
    from annulus.monitoring import selectors
    from annulus.trial.selectors import data_dictionary

    p, _v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    for form in ("vas", "odi"):
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id=form,
                     items=GOOD[form], complete=True, collected_at=aware(day))
    points = selectors.evaluate([p.pk])[p.pk]
    forms = {pt.form for pt in points}
    # the participant carries screening records, both procedures and eCRF forms
    assert {"consent", "screening", "eligibility", "liposuction", "vas", "odi"} <= forms, forms
    dictionary = data_dictionary()
    missing = sorted({(pt.form, pt.item) for pt in points if dictionary.entry(pt.form, pt.item) is None})
    assert missing == []
    assert not any(pt.item == "activity_restriction_until" for pt in points)


def test_procedure_and_consent_items_are_dictionary_entries(protocol_version):
    """The items the monitoring side reads from the consent, liposuction and transplantation records
    (these records are not eCRF forms) are each an entry of the dictionary's form of that name."""
    from annulus.monitoring import selectors
    from annulus.trial.selectors import data_dictionary

    dictionary = data_dictionary()
    listed = ([("consent", i) for i in selectors.CONSENT_ITEMS]
              + [("liposuction", i) for i in selectors.LIPOSUCTION_ITEMS]
              + [("transplant", i) for i in selectors.TRANSPLANT_ITEMS])
    assert [fi for fi in listed if dictionary.entry(*fi) is None] == []
    # and the other way round: every dictionary entry of these records is verified
    for form, items in (("consent", selectors.CONSENT_ITEMS), ("liposuction", selectors.LIPOSUCTION_ITEMS),
                        ("transplant", selectors.TRANSPLANT_ITEMS)):
        assert {e.item for e in dictionary.form(form).items} == set(items), form
