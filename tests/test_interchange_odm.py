"""The ODM 1.3.2 export (annulus.interchange.odm): valid against the schema odmlib ships, read back
value for value with its audit records, signatures and query annotations, blind-aware and streamed."""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import replace

import pytest
from lxml import etree

from annulus.dictionary import build
from annulus.interchange import odm, sample
from annulus.interchange.subject import Change, QueryNote, Record, SignatureInfo, Subject, VisitInfo
from annulus.protocol import default_protocol_path, load_protocol

pytestmark = pytest.mark.req("X-7.6")
NS = {"odm": odm.NS}


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(default_protocol_path())


@pytest.fixture(scope="module")
def dictionary(protocol):
    return build(protocol)


def _ctx(protocol, dictionary, **kw):
    return sample.context(protocol, dictionary, "odm", **kw)


def handmade() -> Subject:
    """A participant with the awkward cases: Chinese text, a correction with its reason, an adverse
    event saved twice, a cleared value, a save that changed nothing, an unscheduled visit, several
    codes in one item, queries in every place and an invalidated signature."""
    t = "2023-03-0{}T08:00:00+00:00".format
    vas1 = Change(1, t(1), "coordinator_li", "研究协调员 李", "", {"vas_mm": 72})
    vas2 = Change(2, t(2), "coordinator_li", "研究协调员 李", "抄写错误：源文件为 27", {"vas_mm": 27})
    vas = Record(visit="baseline", form="vas", values={"vas_mm": 27}, computed={"vas_mm": 27.0},
                 changes=(vas1, vas2), state="complete")
    ae_values1 = {"term": "腰痛加重", "serious": False, "serious_criteria": None, "grade": "2",
                  "description": "注射后第3天腰痛加重\n休息后缓解", "onset_at": "2023-03-04T06:00:00+00:00"}
    ae_values2 = dict(ae_values1, serious=True, serious_criteria=["hospitalisation", "life_threatening"],
                      grade="3", description=None)
    ae1 = Change(1, t(4), "coordinator_li", "研究协调员 李", "", ae_values1)
    ae2 = Change(2, t(5), "dr_wang", "Dr Wang 王医生", "upgraded to serious after admission", ae_values2)
    ae3 = Change(3, t(6), "dr_wang", "Dr Wang 王医生", "re-saved without changes", ae_values2)
    ae = Record(visit="", form="adverse_event", record=2, values={k: v for k, v in ae_values2.items()},
                changes=(ae1, ae2, ae3))
    unscheduled = Record(visit="unscheduled", visit_repeat=2, form="vitals",
                         values={"temperature": 37.2, "pulse": 88},
                         changes=(Change(1, t(7), "coordinator_li", "研究协调员 李", "", {"temperature": 37.2, "pulse": 88}),))
    end = Record(visit="", form="end_of_study", values={"status": "withdrawn", "details": "搬家到外地"})
    queries = (
        QueryNote(id=501, visit="baseline", form="vas", record=1, item="vas_mm", status="open",
                  text="请核对源文件：72 还是 27？", raised_by="monitor", raised_at=t(3)),
        QueryNote(id=502, visit="", form="adverse_event", record=2, item="", status="closed",
                  text="Onset date; check against the source", raised_by="datamanager", raised_at=t(5),
                  closed_at=t(6)),
        QueryNote(id=503, visit="m3", form="odi", record=1, item="s1", status="answered",
                  text="Form missing at M3?", raised_by="monitor", raised_at=t(8)),
        QueryNote(id=504, visit="unscheduled", visit_repeat=2, form="vitals", record=1, item="temperature",
                  status="open", text="Fever: adverse event?", raised_by="monitor", raised_at=t(8)),
    )
    signature = SignatureInfo(signed_by="dr_wang", signed_by_name="Dr Wang 王医生", signed_at=t(9),
                              meaning="本人确认本病例报告数据完整准确", content_hash="f" * 64, state="invalidated")
    return Subject(subject="dlbp-admsc-901", screening_number="S0901", case_number="901", sex="F",
                   status="withdrawn", group_label="C", arm="low", drug_code="D-0901",
                   visits=(VisitInfo("baseline", date="2023-03-01"),), records=(vas, ae, unscheduled, end),
                   queries=queries, signature=signature,
                   identity={"initials": "ZXY", "full_name": "张小燕", "phone": "13800000000"})


