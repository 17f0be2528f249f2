"""The CONSORT 2010 flow of the trial report, counted from ADSL alone (X-8.5): every box of a
hand-made ADSL (tests/fixtures/report/adsl_flow.csv, each row's NOTE says what it is) against the
numbers known by construction; the blinded flow the same whatever the arms in the data, to the byte
of its SVG; the SVG valid, showing every count, with no text outside its box and no box over
another; and a real export of a small filled trial whose counts add up."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from annulus.report import adsl as adsl_io
from annulus.report import baseline, consort
from annulus.report.consort import Count

pytestmark = pytest.mark.req("X-8.5")

VISITS = ["liposuction", "baseline", "transplant", "w1", "m1", "m3", "m6", "m12", "m18", "m24"]
ARMS = ["Group A", "Group B", "Group C", "Group D"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def rows(fixtures_dir):
    return adsl_io.read(fixtures_dir / "report" / "adsl_flow.csv")


def _pp(not_treated=0, not_eligible=0, unblinding=0, primary=0, left=0, not_due=0, missed=0, out=0):
    return (Count("not_treated", not_treated), Count("not_eligible", not_eligible),
            Count("discontinued_before_primary", left), Count("primary_not_due", not_due),
            Count("primary_missed", missed), Count("primary_out_of_window", out),
            Count("emergency_unblinding", unblinding), Count("primary_visit", primary))


def _visits(**losses):
    """VisitLosses of every visit: after=(lost, discontinued, reasons) for the few with losses."""
    out = []
    for v in (None, *VISITS):
        lost, disc, reasons = losses.get(v or "none", (0, 0, ()))
        out.append(consort.VisitLosses(v, lost, disc, tuple(Count(k, n) for k, n in reasons)))
    return tuple(out)


def test_enrolment_counts_with_criteria_counted_once_per_participant(rows):
    c = consort.counts(rows, arms=ARMS, visits=VISITS)
    assert c.assessed == 27 and c.randomised == 18 and c.excluded == 9
    assert c.not_eligible == 4  # S01-S04
    # S02 fails I3 and E5, S03 fails I10, I2 and E5: counted once in the total, under each criterion
    assert c.criteria == (Count("I2", 1), Count("I3", 2), Count("I10", 1), Count("E5", 2))
    assert c.criteria_not_recorded == 1  # S04
    assert c.other_excluded == (Count("withdrew", 2), Count("lost", 1), Count("awaiting_randomisation", 1),
                                Count("in_screening", 1))
    assert c.withdrew_reasons == (Count("WITHDRAWAL BY SUBJECT", 1), Count("OTHER", 1))
    assert c.not_eligible + sum(o.n for o in c.other_excluded) == c.excluded
    assert not c.blinded and c.visits == tuple(VISITS)


def test_flow_by_arm_known_by_construction(rows):
    c = consort.counts(rows, arms=ARMS, visits=VISITS)
    a, b, cc, d = c.arms
    assert [x.arm for x in c.arms] == ARMS
    # A: R04 randomised and withdrew before transplantation; R05 emergency unblinding
    assert a == consort.ArmFlow(
        arm="Group A", allocated=5, received=4, not_received=1,
        not_received_reasons=(Count("WITHDRAWAL BY SUBJECT", 1),), completed=4, ongoing=0, lost=0,
        discontinued=0, discontinued_reasons=(), by_visit=_visits(), itt=5, safety=4, per_protocol=3,
        pp_excluded=2, pp_excluded_reasons=_pp(not_treated=1, unblinding=1))
    # B: R08 withdrew after 3 months (adverse event), R09 lost after 6 months
    assert b == consort.ArmFlow(
        arm="Group B", allocated=4, received=4, not_received=0, not_received_reasons=(), completed=2, ongoing=0,
        lost=1, discontinued=1, discontinued_reasons=(Count("ADVERSE EVENT", 1),),
        by_visit=_visits(m3=(0, 1, [("ADVERSE EVENT", 1)]), m6=(1, 0, ())), itt=4, safety=4, per_protocol=2,
        pp_excluded=2, pp_excluded_reasons=_pp(left=2))
    # C: R11 withdrawn after 1 week, R12 still in follow-up, R13 awaiting transplantation
    assert cc == consort.ArmFlow(
        arm="Group C", allocated=4, received=3, not_received=1,
        not_received_reasons=(Count(consort.AWAITING_TREATMENT, 1),), completed=1, ongoing=1, lost=0,
        discontinued=1, discontinued_reasons=(Count("PHYSICIAN DECISION", 1),),
        by_visit=_visits(w1=(0, 1, [("PHYSICIAN DECISION", 1)])), itt=4, safety=3, per_protocol=2,
        pp_excluded=2, pp_excluded_reasons=_pp(not_treated=1, left=1))
    # D: R16 lost after 3 months, R17 not confirmed eligible and unblinded (PPEXREAS names the first
    # failing rule: not eligible), R18 withdrew after transplantation
    assert d == consort.ArmFlow(
        arm="Group D", allocated=5, received=5, not_received=0, not_received_reasons=(), completed=3, ongoing=0,
        lost=1, discontinued=1, discontinued_reasons=(Count("WITHDRAWAL BY SUBJECT", 1),),
        by_visit=_visits(transplant=(0, 1, [("WITHDRAWAL BY SUBJECT", 1)]), m3=(1, 0, ())),
        itt=5, safety=5, per_protocol=2, pp_excluded=3,
        pp_excluded_reasons=_pp(not_eligible=1, left=2))
    for x in c.arms:
        assert x.received + x.not_received == x.allocated
        assert x.completed + x.ongoing + x.lost + x.discontinued == x.received
        assert sum(v.lost for v in x.by_visit) == x.lost and sum(v.discontinued for v in x.by_visit) == x.discontinued
        assert x.per_protocol + x.pp_excluded == x.itt
    assert c.total("allocated") == c.randomised


def test_blinded_flow_is_one_pooled_column(rows):
    c = consort.counts(rows, arms=None, visits=VISITS)
    assert c.blinded and len(c.arms) == 1
    (p,) = c.arms
    assert p == consort.ArmFlow(
        arm=None, allocated=18, received=16, not_received=2,
        not_received_reasons=(Count("WITHDRAWAL BY SUBJECT", 1), Count(consort.AWAITING_TREATMENT, 1)),
        completed=10, ongoing=1, lost=2, discontinued=3,
        discontinued_reasons=(Count("WITHDRAWAL BY SUBJECT", 1), Count("ADVERSE EVENT", 1),
                              Count("PHYSICIAN DECISION", 1)),
        by_visit=_visits(transplant=(0, 1, [("WITHDRAWAL BY SUBJECT", 1)]), w1=(0, 1, [("PHYSICIAN DECISION", 1)]),
                         m3=(1, 1, [("ADVERSE EVENT", 1)]), m6=(1, 0, ())),
        itt=18, safety=16, per_protocol=9, pp_excluded=9,
        pp_excluded_reasons=_pp(not_treated=2, not_eligible=1, unblinding=1, left=5))
    assert sum(r.n for r in p.pp_excluded_reasons) == p.pp_excluded  # one reason per participant
    # the enrolment part is the same as by arm
    by_arm = consort.counts(rows, arms=ARMS, visits=VISITS)
    assert (c.assessed, c.excluded, c.criteria, c.other_excluded, c.randomised) == \
        (by_arm.assessed, by_arm.excluded, by_arm.criteria, by_arm.other_excluded, by_arm.randomised)


def test_blinded_output_is_byte_identical_whatever_the_arms_in_the_data(rows):
    reference = consort.counts(rows, arms=None, visits=VISITS)
    pictures = {lang: consort.svg(reference, language=lang) for lang in ("en", "zh")}
    rng = random.Random(8)
    randomised = [i for i, r in enumerate(rows) if r["RANDFL"] == "Y"]
    variants = []
    for _ in range(5):  # the group labels shuffled among the randomised
        labels = [rows[i]["TRT01P"] for i in randomised]
        rng.shuffle(labels)
        shuffled = dict(zip(randomised, labels))
        variants.append([{**r, "TRT01P": shuffled.get(i, "")} for i, r in enumerate(rows)])
    variants.append([{k: v for k, v in r.items() if k != "TRT01P"} for r in rows])  # a blinded export
    variants.append([{**r, "TRT01P": "high" if r["TRT01P"] else ""} for r in rows])  # one arm only
    for variant in variants:
        c = consort.counts(variant, arms=None, visits=VISITS)
        assert c == reference
        for lang, picture in pictures.items():
            assert consort.svg(c, language=lang).encode() == picture.encode()
    # by arm, the same shuffles do change the columns (the test would see an arm leaking through)
    assert consort.counts(variants[0], arms=ARMS, visits=VISITS) != consort.counts(rows, arms=ARMS, visits=VISITS)


def _texts(svg_text: str) -> tuple[list[tuple[float, float, str, bool]], list[tuple[float, float, float, float]]]:
    root = ET.fromstring(svg_text)
    assert root.tag == SVG + "svg"
    texts = [(float(t.get("x")), float(t.get("y")), t.text or "", t.get("font-weight") == "bold")
             for t in root.iter(SVG + "text")
             if t.get("transform") is None and t.get("text-anchor") is None]  # box text, not the stage names
    rects = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height")) for r in root.iter(SVG + "rect")
             if r.get("stroke") == "#222222"]
    return texts, rects


def _box_text(svg_text: str) -> str:
    """The text of the boxes, lines joined by spaces, so that wrapped labels read whole."""
    texts, _ = _texts(svg_text)
    return " ".join(t for _, _, t, _ in texts).replace("\u00a0", " ")


LONG_NAMES = {  # the arms' names as an "arms" export writes them, and a word longer than a line
    "arm_names": {"Group A": "High dose (20x10^6 cells/disc)", "Group B": "高剂量组（20×10^6细胞/椎间盘）",
                  "Group C": "Placebo_(2_mL_normal_saline)_without_any_space_to_break_the_line_at",
                  "Group D": "Low dose (5x10^6 cells/disc)"},
    "criterion_names": {"I3": "LBP lasting 1 year or longer after conservative treatment",
                        "E5": "妊娠、哺乳或计划24个月内妊娠"},
}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("arms,names", [(ARMS, {}), (None, {}), (ARMS, LONG_NAMES)],
                         ids=["by-arm", "blinded", "long-names"])
def test_svg_is_valid_and_no_text_leaves_its_box(rows, lang, arms, names):
    picture = consort.svg(consort.counts(rows, arms=arms, visits=VISITS), language=lang, **names)
    root = ET.fromstring(picture)
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert root.find(SVG + "title").text == consort.LABELS[lang]["title"]
    texts, rects = _texts(picture)
    assert len(rects) == 3 + 3 * (len(arms) if arms else 1)
    for x, y, w, h in rects:
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    # no box over another
    for i, (x1, y1, w1, h1) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1:]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, "boxes overlap"
    # every line of text inside one box, within its padding (widths as the layout estimates them)
    for x, y, s, bold in texts:
        inside = [r for r in rects if r[0] < x < r[0] + r[2] and r[1] < y < r[1] + r[3]]
        assert len(inside) == 1, s
        rx, ry, rw, rh = inside[0]
        assert x + consort.text_width(s, bold) <= rx + rw - consort.PAD + 0.5, s
        assert y + 4 <= ry + rh, s
    # the stage names, one per row
    stages = "".join(t.text for t in root.iter(SVG + "text") if t.get("text-anchor") == "middle")
    for key in ("enrolment", "allocation", "follow_up", "analysis"):
        assert consort.LABELS[lang][f"stage_{key}"] in stages


def test_svg_shows_every_count_in_english(rows):
    text = _box_text(consort.svg(consort.counts(rows, arms=ARMS, visits=VISITS), treatment="transplantation"))
    expected = [
        "Assessed for eligibility (n=27)", "Excluded (n=9)", "Not meeting eligibility criteria (n=4)",
        "Inclusion criterion I2 not met (n=1)", "Inclusion criterion I3 not met (n=2)",
        "Inclusion criterion I10 not met (n=1)", "Exclusion criterion E5 met (n=2)", "Criterion not recorded (n=1)",
        "Declined or withdrew before randomisation (n=2)", "Withdrawal by participant (n=1)", "Other reason (n=1)",
        "Lost before randomisation (n=1)", "Eligible, awaiting randomisation (n=1)",
        "Eligibility not yet decided (n=1)", "Randomised (n=18)",
        "Allocated to Group A (n=5)", "Allocated to Group B (n=4)", "Allocated to Group C (n=4)",
        "Allocated to Group D (n=5)", "Received allocated intervention (n=3)", "Awaiting transplantation (n=1)",
        "After 6 months (n=1)", "Adverse event, after 3 months (n=1)", "Physician decision, after 1 week (n=1)",
        "After 3 months (n=1)", "Withdrawal by participant, after transplantation (n=1)",
        "Completed follow-up (n=3)", "Still in follow-up (n=1)", "Analysed, intention to treat (n=5)",
        "Safety population (n=3)", "Per-protocol population (n=2)", "Excluded from per-protocol analysis (n=3)",
        "Did not receive the product (n=1)", "Eligibility not confirmed (n=1)", "Emergency unblinding (n=1)",
        "Left before the primary visit (n=2)",
    ]
    for phrase in expected:
        assert phrase in text, phrase
    # the columns in the order of the arms
    assert [text.index(f"Allocated to {a}") for a in ARMS] == sorted(text.index(f"Allocated to {a}") for a in ARMS)


def test_svg_shows_every_count_in_chinese_pooled(rows):
    text = _box_text(consort.svg(consort.counts(rows, arms=None, visits=VISITS), language="zh",
                                 treatment="移植")).replace(" ", "")
    for phrase in ["接受合格性评估（n=27）", "排除（n=9）", "不符合纳入标准I3（n=2）", "符合排除标准E5（n=2）",
                   "随机分组（n=18）", "已分配，各组合并（盲态）（n=18）", "接受分配的干预（n=16）",
                   "未接受分配的干预（n=2）", "等待移植（n=1）", "失访（n=2）", "3个月访视后（n=1）", "6个月访视后（n=1）",
                   "中止研究（n=3）", "不良事件，3个月访视后（n=1）", "研究者决定，1周访视后（n=1）",
                   "完成随访（n=10）", "仍在随访（n=1）", "意向性治疗分析（n=18）", "安全性分析集（n=16）",
                   "符合方案集（n=9）", "未纳入符合方案分析（n=9）", "主要终点访视前退出（n=5）"]:
        assert phrase in text, phrase
    assert "Group" not in text and not re.search("[A-D]组", text)


@pytest.mark.req("X-1.3")
def test_the_treatment_is_named_as_the_protocol_names_it(rows):
    """"Awaiting ..." names the protocol's treatment procedure (its ``event_name``); without a
    name, the plain word."""
    from annulus.protocol import load_protocol
    from tests.knee_support import KNEE

    c = consort.counts(rows, arms=None, visits=VISITS)
    assert "Awaiting treatment (n=1)" in _box_text(consort.svg(c))
    knee = load_protocol(KNEE).treatment_event_name
    assert "Awaiting the first dose (n=1)" in _box_text(consort.svg(c, treatment=knee.en))
    zh = _box_text(consort.svg(c, language="zh", treatment=knee.zh)).replace(" ", "")
    assert "等待首次服药（n=1）" in zh and "未接受首次服药（n=2）" in zh and "等待移植" not in zh


def test_svg_escapes_text_and_uses_the_names_given(rows):
    c = consort.counts(rows, arms=ARMS, visits=VISITS)
    names = {"Group A": 'Low dose <5x10^6> & "cells"', "Group B": "B"}
    picture = consort.svg(c, arm_names=names, visit_names={"m3": "month 3 & <then>"},
                          criterion_names={"I3": "LBP lasting 1 year or longer after conservative treatment"})
    assert "<5x10^6>" not in picture and "&amp;" in picture
    text = _box_text(picture)
    assert 'Allocated to Low dose <5x10^6> & "cells" (n=5)' in text
    assert "I3: LBP lasting 1 year or longer after conservative treatment (n=2)" in text
    assert "Adverse event, after month 3 & <then> (n=1)" in text
    assert "Allocated to B (n=4)" in text and "Allocated to Group C (n=4)" in text


def test_bad_data_is_refused_naming_it(rows):
    with pytest.raises(ValueError, match=r"LASTVIS of R08 is 'm3'"):
        consort.counts(rows, arms=ARMS, visits=[v for v in VISITS if v != "m3"])
    with pytest.raises(ValueError, match=r"TRT01P of R01 is 'Group A', not one of"):
        consort.counts(rows, arms=["Group B", "Group C", "Group D"], visits=VISITS)
    with pytest.raises(ValueError, match=r"R01 has no TRT01P.*arms=None"):
        consort.counts([{k: v for k, v in r.items() if k != "TRT01P"} for r in rows], arms=ARMS, visits=VISITS)
    with pytest.raises(ValueError, match=r"SAFFL of R01 is 'YES'"):
        consort.counts([{**r, "SAFFL": "YES"} if r["USUBJID"] == "R01" else r for r in rows], arms=None, visits=VISITS)
    with pytest.raises(ValueError, match="no arms given"):
        consort.counts(rows, arms=[], visits=VISITS)
    with pytest.raises(ValueError, match="language"):
        consort.svg(consort.counts(rows, arms=None, visits=VISITS), language="fr")


@pytest.mark.parametrize("arms", [None, ARMS])
def test_an_empty_trial_gives_zeros_and_a_valid_diagram(arms):
    c = consort.counts([], arms=arms, visits=VISITS)
    assert (c.assessed, c.excluded, c.randomised, c.criteria) == (0, 0, 0, ())
    assert len(c.arms) == (1 if arms is None else 4) and all(a.allocated == a.itt == 0 for a in c.arms)
    for lang in ("en", "zh"):
        assert "(n=0)" in _box_text(consort.svg(c, language=lang)).replace("（", "(").replace("）", ")")


def test_the_report_core_imports_without_django():
    code = ("import sys, annulus.report, annulus.report.consort, annulus.report.baseline, annulus.report.adsl; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.django_db
def test_a_real_export_of_a_filled_trial_adds_up(settings, tmp_path):
    from django.contrib.auth import get_user_model

    from annulus.bench.fill import fill
    from annulus.exports import services
    from annulus.trial.selectors import active_protocol

    settings.VAR_DIR = tmp_path / "var"
    fill(8, seed=3, chunk=8, pool=6)
    statistician = get_user_model().objects.get(username="statistician")
    services.run_export(actor=statistician, fmt="adam", out_dir=tmp_path / "adam")
    rows = adsl_io.read(tmp_path / "adam" / "adsl.csv")
    visits = [v.id for v in active_protocol().schedule.visits]

    def flagged(col):
        return sum(r[col] == "Y" for r in rows)

    c = consort.counts(rows, arms=None, visits=visits)  # the statistician's export is blinded
    assert "TRT01P" not in rows[0]
    assert c.assessed == len(rows) > 8
    assert c.randomised == flagged("RANDFL") == c.total("allocated") == 8
    assert c.total("itt") == flagged("ITTFL") and c.total("safety") == flagged("SAFFL")
    assert c.total("per_protocol") == flagged("PPROTFL")
    assert c.excluded == c.assessed - c.randomised == c.not_eligible + sum(o.n for o in c.other_excluded)
    failures = [r for r in rows if r["ELIGFL"] == "N"]
    assert c.not_eligible == len(failures)
    assert sum(x.n for x in c.criteria) == sum(len(r["SCRFCRIT"].split(",")) for r in failures)
    (flow,) = c.arms
    assert flow.received + flow.not_received == flow.allocated
    assert flow.completed + flow.ongoing + flow.lost + flow.discontinued == flow.received
    assert flow.completed == sum(r["EOSSTT"] == "COMPLETED" for r in rows)
    # by arm, with group labels given here (an export shows them only after unblinding)
    labelled = []
    for i, r in enumerate(rows):
        labelled.append({**r, "TRT01P": ARMS[i % 4] if r["RANDFL"] == "Y" else ""})
    by_arm = consort.counts(labelled, arms=ARMS, visits=visits)
    assert [a.allocated for a in by_arm.arms] == [sum(r["TRT01P"] == a for r in labelled) for a in ARMS]
    assert by_arm.total("allocated") == by_arm.randomised == c.randomised
    assert by_arm.total("itt") == c.total("itt") and by_arm.total("per_protocol") == c.total("per_protocol")
    for lang in ("en", "zh"):
        text = _box_text(consort.svg(c, language=lang)).replace(" ", "")
        assert re.search(rf"\(n={c.assessed}\)|（n={c.assessed}）", text)
    # Table 1 of the same export: the intention-to-treat population, overall column only
    table = baseline.table(rows, arms=None)
    assert [(col.label, col.n) for col in table.columns] == [("Overall", c.total("itt"))]


def test_without_ppexreas_the_reasons_are_read_from_the_flags(rows):
    """An ADSL written before PPEXREAS: every reason the flags show (a participant may have several),
    and "primary visit" for what remains of the per-protocol rule."""
    old = [{k: v for k, v in r.items() if k != "PPEXREAS"} for r in rows]
    (p,) = consort.counts(old, arms=None, visits=VISITS).arms
    assert p.pp_excluded == 9
    assert p.pp_excluded_reasons == _pp(not_treated=2, not_eligible=1, unblinding=2, primary=5)


def test_an_unknown_ppexreas_is_refused_naming_the_participant(rows):
    bad = [dict(r, PPEXREAS="LATE") if r["USUBJID"] == "R08" else r for r in rows]
    with pytest.raises(ValueError, match="PPEXREAS of .*R08.*'LATE'"):
        consort.counts(bad, arms=None, visits=VISITS)
