"""Analysis datasets (ADSL, ADEFF): values against the participants they were written from, the
population rules participant by participant, the SAS transport files equal to the CSV files, an
empty trial and row-by-row writing."""

from __future__ import annotations

import csv
import dataclasses
from datetime import date
from pathlib import Path

import pytest

from annulus.dictionary import build
from annulus.interchange import adam, sample
from annulus.interchange.subject import Record, VisitInfo
from annulus.protocol import default_protocol_path, load_protocol

pytestmark = pytest.mark.req("X-7.6")


@pytest.fixture(scope="module")
def proto():
    p = load_protocol(default_protocol_path())
    return p, build(p)


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _export(tmp_path, p, d, subjects, blinding="labels", name="out", **kw) -> Path:
    out = tmp_path / name
    out.mkdir()
    paths = adam.write(iter(subjects), sample.context(p, d, "adam", blinding=blinding, **kw), out)
    assert sorted(paths) == sorted(out.iterdir())
    return out


def _base(p, d, i=0, **changes):
    s = sample.subject(p, d, i, seed=5, labels=True)
    # every visit attended, nobody withdrawn, unless a test says otherwise
    day0 = date.fromisoformat(s.transplanted_at[:10])
    visits = tuple(dataclasses.replace(v, outcome="attended", window="in", date=v.date or v.target,
                                       day=v.day if v.day is not None else (date.fromisoformat(v.target) - day0).days)
                   for v in s.visits)
    s = dataclasses.replace(s, visits=visits, end_status="", end_reason="", end_date=None, status="in_follow_up")
    return dataclasses.replace(s, **changes)


def _with_window(s, visit: str, window: str):
    return dataclasses.replace(s, visits=tuple(dataclasses.replace(v, window=window) if v.visit == visit else v
                                               for v in s.visits))


def _by_subject(rows):
    return {r["USUBJID"]: r for r in rows}