def _write(tmp_path, subjects, ctx, name="out"):
    out = tmp_path / name
    out.mkdir()
    paths = odm.write(iter(subjects), ctx, out)
    assert paths == [out / "odm.xml"]
    assert sorted(p.name for p in out.iterdir()) == ["odm.xml"]  # the temporary clinical data are gone
    return paths[0]


BOOL_TEXT = {"true": True, "false": False}


def _expected_record(r: Record, dictionary) -> tuple:
    """What the file must give back: identity left out, unset values absent, and yes/no items as
    bool (the sample writes a coded yes/no as its code "true"/"false"; ODM's boolean reads back as bool)."""
    bools = {e.item for e in dictionary.form(r.form).items if e.type == "bool"}

    def clean(values: dict) -> dict:
        return {k: (BOOL_TEXT.get(v, v) if k in bools and isinstance(v, str) else v) for k, v in values.items()
                if v is not None and (r.form, k) not in odm.IDENTITY_ITEMS}

    changes = tuple((c.revision, c.at, c.by, c.by_name, c.reason, clean(c.values)) for c in r.changes)
    computed = {k: v for k, v in r.computed.items() if v is not None}
    return clean(r.values), computed, changes


def _compare(original: Subject, back: dict, dictionary):
    assert back["subject"] == original.subject
    got = {r.key: r for r in back["records"]}
    assert len(got) == len(original.records)
    for r in original.records:
        b = got[r.key]
        values, computed, changes = _expected_record(r, dictionary)
        assert b.values == values, r.key
        assert b.computed == computed, r.key
        assert tuple((c.revision, c.at, c.by, c.by_name, c.reason, c.values) for c in b.changes) == changes, r.key
    assert sorted(back["queries"], key=lambda q: q.id) == sorted(original.queries, key=lambda q: q.id)
    assert back["signature"] == original.signature


def test_the_file_validates_against_the_odm_132_schema(tmp_path, protocol, dictionary):
    subjects = list(sample.subjects(protocol, dictionary, 12)) + [handmade()]
    path = _write(tmp_path, subjects, _ctx(protocol, dictionary, blinding="arms"))
    assert odm.validate(path) == []
    # odmlib's own validator (xmlschema) agrees, offline: the schema's imports are shipped beside it
    from odmlib.odm_parser import ODMSchemaValidator

    small = _write(tmp_path, subjects[:3] + [handmade()], _ctx(protocol, dictionary, blinding="arms"), "small")
    assert ODMSchemaValidator(standard="odm", version="1.3.2").validate_file(str(small)) is None


def test_a_broken_document_fails_validation(tmp_path, protocol, dictionary):
    path = _write(tmp_path, list(sample.subjects(protocol, dictionary, 2)), _ctx(protocol, dictionary))
    tree = etree.parse(str(path))
    audit = tree.find(".//odm:AuditRecord", NS)
    audit.remove(audit.find("odm:UserRef", NS))  # an audit record must say who
    broken = tmp_path / "broken.xml"
    tree.write(str(broken))
    errors = odm.validate(broken)
    assert errors and "UserRef" in " ".join(errors)
    item = tree.find(".//odm:ItemDef", NS)
    item.set("DataType", "decimal")  # not an ODM data type
    tree.write(str(broken))
    assert any("DataType" in e for e in odm.validate(broken))


