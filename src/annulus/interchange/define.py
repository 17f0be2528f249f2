"""Define-XML 2.1 for the SDTM export, built with odmlib's ``define_2_1`` model (no Django).

One ``ItemGroupDef`` per domain (``def:Structure``, ``def:Class``, ``def:leaf`` to the file written,
``ItemRef``s with ``OrderNumber``, ``Mandatory`` and ``KeySequence``), one ``ItemDef`` per variable
(``def:Origin`` Collected/Derived/Assigned/Protocol), a ``CodeList`` per controlled variable (CDISC
terms with their NCIt codes as ``Alias Context="nci:ExtCodeID"``; sponsor codelists without), the
standards (SDTMIG 3.3, CDISC CT) and ``def:CommentDef``s for the export's conventions. The export's
provenance (as-of time, audit-chain count and hash, blinding) is in ``AsOfDateTime`` and the
MetaDataVersion's description.

``validate(path)`` checks a define.xml against the Define-XML 2.1 schema shipped with odmlib
(offline) and returns the schema errors.
"""

from __future__ import annotations

from pathlib import Path

from . import ct
from .odmlib_ns import registered

DEFINE_NS = "http://www.cdisc.org/ns/def/v2.1"
ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
XLINK_NS = "http://www.w3.org/1999/xlink"
CLASSES = {"SPECIAL PURPOSE": "SPECIAL PURPOSE", "EVENTS": "EVENTS", "INTERVENTIONS": "INTERVENTIONS",
           "FINDINGS": "FINDINGS", "TRIAL DESIGN": "TRIAL DESIGN"}
MANDATORY = {"Req": "Yes", "Exp": "No", "Perm": "No"}


def _text(D, text: str):
    return D.Description(TranslatedText=[D.TranslatedText(_content=text, lang="en")])


def _codelist_oid(name: str) -> str:
    return f"CL.{name}"


