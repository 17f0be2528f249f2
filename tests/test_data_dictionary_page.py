"""The data-dictionary page (sorts and filters, both languages), its CSV download, the API route
and the ``annulus dictionary`` command."""

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from annulus.accounts.services import issue_token

ROLES = ("investigator", "coordinator", "pharmacist", "designer", "statistician", "monitor", "data_manager",
         "auditor", "dsmb", "ethics", "admin")
PROTOCOL_FILE = Path(__file__).resolve().parents[1] / "protocols" / "dlbp-admsc.yaml"


def _browser(user, language="en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


def _rows(html: str) -> list[tuple[str, str]]:
    """(form, item) of each table row, in the order shown."""
    return re.findall(r'<tr data-form="([^"]+)" data-item="([^"]+)"', html)


@pytest.fixture
def dictionary(protocol_version):
    from annulus.trial.selectors import data_dictionary

    return data_dictionary()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_that_sees_the_protocol_opens_the_page(users, role, dictionary):
    r = _browser(users[role]).get("/data-dictionary/")
    assert r.status_code == 200
    assert len(_rows(r.content.decode())) == len(dictionary.entries)
    assert r"/data-dictionary.csv" in r.content.decode()


def test_the_page_is_linked_from_the_navigation_and_the_protocol_page(users):
    c = _browser(users["monitor"])
    assert 'href="/data-dictionary/"' in c.get("/").content.decode()
    protocol_page = c.get("/protocol/").content.decode()
    assert 'href="/data-dictionary/"' in protocol_page and 'href="/data-dictionary.csv"' in protocol_page


def test_anonymous_is_sent_to_log_in(protocol_version):
    assert Client().get("/data-dictionary/").status_code == 302
    assert Client().get("/data-dictionary.csv").status_code == 302
    assert Client().get("/api/v1/dictionary").status_code == 401


@pytest.mark.parametrize("language,label,form_name,codes", [
    ("en", "Pain on the 100 mm line (mm from &#x27;no pain&#x27;)", "VAS pain", "1 moderate"),
    ("zh-hans", "100 mm 直线上的疼痛（距“无痛”端毫米数）", "VAS疼痛评分", "1 中度"),
])
def test_labels_and_codelists_in_the_pages_language(users, language, label, form_name, codes):
    html = _browser(users["coordinator"], language).get("/data-dictionary/?form=vas").content.decode()
    assert label in html and form_name in html
    assert _rows(html) == [("vas", "vas_mm")]
    joa = _browser(users["coordinator"], language).get("/data-dictionary/?form=joa").content.decode()
    assert codes in joa  # a codelist shown as its words, not bare codes
    if language == "zh-hans":
        assert "数据字典" in html and "基线（移植前）" in html  # visit by its name in the language
    else:
        assert "Data dictionary" in html and "Baseline (before transplantation)" in html


def test_filters_form_visit_type_and_sdv(users, dictionary):
    c = _browser(users["monitor"])
    rows = _rows(c.get("/data-dictionary/?sdv=yes").content.decode())
    assert rows and set(rows) == {(e.form, e.item) for e in dictionary.entries if e.sdv_critical}
    rows = _rows(c.get("/data-dictionary/?visit=m6&type=choice").content.decode())
    assert rows and set(rows) == {(e.form, e.item) for e in dictionary.entries
                                  if "m6" in e.visits and e.type == "choice"}
    assert ("imaging", "pfirrmann") in rows
    rows = _rows(c.get("/data-dictionary/?visit=log").content.decode())
    assert {f for f, _ in rows} == {"adverse_event"}
    rows = _rows(c.get("/data-dictionary/?q=haemoglobin").content.decode())
    assert ("blood_routine", "hgb") in rows and all(f == "blood_routine" for f, _ in rows)
    # unknown filter values are ignored, never an error
    r = c.get("/data-dictionary/?form=nope&visit=x&type=y&sdv=maybe&sort=bogus")
    assert r.status_code == 200 and len(_rows(r.content.decode())) == len(dictionary.entries)


def test_sorting_and_htmx_partial(users, dictionary):
    c = _browser(users["monitor"])
    html = c.get("/data-dictionary/").content.decode()
    assert 'href="?sort=item"' in html and 'href="?sort=sdv"' in html  # sortable headers
    by_item = [i for _, i in _rows(c.get("/data-dictionary/?sort=item").content.decode())]
    assert by_item == sorted(by_item)
    desc = [i for _, i in _rows(c.get("/data-dictionary/?sort=-item").content.decode())]
    assert desc == sorted(desc, reverse=True)
    by_sdv = [dictionary.entry(f, i).sdv_critical
              for f, i in _rows(c.get("/data-dictionary/?sort=sdv").content.decode())]
    assert by_sdv == sorted(by_sdv, reverse=True) and by_sdv[0] and not by_sdv[-1]
    partial = c.get("/data-dictionary/?form=odi", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and len(_rows(partial)) == 10


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.req("X-7.6")
def test_csv_download_has_a_header_and_both_languages(users, dictionary):
    r = _browser(users["statistician"]).get("/data-dictionary.csv")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/csv")
    assert "attachment" in r["Content-Disposition"]
    text = r.content.decode("utf-8-sig")
    rows = _csv(text)
    assert len(rows) == len(dictionary.entries)
    assert [(row["form"], row["item"]) for row in rows] == [(e.form, e.item) for e in dictionary.entries]
    hgb = next(row for row in rows if (row["form"], row["item"]) == ("blood_routine", "hgb"))
    assert (hgb["label_en"], hgb["label_zh"], hgb["sdtm_domain"], hgb["sdtm_testcd"]) == \
        ("Haemoglobin", "血红蛋白", "LB", "HGB")
    e = dictionary.entry("blood_routine", "hgb")
    assert (hgb["ref_low"], hgb["ref_high"], hgb["unit"]) == (f"{e.ref_low:g}", f"{e.ref_high:g}", e.unit)
    vas = next(row for row in rows if row["item"] == "vas_mm" and row["form"] == "vas")
    spec = dictionary.entry("vas", "vas_mm")
    assert (vas["min"], vas["max"], vas["unit"]) == (f"{spec.min:g}", f"{spec.max:g}", spec.unit)
    assert (vas["sdv_critical"], vas["required"]) == ("yes", "yes")
    assert vas["visits"].split() == list(dictionary.form("vas").visits)
    grade = next(row for row in rows if (row["form"], row["item"]) == ("adverse_event", "grade"))
    assert grade["codelist"] == "1|2|3|4|5" and "3 severe" in grade["codelist_en"] and "3 重度" in grade["codelist_zh"]
    assert all(row["label_en"] and row["label_zh"] for row in rows)


def test_api_returns_the_dictionary_to_a_token(users, dictionary):
    c = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users['data_manager'], name='t')}")
    r = c.get("/api/v1/dictionary")
    assert r.status_code == 200
    body = r.json()
    assert body["protocol_version"] == dictionary.protocol_version
    assert [f["id"] for f in body["forms"]] == [f.id for f in dictionary.forms]
    ae = next(f for f in body["forms"] if f["id"] == "adverse_event")
    causality = next(i for i in ae["items"] if i["item"] == "causality_product")
    assert [c["value"] for c in causality["codelist"]] == ["not_applicable", "not_related", "unlikely", "possible",
                                                            "probable", "definite"]
    assert causality["sdv_critical"] is True and causality["sdv_when"] == "serious"
    assert ae["scope"] == "log"
    spec = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users['monitor'], name='t')}").get(
        "/api/v1/openapi.json").json()
    assert "/api/v1/dictionary" in spec["paths"]
    ok = spec["paths"]["/api/v1/dictionary"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/DictionaryOut")
    forms = spec["components"]["schemas"]["DictionaryOut"]["properties"]["forms"]["items"]["$ref"]
    assert forms.endswith("/DictionaryFormOut")  # its own component, not another app's FormOut
    assert "scope" in spec["components"]["schemas"]["DictionaryFormOut"]["properties"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "annulus", "dictionary", *args], capture_output=True, text=True)