def test_round_trip_values_audit_records_signatures_and_queries(tmp_path, protocol, dictionary):
    subjects = list(sample.subjects(protocol, dictionary, 30)) + [handmade()]
    ctx = _ctx(protocol, dictionary)
    path = _write(tmp_path, subjects, ctx)
    back = odm.read(path)
    assert [b["subject"] for b in back["subjects"]] == [s.subject for s in subjects]
    for original, b in zip(subjects, back["subjects"]):
        _compare(original, b, dictionary)
    # the sample data did exercise every part: corrections with a reason, queries, signatures, AEs
    assert any(c.reason for s in subjects for r in s.records for c in r.changes[1:])
    assert sum(len(s.queries) for s in subjects) >= 5
    assert sum(s.signature is not None for s in subjects) >= 5
    assert any(r.form == "adverse_event" for s in subjects[:-1] for r in s.records)
    # counts in the file: one SubjectData per participant, one audit record per saved revision
    tree = etree.parse(str(path))
    assert len(tree.findall(".//odm:SubjectData", NS)) == len(subjects)
    revisions = {(s.subject, r.key, c.revision) for s in subjects for r in s.records for c in r.changes}
    audits = set()
    for sd in tree.iterfind(".//odm:SubjectData", NS):
        for ev in sd.iterfind("odm:StudyEventData", NS):
            for fd in ev.iterfind("odm:FormData", NS):
                for ar in fd.iterfind(".//odm:AuditRecord", NS):
                    group = ar.getparent() if ar.getparent().tag.endswith("ItemGroupData") else ar.getparent().getparent()
                    key = (ev.get("StudyEventOID")[3:].replace("LOG", ""), int(ev.get("StudyEventRepeatKey") or 0),
                           fd.get("FormOID")[2:], int(group.get("ItemGroupRepeatKey") or 1))
                    audits.add((sd.get("SubjectKey"), key, int(ar.findtext("odm:SourceID", namespaces=NS))))
    assert audits == revisions
    # the stamp ties the file to the audit trail
    assert back["stamp"] == ctx.stamp
    attrs = back["attributes"]
    assert attrs["CreationDateTime"] == ctx.created_at and attrs["AsOfDateTime"] == ctx.as_of
    assert attrs["ODMVersion"] == "1.3.2" and attrs["Originator"] == "Annulus"
    assert back["clinical"] == {"StudyOID": ctx.study_id, "MetaDataVersionOID": "MDV.1.0"}


def test_handmade_participant_in_detail(tmp_path, protocol, dictionary):
    s = handmade()
    path = _write(tmp_path, [s], _ctx(protocol, dictionary))
    back = odm.read(path)
    b = back["subjects"][0]
    records = {r.key: r for r in b["records"]}
    vas = records[("baseline", 0, "vas", 1)]
    assert vas.values == {"vas_mm": 27}
    assert [(c.by, c.reason) for c in vas.changes] == [("coordinator_li", ""), ("coordinator_li", "抄写错误：源文件为 27")]
    assert vas.changes[0].values == {"vas_mm": 72}
    ae = records[("", 0, "adverse_event", 2)]
    assert ae.values["serious_criteria"] == ["hospitalisation", "life_threatening"]
    assert ae.values["serious"] is True and "description" not in ae.values
    assert [c.revision for c in ae.changes] == [1, 2, 3]
    assert ae.changes[0].values["description"] == "注射后第3天腰痛加重\n休息后缓解"
    assert ae.changes[1].by_name == "Dr Wang 王医生"
    assert ("unscheduled", 2, "vitals", 1) in records
    assert b["signature"].state == "invalidated" and b["signature"].meaning == "本人确认本病例报告数据完整准确"
    # who: every person in the audit records, signatures and queries is a User, with no e-mail
    users = back["users"]
    assert {u["login"] for u in users.values()} == {"coordinator_li", "dr_wang", "monitor", "datamanager"}
    assert users["USR.dr_wang"]["name"] == "Dr Wang 王医生"
    text = path.read_text("utf-8")
    assert "<Email" not in text
    # identity never goes to ODM, even in the identifiable export
    path2 = _write(tmp_path, [s], _ctx(protocol, dictionary, identifiable=True), "identifiable")
    text2 = path2.read_text("utf-8")
    for secret in ("张小燕", "ZXY", "13800000000"):
        assert secret not in text2
    tree = etree.parse(str(path))
    # the query on the VAS sits on the item's current ItemData, after its audit record
    item = [i for i in tree.iterfind(".//odm:ItemData[@ItemOID='IT.vas.vas_mm']", NS)][-1]
    assert item.get("TransactionType") == "Update" and item.get("Value") == "27"
    assert item.findtext("odm:AuditRecord/odm:ReasonForChange", namespaces=NS) == "抄写错误：源文件为 27"
    assert "请核对源文件" in item.findtext("odm:Annotation/odm:Comment", namespaces=NS)
    assert item.findtext("odm:Annotation/odm:Flag/odm:FlagValue", namespaces=NS) == "open"
    # a cleared value is a Remove; a save that changed nothing keeps its audit record
    assert tree.find(".//odm:ItemData[@ItemOID='IT.adverse_event.description'][@TransactionType='Remove']", NS) is not None
    context = tree.findall(".//odm:ItemGroupData[@TransactionType='Context']", NS)
    assert [c.findtext("odm:AuditRecord/odm:ReasonForChange", namespaces=NS) for c in context] == [
        "re-saved without changes"]
    # the unscheduled visit carries its repeat key, the AE group its record number
    assert tree.find(".//odm:StudyEventData[@StudyEventOID='SE.unscheduled'][@StudyEventRepeatKey='2']", NS) is not None
    assert tree.find(".//odm:ItemGroupData[@ItemGroupOID='IG.adverse_event'][@ItemGroupRepeatKey='2']", NS) is not None


