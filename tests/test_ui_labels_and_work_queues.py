"""Small things users see (issue 11, item 25): ODI options carry their statements; a label is not
repeated inside its own error; one date format (ISO 8601) in both languages; no internal code
(analyte ids, item keys, form ids, requirement ids) on a page; the journey says who enrolled; a
favicon; event ids never broken; the pharmacist, the designer and the administrator land on their
own work. Pages are requested as a browser does (CSRF enforced), in English and Chinese."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.template import Context, Template
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone, translation

from annulus.allocation import testing
from annulus.allocation.models import Envelope
from annulus.participants import selectors as participant_selectors
from annulus.participants import services as ps
from annulus.visits import crf

LANGUAGES = ("en", "zh-hans")
STATIC = Path(__file__).resolve().parents[1] / "src" / "annulus" / "static" / "annulus"


def browser(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return c


def post_form(c: Client, url: str, data: dict):
    assert c.get(url).status_code == 200
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


# ---- ODI statements ------------------------------------------------------------------------

@pytest.mark.req("P-5.2")
@pytest.mark.parametrize("language, statement", [("en", "The pain is moderate at the moment"),
                                                 ("zh-hans", "目前疼痛中等")])
def test_odi_options_show_their_statements(language, statement):
    from annulus.visits.forms import CrfForm

    with translation.override(language):
        html = CrfForm(spec=crf.ODI, language=language).as_div()
    assert f"2 – {statement}" in html
    assert 'type="radio"' in html and "checked" not in html  # read in full, nothing pre-selected
    assert all(len(item.choices) == 6 for item in crf.ODI.items)


@pytest.mark.req("P-5.2")
def test_saved_answers_read_as_labels_and_statements():
    with translation.override("en"):
        text = crf.answers_text(crf.ODI, {"s1": "0", "s4": "5"}, "en")
    assert text == [("1. Pain intensity", "0 – I have no pain at the moment"),
                    ("4. Walking", "5 – I am in bed most of the time")]
    assert crf.answers_text(crf.ODI, {"s1": "0"}, "zh-hans") == [("1. 疼痛程度", "0 – 目前我没有疼痛")]


# ---- a label is not repeated in its error --------------------------------------------------

@pytest.mark.req("X-2.5")
@pytest.mark.parametrize("language, label, problem", [
    ("en", "VAS pain (0-100 mm)", "must be at most 100 mm, got 150"),
    ("zh-hans", "VAS疼痛评分（0-100 mm）", "不得大于100 mm，收到150"),  # in the page's language
])
def test_a_field_error_does_not_repeat_the_label(make_participant, users, language, label, problem):
    p = make_participant("consented")
    r = post_form(browser(users["coordinator"], language), f"/participants/{p.pk}/screening/",
                  {"vas_mm": "150", "collected_on": timezone.localdate().isoformat()})
    html = r.content.decode()
    assert r.status_code == 200 and f"{label}: {problem}" in html
    assert "VAS pain (0-100 mm) must be" not in html and "VAS疼痛评分不得大于" not in html


# ---- one date format -----------------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
def test_dates_and_times_are_iso_in_both_languages(language):
    with translation.override(language):
        out = Template("{{ d }}|{{ d|date }}|{{ t }}|{{ t|date:'DATETIME_FORMAT' }}").render(
            Context({"d": date(2026, 3, 5), "t": timezone.make_aware(datetime(2026, 3, 5, 14, 30))}))
    assert out == "2026-03-05|2026-03-05|2026-03-05 14:30|2026-03-05 14:30"


@pytest.mark.req("P-6.3")
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_withdrawal_date_on_the_participant_page_is_iso(make_participant, users, language):
    p = make_participant("enrolled")
    day = timezone.localdate() - timedelta(days=1)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=day, category="other", details="moved")
    html = browser(users["coordinator"], language).get(f"/participants/{p.pk}/").content.decode()
    assert f"{day.isoformat()} — " in html
    assert "年" not in html.split("Withdrawn" if language == "en" else "退出")[-1][:40]


# ---- no internal codes ---------------------------------------------------------------------

@pytest.mark.parametrize("language, outside, name, significant", [
    ("en", "outside the reference range", "ALT", "clinically significant"),
    ("zh-hans", "超出参考范围", "丙氨酸氨基转移酶", "有临床意义"),
])
def test_lab_headline_names_the_analyte(protocol_version, language, outside, name, significant):
    from annulus.trial.selectors import active_protocol

    names = crf.analyte_names(active_protocol(), language)
    with translation.override(language):
        rows = crf.headline("liver_kidney", {"abnormal": ["alt"], "clinically_significant": False}, names)
    assert rows == [(outside, name), (significant, "否" if language == "zh-hans" else "no")]


@pytest.mark.req("P-4.6")
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_requirement_ids_or_form_ids_on_the_dashboard_and_protocol_page(users, language):
    c = browser(users["coordinator"], language)
    dashboard = c.get("/").content.decode()
    assert "(P-4.6)" not in dashboard and "（P-4.6）" not in dashboard
    protocol = c.get("/protocol/").content.decode()
    visits = protocol.split("<h2>", 5)[-1]
    for code in ("blood_routine", "liver_kidney", "adverse_events", ">transplant<", ">liposuction<"):
        assert code not in visits, code


# ---- the journey says who enrolled ---------------------------------------------------------

@pytest.mark.req("X-7.3")
@pytest.mark.parametrize("language, entered", [("en", "by"), ("zh-hans", "")])
def test_the_enrolment_entry_names_who_enrolled(make_participant, users, language, entered):
    p = make_participant("enrolled")
    item = next(i for i in participant_selectors.timeline(p) if i["status"] == "enrolled")
    assert item["by"] == users["investigator"].username
    html = browser(users["coordinator"], language).get(f"/participants/{p.pk}/").content.decode()
    journey = html.split('class="timeline"')[1].split("</ol>")[0]
    enrolled = journey.split(p.case_number)[1].split("</li>")[0]
    assert users["investigator"].username in enrolled


# ---- favicon and event ids -----------------------------------------------------------------

def test_every_page_links_the_favicon(users):
    html = browser(users["monitor"]).get("/accounts/tokens/").content.decode()
    assert 'rel="icon" type="image/svg+xml"' in html and "annulus/favicon.svg" in html
    svg = (STATIC / "favicon.svg").read_text()
    assert svg.startswith("<svg") and "</svg>" in svg


def test_event_ids_do_not_wrap():
    css = (STATIC / "annulus.css").read_text()
    assert ".event-id{white-space:nowrap}" in css
    ae = SimpleNamespace(pk=1, label="005-AE03", term="Back pain", grade=2, serious=False, outcome="recovering")
    html = render_to_string("safety/_ae_table.html", {"events": [ae]})
    assert 'class="event-id"' in html and ">005-AE03<" in html


# ---- work queues ---------------------------------------------------------------------------

@pytest.mark.req("P-3.4", "P-4.2")
@pytest.mark.parametrize("language, release, dispense", [
    ("en", "record the release checks", "released: dispense"),
    ("zh-hans", "录入放行检验", "已放行：待发放"),
])
def test_pharmacist_queue_lists_items_awaiting_release_first(users, make_participant, monkeypatch, language,
                                                             release, dispense):
    testing.liposuction_days_ago(monkeypatch, 21)
    people = testing.randomised(users, make_participant, 3)
    envelopes = [Envelope.objects.get(participant=p) for p in people]
    from annulus.allocation import services

    services.record_release(actor=users["pharmacist"], envelope_id=envelopes[0].pk, lot_number="LOT-1",
                            tested_on=timezone.localdate(), results=testing.PASSING)
    html = browser(users["pharmacist"], language).get("/").content.decode()
    queue = html.split("<tbody>")[-1].split("</tbody>")[0]
    rows = queue.split("</tr>")[:-1]
    assert [e.drug_code in r for r, e in zip(rows, [envelopes[1], envelopes[2], envelopes[0]])] == [True] * 3
    assert release in rows[0] and release in rows[1] and dispense in rows[2]
    assert f'href="/pharmacy/envelopes/{envelopes[1].pk}/"' in rows[0]


@pytest.mark.req("P-3.1")
@pytest.mark.parametrize("language, generate, hand_out", [
    ("en", "Generate and seal the allocation list", "Hand out allocation-table-pharmacy.csv"),
    ("zh-hans", "生成并封存随机分配表", "分发 allocation-table-pharmacy.csv"),
])
def test_designer_queue_lists_the_list_and_the_copies_to_hand_out(users, language, generate, hand_out):
    c = browser(users["designer"], language)
    assert generate in c.get("/").content.decode()
    testing.generate(users)
    html = c.get("/").content.decode()
    assert generate not in html and hand_out in html and "level1-key.csv" in html
    assert c.get("/allocation/documents/allocation-table-pharmacy.csv").status_code == 200
    html = c.get("/").content.decode()
    assert hand_out not in html and "level1-key.csv" in html


@pytest.mark.req("X-7.1")
@pytest.mark.parametrize("language, words", [("en", ["Manage users", "active accounts", "Research coordinator"]),
                                             ("zh-hans", ["管理用户", "启用的账户"])])
def test_the_administrator_lands_on_the_accounts(users, language, words):
    from annulus.accounts.backends import record_failed_login, take_check

    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        assert take_check(users["monitor"].username, "")
        record_failed_login(users["monitor"].username, "")
    r = browser(users["admin"], language).get("/")
    html = r.content.decode()
    assert r.status_code == 200 and all(w in html for w in words)
    assert "Nothing to show for your role" not in html
    locked = html.split('class="fail"')[1].split("</p>")[0]
    assert users["monitor"].username in locked
