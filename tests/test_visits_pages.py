"""Pages: schedule on the participant page, visit page, form entry with computed scores,
overdue list, call list, dashboard panels, API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from .test_visits_support import GOOD, complete_visit, transplant_dates, trial_participant  # noqa: F401


@pytest.mark.req("X-4.8")
def test_participant_page_shows_the_schedule_with_states(trial_participant, client_for):
    p = trial_participant(lipo_days_ago=40, transplant_days_ago=19)
    html = client_for("coordinator").get(f"/participants/{p.pk}/").content.decode()
    assert "Visit schedule" in html
    assert 'class="status missed"' in html  # baseline not done before transplantation
    assert 'class="status due"' in html  # 1 month
    assert f"/participants/{p.pk}/visits/m1/" in html


@pytest.mark.req("P-4.1")
def test_liposuction_page_records_day_0(make_participant, users, client_for):
    from annulus.participants import services as ps
    from annulus.visits.selectors import liposuction_date

    p = make_participant("enrolled")
    ps.advance(actor=users["investigator"], participant_id=p.pk, target="randomised", reason="test")
    c = client_for("investigator")
    today = timezone.localdate()
    r = c.post(f"/participants/{p.pk}/liposuction/", {"performed_on": (today + timedelta(days=2)).isoformat(),
               "fat_volume_ml": "150", "anaesthesia": "local", "observation_hours": "4"})
    assert r.status_code == 200 and "cannot be in the future" in r.content.decode()
    r = c.post(f"/participants/{p.pk}/liposuction/", {"performed_on": today.isoformat(), "fat_volume_ml": "148",
               "anaesthesia": "local", "observation_hours": "4"})
    assert r.status_code == 302
    assert liposuction_date(p.pk) == today


@pytest.mark.req("P-4.5", "X-5.7")
def test_form_entry_page_saves_and_shows_the_error_on_the_field(trial_participant, transplant_dates, client_for):
    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = client_for("coordinator")
    r = c.post(f"/participants/{p.pk}/visits/w1/", {"action": "open", "visit_date": timezone.localdate().isoformat()})
    assert r.status_code == 302
    page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    assert "not started" in page and "Oswestry" in page
    r = c.post(f"/participants/{p.pk}/visits/w1/vas/", {"vas_mm": "101", "complete": "1"})
    assert r.status_code == 200
    assert "VAS" in r.content.decode() and "0–100" in r.content.decode()
    r = c.post(f"/participants/{p.pk}/visits/w1/odi/", {**{f"s{i}": "2" for i in range(1, 11)}, "complete": "1"})
    assert r.status_code == 302
    page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    assert "ODI %" in page and "40.0" in page
    # htmx preview computes the score without saving
    r = c.post(f"/participants/{p.pk}/visits/w1/sf36/preview/", GOOD["sf36"])
    assert "PCS" in r.content.decode()
    r = c.post(f"/participants/{p.pk}/visits/w1/sf36/preview/", {**GOOD["sf36"], "q7": "7"})
    assert "q7" in r.content.decode()


@pytest.mark.req("P-5.6")
def test_significant_lab_links_to_the_adverse_event_form(trial_participant, transplant_dates, client_for):
    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = client_for("coordinator")
    c.post(f"/participants/{p.pk}/visits/w1/", {"action": "open", "visit_date": timezone.localdate().isoformat()})
    items = {**{k: str(v) for k, v in GOOD["liver_kidney"].items()}, "alt": "150", "alt__cs": "yes", "complete": "1"}
    r = c.post(f"/participants/{p.pk}/visits/w1/liver_kidney/", items, follow=True)
    html = r.content.decode()
    assert f"/participants/{p.pk}/adverse-events/new/?term=ALT+increased" in html


@pytest.mark.req("P-4.5")
def test_crf_page_in_chinese(trial_participant, transplant_dates, client_for):
    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = client_for("coordinator")
    c.post(f"/participants/{p.pk}/visits/w1/", {"action": "open", "visit_date": timezone.localdate().isoformat()})
    html = c.get(f"/participants/{p.pk}/visits/w1/joa/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "直腿抬高试验" in html and "JOA腰痛评分" in html


@pytest.mark.req("P-4.6")
def test_call_list_page_records_the_reminder(trial_participant, transplant_dates, client_for, users):
    from annulus.audit.models import AuditEvent
    from annulus.visits.models import ReminderCall

    # transplanted 29 days ago: the 1-month visit (day 30) is tomorrow
    p = trial_participant(lipo_days_ago=50, transplant_days_ago=29)
    c = client_for("coordinator")
    html = c.get("/visits/calls/").content.decode()
    assert "Test Person" in html and "13800000000" in html and "1 month" in html
    tomorrow = timezone.localdate() + timedelta(days=1)
    r = c.post("/visits/calls/", {"participant": p.pk, "visit": "m1", "visit_on": tomorrow.isoformat(),
                                  "outcome": "reached", "note": "will come at 9"})
    assert r.status_code == 302
    assert ReminderCall.objects.filter(participant=p, visit_id="m1").exists()
    assert AuditEvent.objects.filter(object_type="reminder_call").count() == 1
    dash = c.get("/").content.decode()
    assert "Today&#x27;s reminder calls" in dash or "Today's reminder calls" in dash
    assert client_for("monitor").get("/visits/calls/").status_code == 403


@pytest.mark.req("P-4.7")
def test_overdue_page_and_dashboard(trial_participant, transplant_dates, client_for, users):
    from annulus.visits import services as vs

    from .test_visits_support import aware

    p = trial_participant(lipo_days_ago=60, transplant_days_ago=40)
    tx = transplant_dates[p.pk]
    day = tx + timedelta(days=7)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=day)
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 50}, collected_at=aware(day))
    c = client_for("monitor")
    html = c.get("/visits/overdue/").content.decode()
    assert "Forms not submitted within 3 days" in html and "VAS" in html
    assert "Visits not complete within 10 days" in html and "w1" in html
    assert "1 month" in html  # m1 window (tx+23..tx+37) has passed
    assert "visits past window" in c.get("/").content.decode()


@pytest.mark.req("X-4.8")
def test_api_schedule_and_form(trial_participant, transplant_dates, client_for):
    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = client_for("coordinator")
    r = c.get(f"/api/v1/visits/participants/{p.pk}/schedule")
    assert r.status_code == 200
    assert {s["visit"]: s["state"] for s in r.json()}["w1"] == "open"
    r = c.post(f"/api/v1/visits/participants/{p.pk}/visits", {"visit": "w1", "visit_date": timezone.localdate().isoformat()},
               content_type="application/json")
    assert r.status_code == 201
    r = c.put(f"/api/v1/visits/participants/{p.pk}/visits/w1/forms/vas", {"items": {"vas_mm": "abc"}, "complete": True},
              content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "vas_mm"
    r = c.put(f"/api/v1/visits/participants/{p.pk}/visits/w1/forms/vas", {"items": {"vas_mm": 33}, "complete": True},
              content_type="application/json")
    assert r.status_code == 200 and r.json()["computed"]["score"] == 33.0
    assert client_for("monitor").put(f"/api/v1/visits/participants/{p.pk}/visits/w1/forms/vas",
                                     {"items": {"vas_mm": 3}}, content_type="application/json").status_code == 403