def test_metadata_in_both_languages(tmp_path, protocol, dictionary):
    path = _write(tmp_path, list(sample.subjects(protocol, dictionary, 3)), _ctx(protocol, dictionary))
    import odmlib.odm_1_3_2.model  # noqa: F401  (registers the ODM 1.3.2 namespaces)
    from odmlib import loader, odm_loader

    ld = loader.ODMLoader(odm_loader.XMLODMLoader(model_package="odm_1_3_2", ns_uri=odm.NS))
    ld.open_odm_document(str(path))
    mdv = ld.MetaDataVersion()
    study = ld.Study()
    assert study.GlobalVariables.ProtocolName._content == protocol.trial.registry_number
    assert protocol.trial.title.en in study.GlobalVariables.StudyDescription._content
    assert {u.Name for u in study.BasicDefinitions.MeasurementUnit} >= {"mm", "g/L", "mmHg"}
    forms = {f.OID: f for f in mdv.FormDef}
    for f in dictionary.forms:
        texts = {t.lang: t._content for t in forms[f"F.{f.id}"].Description.TranslatedText}
        assert texts == {"en": f.name_en, "zh-Hans": f.name_zh}
    items = {i.OID: i for i in mdv.ItemDef}
    hgb = items["IT.blood_routine.hgb"]
    assert {t.lang for t in hgb.Question.TranslatedText} == {"en", "zh-Hans"}
    assert hgb.DataType == "float" and hgb.MeasurementUnitRef[0].MeasurementUnitOID == "MU.g_L"
    vas = items["IT.vas.vas_mm"]
    assert [(r.Comparator, r.CheckValue[0]._content) for r in vas.RangeCheck] == [("GE", "0"), ("LE", "100")]
    assert items["IT.adverse_event.serious"].DataType == "boolean"
    assert items["IT.prescreening.prescreened_on"].DataType == "date"
    assert items["IT.adverse_event.onset_at"].DataType == "datetime"
    assert items["IT.adverse_event.term"].DataType == "text" and items["IT.adverse_event.term"].Length >= 1
    assert "IT.prescreening.full_name" not in items and "IT.prescreening.phone" not in items
    # derived scores from annulus.interchange.scores
    assert items["IT.odi.derived.odi_percent"].Origin == "Derived"
    assert {t._content for t in items["IT.sf36.derived.pcs"].Question.TranslatedText} == {
        "SF-36 physical component summary", "SF-36 生理健康总评"}
    lists = {c.OID: c for c in mdv.CodeList}
    sex = lists["CL.prescreening.sex"]
    assert [(i.CodedValue, [t._content for t in i.Decode.TranslatedText]) for i in sex.CodeListItem] == [
        ("F", ["female", "女"]), ("M", ["male", "男"])]
    events = {e.OID: e for e in mdv.StudyEventDef}
    assert [r.StudyEventOID for r in mdv.Protocol.StudyEventRef] == (
        ["SE.screening"] + [f"SE.{v.id}" for v in protocol.schedule.visits] + ["SE.unscheduled", "SE.LOG"])
    assert events["SE.unscheduled"].Repeating == "Yes"
    assert "F.adverse_event" in [r.FormOID for r in events["SE.LOG"].FormRef]
    assert {g.OID: g.Repeating for g in mdv.ItemGroupDef}["IG.adverse_event"] == "Yes"
    admin = ld.root().AdminData[0]
    assert [loc.OID for loc in admin.Location] == ["LOC.site"]
    assert [(d.Methodology, d.Meaning._content) for d in admin.SignatureDef] == [
        ("Electronic", "I approve the data in this casebook as complete and accurate")]