def test_population_flags_and_disposition(tmp_path, proto):
    p, d = proto
    ok = _base(p, d, 0)
    not_transplanted = _base(p, d, 1, transplanted_at=None)
    late_primary = _with_window(_base(p, d, 2), "m12", "late")
    withdrawn = _base(p, d, 3, end_status="withdrawn", end_reason="participant_request", end_date="2023-01-10",
                      status="withdrawn")
    unblinded = _base(p, d, 4, emergency_unblinded=True)
    completed = _base(p, d, 5, end_status="completed", end_date="2024-07-01", status="completed")
    missed_primary = dataclasses.replace(_base(p, d, 6), visits=tuple(
        dataclasses.replace(v, outcome="missed", date=None, day=None, window="") if v.visit == "m12" else v
        for v in _base(p, d, 6).visits))
    screen_failure = _base(p, d, 7, randomised_at=None, transplanted_at=None, liposuction_on=None, eligible=False,
                           failed_criteria=("I4", "I6"), status="screen_failed", case_number="", group_label=None,
                           visits=(), records=())
    lost = _base(p, d, 8, end_status="lost_to_follow_up", end_date="2023-03-01", status="lost_to_follow_up")
    subjects = [ok, not_transplanted, late_primary, withdrawn, unblinded, completed, missed_primary,
                screen_failure, lost]
    out = _export(tmp_path, p, d, subjects)
    adsl = _by_subject(_read(out / "adsl.csv"))
    assert len(adsl) == len(subjects)

    def flags(s):
        r = adsl[s.subject]
        return r["RANDFL"], r["ITTFL"], r["SAFFL"], r["PPROTFL"]

    assert flags(ok) == ("Y", "Y", "Y", "Y")
    assert flags(not_transplanted) == ("Y", "Y", "N", "N")
    assert adsl[not_transplanted.subject]["TRT01A"] == "" and adsl[not_transplanted.subject]["TRT01P"] == "Group B"
    assert flags(late_primary) == ("Y", "Y", "Y", "N")
    assert flags(unblinded) == ("Y", "Y", "Y", "N") and adsl[unblinded.subject]["EMUNBLFL"] == "Y"
    assert flags(missed_primary) == ("Y", "Y", "Y", "N")
    assert flags(screen_failure) == ("N", "N", "N", "N")
    sf = adsl[screen_failure.subject]
    assert (sf["EOSSTT"], sf["DCSREAS"], sf["ELIGFL"], sf["SCRFCRIT"]) == ("DISCONTINUED", "SCREEN FAILURE", "N",
                                                                          "I4, I6")
    assert sf["SUBJID"] == screen_failure.screening_number and sf["RANDDT"] == "" and sf["TRT01P"] == ""
    w = adsl[withdrawn.subject]
    assert (w["EOSSTT"], w["DCSREAS"], w["DCSREASP"], w["EOSDT"]) == (
        "DISCONTINUED", "WITHDRAWAL BY SUBJECT", "participant's request", "2023-01-10")
    assert (adsl[ok.subject]["LASTVIS"], adsl[missed_primary.subject]["LASTVIS"], sf["LASTVIS"]) == ("m24", "m24", "")
    assert (adsl[completed.subject]["EOSSTT"], adsl[completed.subject]["EOSDT"]) == ("COMPLETED", "2024-07-01")
    assert (adsl[lost.subject]["EOSSTT"], adsl[lost.subject]["DCSREAS"]) == ("DISCONTINUED", "LOST TO FOLLOW-UP")
    assert (adsl[ok.subject]["EOSSTT"], adsl[ok.subject]["DCSREAS"], adsl[ok.subject]["EOSDT"]) == ("ONGOING", "", "")
    # flags are carried to every efficacy row of the participant
    for r in _read(out / "adeff.csv"):
        assert (r["ITTFL"], r["SAFFL"], r["PPROTFL"]) == flags(next(s for s in subjects if s.subject == r["USUBJID"]))[1:]
    # the screen failure has no efficacy rows; the per-parameter files hold ITT participants only
    assert screen_failure.subject not in {r["USUBJID"] for r in _read(out / "adeff.csv")}


def test_adsl_values(tmp_path, proto):
    p, d = proto
    s = _base(p, d, 0, age=47, sex="F", consented_at="2022-05-08T17:30:00+00:00",  # 01:30 on the 9th in Shanghai
              randomised_at="2022-05-16T01:00:00+00:00", transplanted_at="2022-06-06T02:00:00+00:00",
              liposuction_on="2022-05-16")
    out = _export(tmp_path, p, d, [s])
    r = _read(out / "adsl.csv")[0]
    base_vas = next(x.computed["vas_mm"] for x in s.records if x.form == "vas" and x.visit == "baseline")
    assert r["STUDYID"] == "dlbp-admsc" and r["USUBJID"] == s.subject and r["SUBJID"] == s.case_number
    assert (r["AGE"], r["AGEU"], r["SEX"], r["SITEID"]) == ("47", "YEARS", "F", "01")
    assert float(r["BASEVAS"]) == base_vas
    assert (r["RFICDT"], r["RANDDT"], r["LIPODT"], r["TRTSDT"]) == ("2022-05-09", "2022-05-16", "2022-05-16",
                                                                    "2022-06-06")
    assert (r["TRT01P"], r["TRT01A"]) == ("Group A", "Group A")
    assert "TRT01PN" not in r  # group labels carry no dose


def _scored(s, visit: str, form: str, computed: dict):
    """The participant with one more scored record (the sample fills VAS scores only)."""
    return dataclasses.replace(s, records=s.records + (Record(visit=visit, form=form, values={}, computed=computed,
                                                              state="complete"),))


