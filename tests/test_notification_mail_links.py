"""Notification e-mails carry absolute links built from ANNULUS_SITE_URL, and every mail the
product sends goes through the one notification service. The notifications page names each
notification by a random key, never by its row id, whose gaps would count other users' messages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from annulus.safety import services as safety
from annulus.trial.models import Notification
from annulus.trial.services import notify

pytestmark = pytest.mark.django_db
SITE = "https://trial.example.org/annulus"
SRC = Path(__file__).resolve().parents[1] / "src" / "annulus"


@pytest.fixture
def mailed(users, settings):
    settings.ANNULUS_SITE_URL = SITE
    for u in users.values():
        u.email = f"{u.username}@example.org"
        u.save(update_fields=["email"])
    mail.outbox.clear()
    return users


def links_in(text: str) -> list[str]:
    """URLs and site paths (a "/" not inside a word such as Asia/Shanghai)."""
    return re.findall(r"https?://\S+|(?<![\w:/])/\S+", text)


def test_every_notification_mail_link_is_absolute(mailed, make_participant, arms, django_capture_on_commit_callbacks):
    users = mailed
    p, q = make_participant("enrolled"), make_participant("enrolled")
    arms.update({p.pk: "high", q.pk: "high"})
    now = timezone.now()
    inv = users["investigator"]
    with django_capture_on_commit_callbacks(execute=True):
        # an SAE that is a SUSAR (sae + susar), which also crosses the DSMB thresholds (dsmb_alert)
        ae = safety.record_adverse_event(
            actor=inv, participant_id=p.pk, term="Discitis", onset_at=now - timedelta(days=3), serious=True,
            serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(days=2), grade=3,
            causality_liposuction="not_related", causality_injection="probable", causality_product="possible",
            expectedness="unexpected", action_taken="hospitalised", outcome="recovering")
        safety.notify_overdue(now=now + timedelta(days=30))  # sae_overdue
        safety.record_recommendation(actor=users["dsmb"], meeting_on=timezone.localdate(), decision="continue",
                                     summary="Continue unchanged.")  # dsmb_recommendation
        notify(users=[inv], subject="Plain", body="No link here.")  # no link: none is invented
    kinds = set(Notification.objects.values_list("kind", flat=True))
    assert {"sae", "susar", "sae_overdue", "dsmb_alert", "dsmb_recommendation"} <= kinds
    assert len(mail.outbox) >= Notification.objects.exclude(subject="Plain").count() > 5
    for m in mail.outbox:
        found = links_in(m.body)
        if m.subject == "Plain":
            assert found == []
            continue
        assert found, m.body
        for link in found:
            assert link.startswith(SITE + "/"), (m.subject, link)
    # the in-app notification keeps its link within the site
    assert Notification.objects.filter(kind="sae", user=inv).get().link == "/safety/sae/"
    assert ae.label in Notification.objects.filter(kind="sae", user=inv).get().subject


def test_only_the_notification_service_sends_mail():
    """A mail sent anywhere else would bypass the absolute-link and no-allocation rules."""
    senders = [path.relative_to(SRC).as_posix() for path in SRC.rglob("*.py")
               if re.search(r"\b(send_mail|send_mass_mail|EmailMessage|EmailMultiAlternatives|mail_admins)\b",
                            path.read_text(encoding="utf-8"))]
    assert senders == ["trial/services.py"]


def test_notifications_page_shows_no_global_ids(users, client_for):
    inv, others = users["investigator"], [users["dsmb"], users["coordinator"], users["pi"]]
    mine = []
    for i in range(5):  # other users' notifications in between make gaps in the row ids
        notify(users=others, subject=f"other {i}", body="x")
        mine += notify(users=[inv], subject=f"mine {i}", body="y")
    c = Client(enforce_csrf_checks=True)
    c.force_login(inv)
    page = c.get("/notifications/").content.decode()
    for n in mine:
        assert n.subject in page
    values = re.findall(r'name="read" value="([^"]*)"', page)
    assert len(values) == 5
    assert not any(v.isdigit() for v in values), values
    assert {n.key for n in mine} == set(values)
    # marking one read by its key, with the CSRF token a browser sends
    r = c.post("/notifications/", {"read": mine[2].key, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 302
    assert Notification.objects.get(pk=mine[2].pk).read_at is not None
    assert Notification.objects.filter(user=inv, read_at__isnull=True).count() == 4
    # someone else's key marks nothing
    theirs = Notification.objects.filter(user=users["dsmb"]).first()
    c.post("/notifications/", {"read": theirs.key, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert Notification.objects.get(pk=theirs.pk).read_at is None