def test_an_empty_stream_is_a_valid_odm_with_no_subjects(tmp_path, protocol, dictionary):
    path = _write(tmp_path, [], _ctx(protocol, dictionary))
    assert odm.validate(path) == []
    tree = etree.parse(str(path))
    assert tree.find("odm:ClinicalData", NS) is not None
    assert tree.find(".//odm:SubjectData", NS) is None
    assert tree.find("odm:Study/odm:MetaDataVersion/odm:FormDef", NS) is not None
    assert odm.read(path)["subjects"] == []


@pytest.mark.req("X-3.8")
def test_blinded_export_has_no_group_label_or_arm(tmp_path, protocol, dictionary):
    s = handmade()
    blind = replace(s, group_label=None, arm=None, drug_code=None)  # as the reader hands a blinded role
    subjects = [blind] + list(sample.subjects(protocol, dictionary, 4))
    path = _write(tmp_path, subjects, _ctx(protocol, dictionary, blinding="blinded"))
    text = path.read_text("utf-8")
    assert odm.validate(path) == []
    assert "RANDOMISATION" not in text and "GROUP_LABEL" not in text and "ARM" not in text
    # even a label slipped into the stream is not written when the context is blinded
    leaky = _write(tmp_path, [replace(s, drug_code=None)], _ctx(protocol, dictionary, blinding="blinded"), "leaky")
    assert "GROUP_LABEL" not in leaky.read_text("utf-8") and 'Value="low"' not in leaky.read_text("utf-8")
    # labels only: the group label and no arm
    labels = _write(tmp_path, [replace(s, arm=None, drug_code=None)], _ctx(protocol, dictionary, blinding="labels"),
                    "labels")
    assert odm.validate(labels) == []
    b = odm.read(labels)["subjects"][0]
    assert (b["group_label"], b["arm"], b["drug_code"]) == ("C", None, None)
    assert "IT.RANDOMISATION.ARM" not in labels.read_text("utf-8")
    # arms: both, with the arms' codelist; the drug code when the reader gave one
    arms = _write(tmp_path, [s], _ctx(protocol, dictionary, blinding="arms"), "arms")
    assert odm.validate(arms) == []
    back = odm.read(arms)
    b = back["subjects"][0]
    assert (b["group_label"], b["arm"], b["drug_code"]) == ("C", "low", "D-0901")
    assert [c[0] for c in back["metadata"]["code_lists"]["CL.RANDOMISATION.ARM"]] == [a.id for a in protocol.arms]


def _stream(base: list, n: int):
    """n participants made from a few sample ones (making each afresh would dominate the run)."""
    for i in range(n):
        s = base[i % len(base)]
        yield replace(s, subject=f"dlbp-admsc-{i + 1:05d}")


def _peak(base, ctx, tmp_path, n: int, name: str) -> int:
    out = tmp_path / name
    out.mkdir()
    odm.write(iter(base), ctx, out)  # warm caches (scores, records, schedule) before measuring
    (out / "odm.xml").unlink()
    gc.collect()
    tracemalloc.start()
    odm.write(_stream(base, n), ctx, out)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_memory_is_flat_in_the_number_of_participants(tmp_path, protocol, dictionary):
    base = list(sample.subjects(protocol, dictionary, 10)) + [handmade()]
    ctx = _ctx(protocol, dictionary, blinding="arms")
    small = _peak(base, ctx, tmp_path, 100, "small")
    large = _peak(base, ctx, tmp_path, 500, "large")
    # five times the participants, not five times the memory: the users, meanings and lengths kept
    # for the metadata are bounded by the dictionary, not by the participants
    print(f"tracemalloc peak: 100 participants {small} B, 500 participants {large} B")
    assert large < small * 1.5 + 2_000_000, (small, large)


def test_an_odm_export_after_an_sdtm_export_in_the_same_process(tmp_path, protocol, dictionary):
    """define.xml's writer resets odmlib's process-wide namespace registry (and, run before the ODM
    model was first imported, leaves it empty); the ODM writer registers the namespaces it needs."""
    from annulus.interchange import sdtm

    subjects = list(sample.subjects(protocol, dictionary, 2))
    (tmp_path / "sdtm").mkdir()
    sdtm.write(iter(subjects), sample.context(protocol, dictionary, "sdtm"), tmp_path / "sdtm")
    path = _write(tmp_path, subjects, _ctx(protocol, dictionary))
    assert odm.validate(path) == []