def build(ctx, specs, files: dict, rows: dict | None = None):
    """The odmlib ``ODM`` root of define.xml for ``specs`` (``sdtm.Domain``s) written to ``files``
    (domain name -> file name)."""
    import odmlib.define_2_1.model as D

    from .sdtm import SDTMIG

    rows = rows or {}
    stamp = ctx.stamp
    mdv_oid = f"MDV.{ctx.study_id}.SDTMIG.{SDTMIG}"
    comments, groups, items, used = [], [], [], {}
    comments.append(D.CommentDef(OID="COM.EXPORT", Description=_text(
        D, f"Annulus export of {ctx.study_id} as of {ctx.as_of} (audit trail: {ctx.chain_count} events, last hash "
           f"{ctx.chain_hash}); blinding: {ctx.blinding}. Dates are ISO 8601 in the trial's local time; --DY counts "
           "the treatment date (the protocol's treatment procedure) as day 1 (no day 0).")))
    for d in specs:
        refs = []
        for order, v in enumerate(d.vars, start=1):
            oid = f"IT.{d.name}.{v.name}"
            ref = D.ItemRef(ItemOID=oid, OrderNumber=order, Mandatory=MANDATORY[v.core])
            if v.key:
                ref.KeySequence = v.key
            refs.append(ref)
            item = D.ItemDef(OID=oid, Name=v.name, DataType=v.define_type, SASFieldName=v.name,
                             Description=_text(D, v.label))
            if v.xpt_type == "char":
                item.Length = v.length
            elif v.kind == "float":
                item.Length = 8
                item.SignificantDigits = 2
            else:
                item.Length = 8
            source = {"Collected": "Investigator", "Derived": "Sponsor", "Assigned": "Sponsor"}.get(v.origin)
            origin = D.Origin(Type=v.origin)
            if source:
                origin.Source = source
            item.Origin = [origin]
            if v.codelist:
                item.CodeListRef = D.CodeListRef(CodeListOID=_codelist_oid(v.codelist))
                used[v.codelist] = v.define_type if v.define_type in ("text", "integer", "float") else "text"
            items.append(item)
        file_name = files.get(d.name, f"{d.name.lower()}.xpt")
        group = D.ItemGroupDef(OID=f"IG.{d.name}", Name=d.name, Repeating="No" if d.name == "DM" else "Yes",
                               IsReferenceData="Yes" if d.cls == "TRIAL DESIGN" else "No", SASDatasetName=d.name,
                               Domain=d.name, Purpose="Tabulation", Structure=d.structure,
                               ArchiveLocationID=f"LF.{d.name}", StandardOID="STD.SDTMIG",
                               Description=_text(D, d.label), ItemRef=refs,
                               Class=D.Class(Name=CLASSES[d.cls]),
                               leaf=D.leaf(ID=f"LF.{d.name}", href=file_name, title=D.title(_content=file_name)))
        if rows.get(d.name) == 0:
            group.HasNoData = "Yes"
        if d.comment:
            group.CommentOID = f"COM.{d.name}"
            comments.append(D.CommentDef(OID=f"COM.{d.name}", Description=_text(D, d.comment)))
        groups.append(group)
    codelists = []
    for name, data_type in sorted(used.items()):
        cl = ct.codelist(name)
        standard = name in ct.CDISC or name in ct.COMBINED
        codelist = D.CodeList(OID=_codelist_oid(name), Name=cl.name, DataType=data_type)
        if standard:
            codelist.StandardOID = "STD.CT"
        if name == "DOMAIN" or name in ("TSPARMCD", "VSTESTCD", "LBTESTCD", "IECAT", "NY", "SEX", "AGEU", "EPOCH",
                                        "OUT", "NRIND", "SPECTYPE", "UNIT", "VSRESU", "ROUTE", "FRM", "LOC",
                                        "METHOD", "DSCAT", "ARMNULRS", "DSDECOD", "TSPARM", "VSTEST", "LBTEST",
                                        "TOXGR", "AEREL"):
            codelist.EnumeratedItem = [
                D.EnumeratedItem(CodedValue=value, OrderNumber=i,
                                 Alias=[D.Alias(Context="nci:ExtCodeID", Name=code)] if code else [])
                for i, (value, code) in enumerate(cl.terms.items(), start=1)]
        if cl.ncit:
            codelist.Alias = [D.Alias(Context="nci:ExtCodeID", Name=cl.ncit)]
        codelists.append(codelist)
    standards = D.Standards(Standard=[
        D.Standard(OID="STD.SDTMIG", Name="SDTMIG", Type="IG", Version=SDTMIG, Status="Final"),
        D.Standard(OID="STD.CT", Name="CDISC/NCI", Type="CT", PublishingSet="SDTM", Version="subset",
                   Status="Final", CommentOID="COM.CT")])
    comments.append(D.CommentDef(OID="COM.CT", Description=_text(
        D, "Terms of the published CDISC SDTM Controlled Terminology (NCI EVS) used by this export, with their "
           "NCIt codes; sponsor codelists (AEREL, TOXGR) have none.")))
    mdv = D.MetaDataVersion(
        OID=mdv_oid, Name=f"{ctx.study_id} SDTM (SDTMIG {SDTMIG})",
        Description="; ".join(f"{k}={v}" for k, v in stamp.items()),
        DefineVersion="2.1.0", CommentOID="COM.EXPORT", Standards=standards,
        ItemGroupDef=groups, ItemDef=items, CodeList=codelists, CommentDef=comments)
    study = D.Study(OID=ctx.study_id, GlobalVariables=D.GlobalVariables(
        StudyName=D.StudyName(_content=ctx.study_id),
        StudyDescription=D.StudyDescription(_content=ctx.title_en),
        ProtocolName=D.ProtocolName(_content=ctx.registry_number or ctx.study_id)), MetaDataVersion=mdv)
    return D.ODM(FileType="Snapshot", FileOID=f"DEF.{ctx.study_id}.{ctx.created_at}", ODMVersion="1.3.2",
                 CreationDateTime=_odm_time(ctx.created_at), AsOfDateTime=_odm_time(ctx.as_of),
                 Originator="Annulus", SourceSystem="Annulus", Context="Submission", Study=study)


def _odm_time(value: str) -> str:
    return value.replace("+00:00", "Z")


def write(ctx, specs, files: dict, path: Path, rows: dict | None = None) -> Path:
    """Write define.xml to ``path`` (odmlib's writer, the Define-XML 2.1 namespaces)."""
    with registered(ODM_NS, {"def": DEFINE_NS, "xlink": XLINK_NS}):
        root = build(ctx, specs, files, rows)
        root.write_xml(str(path))
    return Path(path)


def schema_path() -> Path:
    import odmlib

    return Path(odmlib.__file__).parent / "schemas" / "define" / "2.1" / "define2-1-0.xsd"


def validate(path) -> list[str]:
    """Schema errors of a define.xml against the Define-XML 2.1 schema (empty list: valid)."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(schema_path()))
    try:
        return [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(path))]
    except xmlschema.XMLResourceError as error:  # not even well-formed XML
        return [f"not well-formed XML: {error}"]
