"""DSMB threshold alerts outside the closed view: the e-mail (and the notification it is made
from) carries a link and names no arm, arm id, group label, case or event; the alert's page in the
app shows the DSMB the arm and the events, and nobody else. Mail never goes to the server log by
default, and production must name its mail backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from annulus.participants.models import Participant
from annulus.safety import services
from annulus.safety.models import AdverseEvent, DsmbAlert
from annulus.trial.models import Notification
from annulus.trial.selectors import active_protocol

pytestmark = pytest.mark.django_db
SITE = "https://annulus.example.org"


@pytest.fixture
def mailed(users, settings):
    """Every role has an e-mail address, so every notification is also mailed."""
    settings.ANNULUS_SITE_URL = SITE
    for u in users.values():
        u.email = f"{u.username}@example.org"
        u.save(update_fields=["email"])
    mail.outbox.clear()
    return users


def event(users, p, **over):
    now = timezone.now()
    fields = dict(term="Back pain flare", onset_at=now - timedelta(days=1), serious=False, serious_criteria=[], grade=3,
                  causality_liposuction="not_related", causality_injection="possible", causality_product="unlikely",
                  expectedness="expected", action_taken="treatment", outcome="recovering")
    fields.update(over)
    return services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **fields)


def forbidden_words() -> list[str]:
    """Arm names (both languages), arm ids, and every participant's case and screening number."""
    words = []
    for a in active_protocol().arms:
        words += [a.name.en, a.name.zh, a.id]
    for case, screening in Participant.objects.values_list("case_number", "screening_number"):
        words += [w for w in (case, screening) if w]
    return words


def assert_no_allocation_or_case(text: str) -> None:
    for w in forbidden_words():
        assert not re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", text, re.IGNORECASE), (w, text)
    assert not re.search(r"\bAE\d", text), text  # an event label such as 005-AE03
    assert not re.search(r"\b[A-D]\b", text), text  # a group label
    assert not re.search(r"\b(arm|group|label)\s*[:=]", text, re.IGNORECASE), text


def dsmb_mails(users) -> list:
    return [m for m in mail.outbox if m.to == [users["dsmb"].email]]


@pytest.mark.req("P-6.4", "X-3.8")
def test_every_dsmb_alert_mail_names_no_arm_and_no_case(mailed, make_participant, arms, client_for,
                                                        django_capture_on_commit_callbacks):
    users = mailed
    people = [make_participant("enrolled") for _ in range(4)]
    arms.update({people[0].pk: "mid", people[1].pk: "mid", people[2].pk: "mid", people[3].pk: "low"})
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for p in people[:3]:  # three grade-3 events in the mid-dose arm
            event(users, p)
        event(users, people[3], term="Sudden cardiac death", grade=5, outcome="fatal", end_at=now - timedelta(hours=5),
              serious=True, serious_criteria=["death"], first_knowledge_at=now - timedelta(hours=4))
        event(users, people[1], term="Discitis", serious=True, serious_criteria=["hospitalisation"],
              first_knowledge_at=now - timedelta(hours=2), causality_product="possible", expectedness="unexpected")
    kinds = set(DsmbAlert.objects.values_list("threshold_id", flat=True))
    assert kinds == {"grade3_in_one_arm", "any_death", "related_sae"}
    sent = dsmb_mails(users)
    assert len(sent) == DsmbAlert.objects.count() == 3
    for m in sent:
        assert_no_allocation_or_case(m.subject)
        assert_no_allocation_or_case(m.body)
        links = re.findall(r"\S*/\S*", m.body)
        assert len(links) == 1 and re.fullmatch(rf"{re.escape(SITE)}/safety/dsmb/alerts/\d+/", links[0]), m.body
    # the in-app notification text is the mailed text: the same rule
    for n in Notification.objects.filter(kind="dsmb_alert"):
        assert_no_allocation_or_case(n.subject + "\n" + n.body)

    # inside the app the DSMB sees the arm and the events on the alert's page
    dsmb = client_for("dsmb")
    per_arm = DsmbAlert.objects.get(threshold_id="grade3_in_one_arm")
    page = dsmb.get(f"/safety/dsmb/alerts/{per_arm.pk}/").content.decode()
    assert "Mid dose" in page
    for ae in AdverseEvent.objects.filter(pk__in=per_arm.adverse_event_ids):
        assert ae.label in page
    death = DsmbAlert.objects.get(threshold_id="any_death")
    page = dsmb.get(f"/safety/dsmb/alerts/{death.pk}/").content.decode()
    assert "Low dose" in page and AdverseEvent.objects.get(term="Sudden cardiac death").label in page
    # blinded roles: the same 404 as for an alert that does not exist
    for role in ("investigator", "coordinator", "monitor", "statistician"):
        assert client_for(role).get(f"/safety/dsmb/alerts/{per_arm.pk}/").status_code in (403, 404)
    assert dsmb.get("/safety/dsmb/alerts/999999/").status_code == 404


def _settings_in_a_fresh_process(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("ANNULUS_") or k in ("ANNULUS_VAR_DIR", "ANNULUS_TEST_DB_NAME")}
    clean.update(env)
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='annulus.site.settings'; "
            "from django.conf import settings; print(settings.EMAIL_BACKEND); print(settings.EMAIL_FILE_PATH); "
            "print(settings.ANNULUS_SITE_URL)")
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60)


def test_mail_goes_to_files_by_default_and_production_must_name_its_backend(tmp_path):
    dev = _settings_in_a_fresh_process(ANNULUS_VAR_DIR=str(tmp_path))
    assert dev.returncode == 0, dev.stderr
    backend, path, site = dev.stdout.split()
    assert backend == "django.core.mail.backends.filebased.EmailBackend"  # never the console (server log)
    assert path == str(tmp_path / "mail") and site.startswith("http")
    prod = _settings_in_a_fresh_process(ANNULUS_VAR_DIR=str(tmp_path), ANNULUS_SECRET_KEY="x" * 50,
                                        ANNULUS_SITE_URL=SITE)
    assert prod.returncode != 0 and "ANNULUS_EMAIL_BACKEND must be set" in prod.stderr
    prod = _settings_in_a_fresh_process(ANNULUS_VAR_DIR=str(tmp_path), ANNULUS_SECRET_KEY="x" * 50,
                                        ANNULUS_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
    assert prod.returncode != 0 and "ANNULUS_SITE_URL must be set" in prod.stderr
    prod = _settings_in_a_fresh_process(ANNULUS_VAR_DIR=str(tmp_path), ANNULUS_SECRET_KEY="x" * 50,
                                        ANNULUS_SITE_URL=SITE + "/",
                                        ANNULUS_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
    assert prod.returncode == 0, prod.stderr
    assert prod.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", str(tmp_path / "mail"), SITE]