def test_adeff_values_against_the_participant(tmp_path, proto):
    p, d = proto
    s = _base(p, d, 0)
    s = _with_window(s, "m3", "early")
    # a missed visit: no row
    s = dataclasses.replace(s, visits=tuple(dataclasses.replace(v, outcome="missed", date=None, day=None, window="")
                                            if v.visit == "m18" else v for v in s.visits))
    s = dataclasses.replace(s, records=tuple(r for r in s.records if r.visit != "m18"))
    for visit, odi, pcs, mcs in (("baseline", 52.0, 31.25, 40.5), ("m12", 20.0, 45.0, 50.5)):
        s = _scored(s, visit, "odi", {"odi_percent": odi})
        s = _scored(s, visit, "sf36", {"pcs": pcs, "mcs": mcs, "pf": 50.0})
    s = _scored(s, "baseline", "imaging", {"pfirrmann_grade": 4, "modic_score": 2, "disc_height_score": 30.5,
                                           "rom_score": None})
    s = _scored(s, "m24", "imaging", {"pfirrmann_grade": 3, "modic_score": 1, "disc_height_score": 25.0,
                                      "rom_score": 7.5})
    if not any(r.form == "vas" and r.visit == "m6" for r in s.records):
        s = _scored(s, "m6", "vas", {"vas_mm": 55.0})
    s = _scored(s, "m6", "joa", {"joa_total": 18.0})  # no baseline JOA: BASE and CHG empty
    s = _scored(s, "m1", "odi", {"odi_percent": 33.0})
    # a draft and an unscheduled record are not analysed
    s = dataclasses.replace(s, records=s.records + (
        Record(visit="m6", form="odi", values={}, computed={"odi_percent": 99.0}, state="draft"),
        Record(visit="unscheduled", visit_repeat=1, form="vas", values={}, computed={"vas_mm": 99.0},
               state="complete")))
    out = _export(tmp_path, p, d, [s])
    rows = _read(out / "adeff.csv")
    key = {(r["PARAMCD"], r["AVISIT"]): r for r in rows}
    assert len(key) == len(rows)
    visits = {v.visit: v for v in s.visits}
    schedule = {v.id: v for v in p.schedule.visits}
    vas = {r.visit: r.computed["vas_mm"] for r in s.records if r.form == "vas" and r.visit in schedule}
    assert {v for (code, v) in key if code == "VAS"} == set(vas) == {"baseline", "w1", "m1", "m3", "m6", "m12",
                                                                      "m24"}
    for visit, aval in vas.items():
        r = key[("VAS", visit)]
        assert float(r["AVAL"]) == aval and float(r["BASE"]) == vas["baseline"]
        assert r["ADY"] == str(visits[visit].day) and r["ADT"] == visits[visit].date
        assert r["AVISITN"] == str(schedule[visit].offset_days)
        assert r["DTYPE"] == ""
        if visit == "baseline":
            assert (r["ABLFL"], r["CHG"], r["PCHG"]) == ("Y", "", "")
        else:
            assert r["ABLFL"] == ""
            assert float(r["CHG"]) == pytest.approx(aval - vas["baseline"], abs=1e-9)
            assert float(r["PCHG"]) == pytest.approx((aval - vas["baseline"]) / vas["baseline"] * 100, abs=1e-6)
    assert key[("VAS", "m12")]["AVISITN"] == "365" and key[("VAS", "baseline")]["AVISITN"] == "-1"
    assert (key[("VAS", "m12")]["AWLO"], key[("VAS", "m12")]["AWHI"], key[("VAS", "m12")]["AWU"]) == ("335", "395",
                                                                                                     "DAYS")
    assert (key[("VAS", "m3")]["ANL01FL"], key[("VAS", "m3")]["AWSTAT"]) == ("", "EARLY")
    assert (key[("VAS", "m6")]["ANL01FL"], key[("VAS", "m6")]["AWSTAT"]) == ("Y", "IN")
    # the other end points
    odi = key[("ODI", "m12")]
    assert (odi["AVAL"], odi["BASE"], odi["CHG"], odi["PARAM"]) == ("20", "52", "-32", "Oswestry Disability Index (%)")
    assert key[("ODI", "m1")]["CHG"] == "-19"
    assert ("ODI", "m6") not in key  # the draft
    assert (key[("SF36PCS", "m12")]["CHG"], key[("SF36MCS", "m12")]["CHG"]) == ("13.75", "10")
    assert (key[("PFIRRM", "m24")]["CHG"], key[("MODIC", "m24")]["CHG"], key[("DISCHT", "m24")]["CHG"]) == (
        "-1", "-1", "-5.5")
    assert key[("ROM", "m24")]["BASE"] == "" and ("ROM", "baseline") not in key  # not computable at baseline
    assert (key[("JOA", "m6")]["BASE"], key[("JOA", "m6")]["CHG"]) == ("", "")
    assert [int(r["PARAMN"]) for r in rows] == sorted(int(r["PARAMN"]) for r in rows)  # parameter, then visit
    adsl = _read(out / "adsl.csv")[0]
    assert (adsl["BASEODI"], adsl["BASEPCS"], adsl["BASEMCS"], adsl["BASEJOA"]) == ("52", "31.25", "40.5", "")
    # the per-parameter file: post-baseline rows only, same columns
    per = _read(out / "adeff_odi.csv")
    assert [r["AVISIT"] for r in per] == ["m1", "m12"]
    assert list(per[0]) == list(rows[0])