@pytest.mark.req("X-7.6")
def test_cli_writes_the_csv(tmp_path):
    from annulus.dictionary import build
    from annulus.protocol import load_protocol

    out = tmp_path / "dd.csv"
    done = _cli("--protocol", str(PROTOCOL_FILE), "--csv", str(out))
    assert done.returncode == 0, done.stderr
    d = build(load_protocol(PROTOCOL_FILE))
    assert f"{len(d.entries)} items" in done.stdout
    rows = _csv(out.read_text(encoding="utf-8-sig"))
    assert [(r["form"], r["item"]) for r in rows] == [(e.form, e.item) for e in d.entries]


def test_cli_prints_the_dictionary_in_either_language():
    en = _cli("--protocol", str(PROTOCOL_FILE))
    assert en.returncode == 0, en.stderr
    assert "vas_mm" in en.stdout and "QS/VAS" in en.stdout and "Haemoglobin" in en.stdout
    zh = _cli("--protocol", str(PROTOCOL_FILE), "--language", "zh")
    assert zh.returncode == 0 and "血红蛋白" in zh.stdout


def test_cli_refuses_a_missing_protocol_file(tmp_path):
    done = _cli("--protocol", str(tmp_path / "none.yaml"))
    assert done.returncode == 2
    assert "none.yaml" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.req("X-7.6")
def test_cli_reads_the_protocol_in_force(dictionary, tmp_path, capsys):
    from annulus.cli import main

    out = tmp_path / "in-force.csv"
    assert main(["dictionary", "--csv", str(out)]) == 0
    assert f"protocol version {dictionary.protocol_version}" in capsys.readouterr().out
    rows = _csv(out.read_text(encoding="utf-8-sig"))
    assert len(rows) == len(dictionary.entries)
    assert {r["sdv_critical"] for r in rows if r["form"] == "consent"} == {"yes"}
