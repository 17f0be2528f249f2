"""X-3.8 on the safety pages with data present: with events in every arm, a per-arm threshold
crossed and open and closed reports stored, no page, export or API route of the safety module
shows a blinded role an arm, and the pages do not differ between events of different arms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.safety import services
from annulus.safety.models import AdverseEvent, DsmbReport

pytestmark = pytest.mark.django_db
BLINDED = ["investigator", "coordinator", "statistician", "monitor", "data_manager", "auditor", "ethics", "admin", "pharmacist"]
ARM_WORDS = ["High dose", "Mid dose", "Low dose", "Placebo", "20x10^6", "normal saline", "Not yet allocated"]


def _clean(text: str, ids) -> str:
    text = re.sub(r'[A-Za-z0-9_\-]{32,}', "TOKEN", text)
    text = re.sub(r"/safety/sae/reports/\d+/", "/SAE/", text)
    for a, b in ids:
        text = text.replace(a, b)
    return text


@pytest.mark.req("P-6.4", "X-3.8")
def test_safety_pages_show_blinded_roles_no_arm(users, make_participant, arms, client_for):
    people = [make_participant("enrolled") for _ in range(4)]
    arms.update({people[0].pk: "high", people[1].pk: "high", people[2].pk: "high", people[3].pk: "control"})
    now = timezone.now()
    ids = []
    for i, p in enumerate(people):
        ae = services.record_adverse_event(
            actor=users["investigator"], participant_id=p.pk, term="Back pain flare", onset_at=now - timedelta(days=2),
            serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=3), grade=3,
            causality_liposuction="not_related", causality_injection="possible", causality_product="possible",
            expectedness="expected", action_taken="hospitalised", outcome="recovering")
        ids.append(ae.pk)
    services.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind="closed")
    services.generate_report(actor=users["investigator"], as_of=timezone.localdate(), kind="open")
    open_pk = DsmbReport.objects.get(kind="open").pk
    sae_pk = AdverseEvent.objects.get(pk=ids[0]).sae_reports.first().pk
    pages = ["/", "/safety/", "/safety/?listing=serious", "/safety/?listing=deaths", "/safety/?format=csv",
             "/safety/sae/?show=all", f"/safety/sae/reports/{sae_pk}/", "/safety/dsmb/", f"/safety/dsmb/reports/{open_pk}/",
             "/notifications/", "/api/v1/safety/adverse-events", "/api/v1/safety/sae-reports",
             "/api/v1/safety/dsmb/reports", "/api/v1/safety/dsmb/schedule"]
    for role in BLINDED:
        c = client_for(role)
        for url in pages:
            r = c.get(url)
            body = r.content.decode("utf-8", "replace")
            for word in ARM_WORDS:
                assert word not in body, (role, url, word)
            assert "Threshold alerts" not in body
        # the page of an event in the high arm and one in the control arm differ only by their ids
        a = c.get(f"/safety/adverse-events/{ids[0]}/")
        b = c.get(f"/safety/adverse-events/{ids[3]}/")
        assert a.status_code == b.status_code
        if a.status_code == 200:
            pa, pb = people[0], people[3]
            norm = lambda r, p, ae: _clean(r.content.decode(), [(f"/safety/adverse-events/{ae}/", "/AE/"),  # noqa: E731
                                                                 (f"/participants/{p.pk}/", "/P/"), (p.case_number, "CASE"),
                                                                 (p.screening_number, "SCR")])
            assert norm(a, pa, ids[0]) == norm(b, pb, ids[3])