def test_parameters_are_the_declared_scores():
    from annulus.interchange.scores import score

    for prm in adam.PARAMS:
        assert score(prm.form, prm.score) is not None, prm
        assert len(prm.code) <= 8


def test_xpt_equals_csv(tmp_path, proto):
    import pyreadstat

    p, d = proto
    subjects = list(sample.subjects(p, d, 12, seed=2, labels=True))
    subjects[3] = dataclasses.replace(subjects[3], transplanted_at=None)
    out = _export(tmp_path, p, d, subjects, blinding="arms")
    for name in ("adsl", "adeff"):
        rows = _read(out / f"{name}.csv")
        frame, meta = pyreadstat.read_xport(str(out / f"{name}.xpt"), encoding="utf-8")
        assert list(frame.columns) == list(rows[0]), name
        assert len(frame) == len(rows) > 0
        dates = {c for c in frame.columns if c.endswith("DT")}
        for i, row in enumerate(rows):
            for col, text in row.items():
                value = frame.iloc[i][col]
                if col in dates:
                    expect = None if text == "" else (date.fromisoformat(text) - date(1960, 1, 1)).days
                    assert (None if value != value else value) == expect, (name, i, col)
                elif isinstance(value, str):
                    assert value == text, (name, i, col)
                else:
                    assert (value != value and text == "") or value == pytest.approx(float(text), abs=1e-9), (
                        name, i, col, value, text)
        assert meta.column_names_to_labels["USUBJID"] == "Unique Subject Identifier"
        assert meta.table_name.upper() == name.upper()


def test_chinese_parameter_names_fit(tmp_path, proto):
    import pyreadstat

    p, d = proto
    out = _export(tmp_path, p, d, sample.subjects(p, d, 2, labels=True), language="zh")
    rows = _read(out / "adeff.csv")
    assert rows[0]["PARAM"].startswith("VAS 腰痛评分")
    frame, _ = pyreadstat.read_xport(str(out / "adeff.xpt"), encoding="utf-8")
    assert frame["PARAM"].tolist() == [r["PARAM"] for r in rows]


def test_empty_trial_gives_header_only_files(tmp_path, proto):
    import pyreadstat

    p, d = proto
    out = _export(tmp_path, p, d, [], blinding="blinded")
    for f in out.iterdir():
        if f.suffix == ".csv":
            lines = f.read_text(encoding="utf-8").splitlines()
            assert len(lines) == 1 and lines[0].startswith("STUDYID,USUBJID,"), f.name
        else:
            frame, meta = pyreadstat.read_xport(str(f), encoding="utf-8")
            assert len(frame) == 0 and meta.column_names[:2] == ["STUDYID", "USUBJID"], f.name
    assert {f.name for f in out.iterdir()} == {"adsl.csv", "adsl.xpt", "adeff.csv", "adeff.xpt",
                                               *(f"adeff_{prm.code.lower()}.csv" for prm in adam.PARAMS),
                                               *(f"{name}.{ext}" for name in ("adae", "adlb", "adsv", "addv")
                                                 for ext in ("csv", "xpt"))}


def test_rows_are_written_as_participants_arrive(tmp_path, proto):
    """The writer holds one participant at a time: when the stream breaks after five participants,
    their five ADSL rows and all their efficacy rows are already in the files."""
    p, d = proto

    def stream():
        yield from sample.subjects(p, d, 5, labels=True)
        raise RuntimeError("database connection lost")

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError):
        adam.write(stream(), sample.context(p, d, "adam", blinding="labels"), out)
    assert len(_read(out / "adsl.csv")) == 5
    eff = _read(out / "adeff.csv")
    assert len({r["USUBJID"] for r in eff}) == 5
    import pyreadstat

    assert len(pyreadstat.read_xport(str(out / "adeff.xpt"), encoding="utf-8")[0]) == len(eff)


def test_memory_is_flat_in_the_number_of_participants(tmp_path, proto):
    import tracemalloc

    p, d = proto
    peaks = []
    for n in (20, 150):
        out = tmp_path / f"n{n}"
        out.mkdir()
        ctx = sample.context(p, d, "adam", blinding="labels")
        tracemalloc.start()
        adam.write(sample.subjects(p, d, n, labels=True), ctx, out)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(_read(out / "adsl.csv")) == n
    assert peaks[1] < 1.5 * peaks[0], peaks


# ---- populations from the analysis plan, reasons, disposition codes, baseline characteristics --------

def _without_visits_after(s, last: str, p):
    """The participant with no visit (and no record) after ``last`` of the schedule."""
    order = [v.id for v in p.schedule.visits]
    keep = set(order[:order.index(last) + 1])
    return dataclasses.replace(s, visits=tuple(v for v in s.visits if v.visit in keep),
                               records=tuple(r for r in s.records if not r.visit or r.visit in keep
                                             or r.visit == "screening"))


def _missed(s, visit: str):
    return dataclasses.replace(s, visits=tuple(
        dataclasses.replace(v, outcome="missed", date=None, day=None, window="") if v.visit == visit else v
        for v in s.visits))


def _plan_variant(p, change) -> object:
    """The shipped protocol with its analysis plan changed by ``change(data)``."""
    import yaml

    from annulus.protocol import parse_protocol

    data = yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))
    change(data)
    return parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@pytest.mark.req("X-8.5", "X-4.8")
def test_per_protocol_exclusion_reason_is_the_first_failing_rule(tmp_path, proto):
    p, d = proto
    ok = _base(p, d, 0)
    cases = {
        "": ok,
        "NOT TREATED": _base(p, d, 1, transplanted_at=None),
        "NOT ELIGIBLE": _base(p, d, 2, eligible=False),
        "ELIGIBILITY NOT CONFIRMED": _base(p, d, 3, eligible=None),
        "PRIMARY VISIT OUT OF WINDOW": _with_window(_base(p, d, 4), "m12", "early"),
        "PRIMARY VISIT MISSED": _missed(_base(p, d, 5), "m12"),
        "EMERGENCY UNBLINDING": _base(p, d, 6, emergency_unblinded=True),
        # the 12-month visit's window (transplant + 365 + 30 days) is open on the as-of day 2026-11-30
        "PRIMARY VISIT NOT YET DUE": _without_visits_after(
            _base(p, d, 7, transplanted_at="2026-01-10T02:00:00+00:00"), "m6", p),
        # withdrew at 6 months: the 12-month visit never came
        "DISCONTINUED BEFORE PRIMARY VISIT": _without_visits_after(
            _base(p, d, 8, end_status="withdrawn", end_reason="participant_request", end_date="2022-12-20",
                  status="withdrawn"), "m6", p),
    }
    # not recorded at all and its window long over (as-of 2026, transplanted 2022): missed
    unrecorded = dataclasses.replace(_base(p, d, 9), visits=tuple(v for v in _base(p, d, 9).visits if v.visit != "m12"))
    # two failures: the first of the plan's list (eligible before not_emergency_unblinded)
    two = _base(p, d, 10, eligible=False, emergency_unblinded=True)
    screen_failure = _base(p, d, 11, randomised_at=None, transplanted_at=None, liposuction_on=None, eligible=False,
                           failed_criteria=("I4",), status="screen_failed", case_number="", group_label=None,
                           visits=(), records=())
    subjects = [*cases.values(), unrecorded, two, screen_failure]
    out = _export(tmp_path, p, d, subjects)
    adsl = _by_subject(_read(out / "adsl.csv"))
    for reason, s in cases.items():
        r = adsl[s.subject]
        assert (r["PPROTFL"], r["PPEXREAS"]) == ("Y" if not reason else "N", reason), reason
        assert (r["RANDFL"], r["ITTFL"]) == ("Y", "Y"), reason
    assert (adsl[unrecorded.subject]["PPROTFL"], adsl[unrecorded.subject]["PPEXREAS"]) == ("N", "PRIMARY VISIT MISSED")
    assert adsl[two.subject]["PPEXREAS"] == "NOT ELIGIBLE"
    # not randomised: no per-protocol reason to give
    assert (adsl[screen_failure.subject]["PPROTFL"], adsl[screen_failure.subject]["PPEXREAS"]) == ("N", "")
    # exported after the window closed (2027-02-09) with the visit still not recorded: missed
    later = _export(tmp_path, p, d, [cases["PRIMARY VISIT NOT YET DUE"]], name="later",
                    as_of="2027-03-01T00:00:00+00:00")
    assert _read(later / "adsl.csv")[0]["PPEXREAS"] == "PRIMARY VISIT MISSED"
    # every randomised participant outside the per-protocol population has a reason, and only they
    for r in adsl.values():
        assert bool(r["PPEXREAS"]) == (r["RANDFL"] == "Y" and r["PPROTFL"] == "N"), r["USUBJID"]
    # the ADSL dataset's columns are all labelled within SAS's 40 characters, names within 8
    assert all(len(c.name) <= 8 and len(c.label) <= 40 for c in adam.adsl_columns(sample.context(p, d, "adam")))


@pytest.mark.req("X-8.5")
def test_population_flags_follow_the_analysis_plan(tmp_path, proto):
    p, d = proto

    def change(data):
        plan = data["analysis"]
        # a modified ITT (randomised and treated), a per-protocol population at the 6-month visit that
        # keeps the emergency-unblinded, and the checks in another order
        plan["populations"][0]["rule"] = ["randomised", "treated"]
        plan["populations"][1]["rule"] = ["randomised", "primary_visit_in_window", "eligible", "treated"]
        plan["primary"]["primary_visit"] = "m6"
        plan["missing_data"]["sensitivity"] = ["observed_ancova"]

    variant = _plan_variant(p, change)
    assert variant.analysis.primary.primary_visit == "m6"
    ok = _base(p, d, 0)
    not_treated = _base(p, d, 1, transplanted_at=None)
    late_m12 = _with_window(_base(p, d, 2), "m12", "late")  # the plan's primary visit is m6: still per protocol
    late_m6 = _with_window(_base(p, d, 3), "m6", "late")
    unblinded = _base(p, d, 4, emergency_unblinded=True)
    both = _with_window(_base(p, d, 5, eligible=False), "m6", "early")  # the plan checks the visit first
    subjects = [ok, not_treated, late_m12, late_m6, unblinded, both]
    out = _export(tmp_path, variant, d, subjects)
    adsl = _by_subject(_read(out / "adsl.csv"))

    def got(s):
        r = adsl[s.subject]
        return r["RANDFL"], r["ITTFL"], r["SAFFL"], r["PPROTFL"], r["PPEXREAS"]

    assert got(ok) == ("Y", "Y", "Y", "Y", "")
    assert got(not_treated) == ("Y", "N", "N", "N", "NOT TREATED")  # "treated" comes last in this plan
    assert got(late_m12) == ("Y", "Y", "Y", "Y", "")
    assert got(late_m6) == ("Y", "Y", "Y", "N", "PRIMARY VISIT OUT OF WINDOW")
    assert got(unblinded) == ("Y", "Y", "Y", "Y", "")
    assert got(both) == ("Y", "Y", "Y", "N", "PRIMARY VISIT OUT OF WINDOW")
    # the per-parameter analysis files hold the plan's ITT population: not the untreated participant
    assert not_treated.subject not in {r["USUBJID"] for r in _read(out / "adeff_vas.csv")}
    assert ok.subject in {r["USUBJID"] for r in _read(out / "adeff_vas.csv")}
    # every ADEFF row carries the participant's flags
    for r in _read(out / "adeff.csv"):
        assert (r["ITTFL"], r["SAFFL"], r["PPROTFL"]) == got(next(s for s in subjects if s.subject == r["USUBJID"]))[1:4]


@pytest.mark.req("X-8.5")
def test_without_a_plan_the_fallback_rules_equal_the_shipped_plan(tmp_path, proto):
    p, d = proto
    bare = _plan_variant(p, lambda data: data.pop("analysis"))
    assert bare.analysis is None
    subjects = [_base(p, d, 0), _base(p, d, 1, transplanted_at=None), _base(p, d, 2, eligible=None),
                _with_window(_base(p, d, 3), "m12", "late"), _base(p, d, 4, emergency_unblinded=True),
                _missed(_base(p, d, 5), "m12")]
    columns = ("RANDFL", "ITTFL", "SAFFL", "PPROTFL", "PPEXREAS")
    with_plan = _read(_export(tmp_path, p, d, subjects, name="plan") / "adsl.csv")
    without = _read(_export(tmp_path, bare, d, subjects, name="bare") / "adsl.csv")
    assert [[r[c] for c in columns] for r in with_plan] == [[r[c] for c in columns] for r in without]
    assert [r["PPEXREAS"] for r in without] == ["", "NOT TREATED", "ELIGIBILITY NOT CONFIRMED",
                                                "PRIMARY VISIT OUT OF WINDOW", "EMERGENCY UNBLINDING",
                                                "PRIMARY VISIT MISSED"]


@pytest.mark.req("X-8.5", "P-6.3")
def test_withdrawal_code_tells_consent_withdrawn_from_a_later_withdrawal(tmp_path, proto):
    p, d = proto
    declined = _base(p, d, 0, end_status="withdrawn", end_reason="declined_consent", end_date="2022-06-20",
                     status="withdrawn")
    request = _base(p, d, 1, end_status="withdrawn", end_reason="participant_request", end_date="2023-01-10",
                    status="withdrawn")
    ae = _base(p, d, 2, end_status="withdrawn", end_reason="adverse_event", end_date="2023-02-10",
               status="withdrawn")
    lost = _base(p, d, 3, end_status="lost_to_follow_up", end_date="2023-03-01", status="lost_to_follow_up")
    completed = _base(p, d, 4, end_status="completed", end_date="2024-07-01", status="completed")
    ongoing = _base(p, d, 5)
    out = _export(tmp_path, p, d, [declined, request, ae, lost, completed, ongoing])
    adsl = _by_subject(_read(out / "adsl.csv"))
    got = {s.subject: (adsl[s.subject]["DCSREAS"], adsl[s.subject]["DCSREASC"])
           for s in (declined, request, ae, lost, completed, ongoing)}
    assert got[declined.subject] == ("WITHDRAWAL BY SUBJECT", "declined_consent")
    assert got[request.subject] == ("WITHDRAWAL BY SUBJECT", "participant_request")
    assert got[ae.subject] == ("ADVERSE EVENT", "adverse_event")
    assert got[lost.subject] == ("LOST TO FOLLOW-UP", "")
    assert got[completed.subject] == ("", "") and got[ongoing.subject] == ("", "")


@pytest.mark.req("X-8.5", "P-5.5")
def test_baseline_characteristics_and_last_visit_day(tmp_path, proto):
    p, d = proto
    s = _base(p, d, 0)
    s = _scored(s, "baseline", "imaging", {"pfirrmann_grade": 4, "modic_score": 2, "disc_height_score": 30.5,
                                           "rom_score": 6.25})
    s = _scored(s, "m6", "imaging", {"pfirrmann_grade": 3, "modic_score": 1, "disc_height_score": 25.0,
                                     "rom_score": 7.5})
    screening = next(r for r in s.records if r.form == "screening")
    s = dataclasses.replace(s, records=tuple(
        dataclasses.replace(r, values={**r.values, "lbp_duration_months": 30}) if r is screening else r
        for r in s.records))
    stopped = _without_visits_after(_base(p, d, 1), "m3", p)  # no imaging, last visit 3 months
    stopped = dataclasses.replace(stopped, records=tuple(r for r in stopped.records if r.form != "screening"))
    failure = _base(p, d, 2, randomised_at=None, transplanted_at=None, liposuction_on=None, eligible=False,
                    failed_criteria=("I3",), status="screen_failed", case_number="", group_label=None, visits=())
    failure = dataclasses.replace(failure, records=tuple(
        dataclasses.replace(r, values={**r.values, "lbp_duration_months": 6}) if r.form == "screening" else r
        for r in failure.records if r.visit in ("", "screening")))
    out = _export(tmp_path, p, d, [s, stopped, failure])
    adsl = _by_subject(_read(out / "adsl.csv"))
    r = adsl[s.subject]
    assert (r["BASEPFIR"], r["BASEMODI"], r["BASEDHT"], r["BASEROM"]) == ("4", "2", "30.5", "6.25")
    assert (r["PAINDUR"], r["PAINDURU"]) == ("30", "MONTHS")
    assert (r["LASTVIS"], r["LASTVISN"]) == ("m24", "730")
    r = adsl[stopped.subject]
    assert (r["BASEPFIR"], r["BASEMODI"], r["BASEDHT"], r["BASEROM"], r["PAINDUR"], r["PAINDURU"]) == ("",) * 6
    assert (r["LASTVIS"], r["LASTVISN"]) == ("m3", "91")
    # a screen failure has its screening evidence but no visit
    r = adsl[failure.subject]
    assert (r["PAINDUR"], r["PAINDURU"], r["LASTVIS"], r["LASTVISN"]) == ("6", "MONTHS", "", "")
    assert "BMIBL" not in r  # height and weight are not collected by any form
    # the SAS transport file has the same values
    import pyreadstat

    frame, meta = pyreadstat.read_xport(str(out / "adsl.xpt"), encoding="utf-8")
    row = frame[frame["USUBJID"] == s.subject].iloc[0]
    assert (row["BASEPFIR"], row["BASEDHT"], row["PAINDUR"], row["LASTVISN"], row["PAINDURU"]) == (
        4, 30.5, 30, 730, "MONTHS")
    assert meta.column_names_to_labels["PPEXREAS"] == "Reason Excluded from Per-Protocol"
