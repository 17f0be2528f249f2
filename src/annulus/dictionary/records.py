"""The records Annulus keeps in its own tables (not eCRF forms), declared as data (no Django).

Each ``RecordForm`` names the model its items are stored in (``app_label.Model``) and each
``RecordItem`` the model field. ``tests/test_data_dictionary_models.py`` proves every declared item
matches its model field (type, choices, required) and every field a person enters is declared here,
or listed in ``NOT_CAPTURED`` with the reason, so the dictionary and the tables cannot drift apart.

Codelists written ``PROTOCOL`` are read from the protocol file when the dictionary is built
(consent versions, recruitment sources).
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "protocol"  # the codelist comes from the protocol file


@dataclass(frozen=True)
class RecordItem:
    id: str
    en: str
    zh: str
    type: str
    required: bool = True
    codelist: tuple | str = ()
    unit: str = ""
    min: float | None = None
    max: float | None = None
    field: str = ""  # model field; the item id when empty
    model: str = ""  # the form's model when empty
    subset: bool = False  # the codelist is part of the field's choices (end-of-study statuses)
    multiple: bool = False  # several codes may be chosen (a list)
    # one item per procedure whose causality the protocol assesses (safety.causality_of): the id
    # and labels are patterns filled with the procedure's id and names; the field holds them all
    per_causality: bool = False
    # on a procedure's record: the field of the protocol's procedure the item records (its SDTM
    # hint is that field's); the item id when empty
    protocol_field: str = ""

    @property
    def model_field(self) -> str:
        return self.field or self.id


@dataclass(frozen=True)
class RecordForm:
    id: str
    en: str
    zh: str
    scope: str
    model: str
    items: tuple = ()
    visits: tuple = ()  # fixed visits; procedure records take theirs from the schedule
    key_value: tuple = ()  # (item field, value field) of a model storing one row per item


# ---- codelists (values exactly as stored; labels as the pages show them) -----------------------
SEX = (("F", "female", "女"), ("M", "male", "男"))
ELIGIBILITY_OUTCOME = (("eligible", "eligible", "符合入组条件"), ("ineligible", "screen failure", "筛选失败"))
ANAESTHESIA = (("local", "local anaesthesia", "局部麻醉"),
               ("local_sedation", "local anaesthesia with sedation", "局部麻醉加镇静"),
               ("general", "general anaesthesia", "全身麻醉"))
SERIOUS_CRITERIA = (
    ("death", "results in death", "导致死亡"),
    ("life_threatening", "is life-threatening", "危及生命"),
    ("hospitalisation", "requires hospitalisation or prolongs it", "需要住院或延长住院时间"),
    ("disability", "results in persistent or significant disability/incapacity", "导致持续或显著的残疾/功能丧失"),
    ("congenital_anomaly", "is a congenital anomaly/birth defect", "先天性异常/出生缺陷"),
    ("important_medical_event", "other important medical event", "其他重要医学事件"),
)
GRADES = (("1", "1 mild", "1 轻度"), ("2", "2 moderate", "2 中度"), ("3", "3 severe", "3 重度"),
          ("4", "4 life-threatening", "4 危及生命"), ("5", "5 death", "5 死亡"))
CAUSALITY = (
    ("not_applicable", "not applicable (not yet done)", "不适用（尚未进行）"),
    ("not_related", "not related", "无关"),
    ("unlikely", "unlikely", "可能无关"),
    ("possible", "possible", "可能有关"),
    ("probable", "probable", "很可能有关"),
    ("definite", "definite", "肯定有关"),
)
EXPECTEDNESS = (("expected", "expected", "预期"), ("unexpected", "unexpected", "非预期"))
ACTIONS = (
    ("none", "none", "无"),
    ("treatment", "treatment given", "给予治疗"),
    ("procedure_postponed", "study procedure postponed", "研究操作推迟"),
    ("procedure_cancelled", "study procedure cancelled", "研究操作取消"),
    ("hospitalised", "hospitalised", "住院"),
    ("withdrawn", "withdrawn from the study", "退出研究"),
)
AE_OUTCOMES = (
    ("recovering", "recovering/resolving", "恢复中/缓解中"),
    ("recovered", "recovered/resolved", "已恢复/已缓解"),
    ("recovered_with_sequelae", "recovered with sequelae", "恢复但有后遗症"),
    ("not_recovered", "not recovered/not resolved", "未恢复/未缓解"),
    ("fatal", "fatal", "死亡"),
    ("unknown", "unknown", "未知"),
)
WITHDRAWAL_CATEGORIES = (
    ("participant_request", "participant's request", "受试者要求"),
    ("adverse_event", "serious adverse event / safety", "严重不良事件/安全性原因"),
    ("other_disease", "other serious disease limiting participation", "其他严重疾病限制参与"),
    ("investigator_decision", "investigator's decision", "研究者决定"),
    ("declined_consent", "declined consent", "拒绝知情同意"),
    ("other", "other", "其他"),
)
END_STATUSES = (("completed", "completed", "已完成"), ("withdrawn", "withdrawn", "已退出"),
                ("lost_to_follow_up", "lost to follow-up", "失访"))
YES_NO_BOOL = (("true", "yes", "是"), ("false", "no", "否"))

# ---- the records -----------------------------------------------------------------------------
PRESCREENING = RecordForm("prescreening", "Pre-screening", "预筛选", "participant", "participants.Participant", (
    RecordItem("initials", "Initials", "姓名缩写", "text"),
    RecordItem("full_name", "Full name (for the call list)", "姓名（用于电话联系名单）", "text", required=False),
    RecordItem("sex", "Sex", "性别", "choice", codelist=SEX),
    RecordItem("phone", "Phone", "电话", "text", required=False),
    RecordItem("recruitment_source", "Recruitment source", "招募来源", "choice", codelist=PROTOCOL),
    RecordItem("site", "Site", "研究中心", "choice", codelist=PROTOCOL),
    RecordItem("prescreened_on", "Pre-screening date", "预筛选日期", "date"),
))

CONSENT = RecordForm("consent", "Informed consent", "知情同意", "screening", "participants.Consent", (
    RecordItem("consent_version", "Consent form version", "知情同意书版本", "choice", codelist=PROTOCOL),
    RecordItem("consented_at", "Signed at", "签署时间", "datetime"),
    RecordItem("taken_by", "Consent taken by", "知情同意获取人", "choice"),
), visits=("screening",))

# the items are the protocol's evidence fields; each row stores one (field, value)
SCREENING_EVIDENCE = RecordForm("screening", "Screening evidence", "筛选证据", "screening",
                                "participants.Evidence", (
                                    RecordItem("collected_on", "Collected on", "采集日期", "date"),
                                ), visits=("screening",), key_value=("field", "value"))

ELIGIBILITY = RecordForm("eligibility", "Eligibility decision", "入组资格判定", "screening",
                         "participants.EligibilityDecision", (
                             RecordItem("outcome", "Eligibility decision", "入组资格判定", "choice",
                                        codelist=ELIGIBILITY_OUTCOME),
                         ), visits=("screening",))

# The two procedures of an autologous cell product recorded on the product's own pages
# (``Protocol.page_procedures``): the harvest the product is made from, and the treatment; each is
# shown under the id and name of the schedule form that records it.
HARVEST = RecordForm("harvest", "Liposuction record", "吸脂记录", "visit", "visits.Liposuction", (
    RecordItem("performed_on", "Liposuction date (day 0)", "吸脂日期（第0天）", "date"),
    RecordItem("fat_volume_ml", "Subcutaneous fat harvested", "抽取皮下脂肪量", "number", unit="mL"),
    RecordItem("anaesthesia", "Anaesthesia", "麻醉方式", "choice", codelist=ANAESTHESIA),
    RecordItem("observation_hours", "Observation before discharge", "出院前观察时间", "number", unit="h"),
    RecordItem("complications", "Complications (empty if none)", "并发症（无则留空）", "text", required=False),
))

TREATMENT = RecordForm("treatment", "Transplantation record", "移植记录", "visit", "allocation.Transplant", (
    RecordItem("transplanted_at", "Injected at", "注射时间", "datetime"),
    RecordItem("drug_code_entered", "Drug code (scanned or typed from the sachet)", "药物编号（扫描或按药袋录入）", "text",
               protocol_field="drug_code"),
    RecordItem("disc_level", "Disc level", "椎间盘节段", "text"),
    RecordItem("needle_gauge", "Spinal needle", "脊柱穿刺针", "integer", unit="G"),
    RecordItem("approach", "Approach", "入路", "text"),
    RecordItem("imaging", "Imaging guidance", "影像引导", "text"),
    RecordItem("volume_ml", "Volume injected", "注射体积", "number", unit="mL"),
    RecordItem("notes", "Notes", "备注", "text", required=False),
))

ADVERSE_EVENT = RecordForm("adverse_event", "Adverse event", "不良事件", "log", "safety.AdverseEvent", (
    RecordItem("term", "Adverse event term (verbatim)", "不良事件名称（原文）", "text"),
    RecordItem("meddra_pt_code", "MedDRA preferred-term code", "MedDRA首选术语编码", "text", required=False),
    RecordItem("meddra_version", "MedDRA version", "MedDRA版本", "text", required=False),
    RecordItem("description", "Description", "描述", "text", required=False),
    RecordItem("onset_at", "Onset", "发生时间", "datetime"),
    RecordItem("end_at", "End (resolution or death)", "结束时间（缓解或死亡）", "datetime", required=False),
    RecordItem("serious", "Serious (ICH E2A)", "严重（ICH E2A）", "bool", codelist=YES_NO_BOOL),
    RecordItem("serious_criteria", "Seriousness criteria", "严重性标准", "choice", required=False,
               codelist=SERIOUS_CRITERIA, multiple=True),
    RecordItem("first_knowledge_at", "First knowledge of the serious event", "首次获知严重事件的时间", "datetime",
               required=False),
    RecordItem("grade", "Severity grade (CTCAE)", "严重程度分级（CTCAE）", "code", codelist=GRADES),
    RecordItem("causality_{id}", "Causality: {en}", "因果关系：{zh}", "choice", codelist=CAUSALITY,
               field="causality", per_causality=True),
    RecordItem("causality_product", "Causality: study product", "因果关系：研究产品", "choice", codelist=CAUSALITY),
    RecordItem("expectedness", "Expectedness", "预期性", "choice", codelist=EXPECTEDNESS),
    RecordItem("action_taken", "Action taken", "采取的措施", "choice", codelist=ACTIONS),
    RecordItem("outcome", "Outcome", "转归", "choice", codelist=AE_OUTCOMES),
))

END_OF_STUDY = RecordForm("end_of_study", "End of study", "研究结束", "participant", "participants.Withdrawal", (
    RecordItem("status", "End-of-study status", "研究结束状态", "choice", codelist=END_STATUSES,
               model="participants.Participant", subset=True),
    RecordItem("withdrawn_on", "Withdrawal date", "退出日期", "date"),
    RecordItem("category", "Reason category", "原因类别", "choice", codelist=WITHDRAWAL_CATEGORIES),
    RecordItem("details", "Reason and observations", "原因及观察", "text"),
))

RECORDS = (PRESCREENING, CONSENT, SCREENING_EVIDENCE, ELIGIBILITY, HARVEST, TREATMENT, ADVERSE_EVENT,
           END_OF_STUDY)
BY_ID = {r.id: r for r in RECORDS}
BEFORE_SCHEDULE = ("prescreening", "consent", "screening", "eligibility")
AFTER_SCHEDULE = ("adverse_event", "end_of_study")
# the page procedures' records by their part (``Protocol.page_procedures``): schedule forms kept as records
PAGE_RECORDS = {HARVEST.id: HARVEST, TREATMENT.id: TREATMENT}

# Model fields that are not captured items, with the reason (who/when of the audit trail, links,
# values the system assigns or derives). A new model field must be declared above or here.
NOT_CAPTURED = {
    "participants.Participant": {
        "id": "row id", "screening_number": "assigned at pre-screening",
        "case_number": "assigned at enrolment", "enrolled_at": "set at enrolment",
        "protocol_version": "protocol in force", "created_at": "audit", "created_by": "audit",
        "updated_at": "audit",
    },
    "participants.Consent": {
        "id": "row id", "participant": "link", "recorded_by": "audit", "recorded_at": "audit",
        "protocol_version": "protocol in force",
    },
    "participants.Evidence": {
        "id": "row id", "participant": "link", "entered_by": "audit", "entered_at": "audit",
        "protocol_version": "protocol in force", "superseded": "revision history",
        "change_reason": "reason for change (audit)",
    },
    "participants.EligibilityDecision": {
        "id": "row id", "participant": "link", "criteria": "decided by the protocol's rules from the evidence",
        "failing": "decided by the protocol's rules from the evidence", "decided_at": "signature (audit)",
        "decided_by": "signature (audit)", "protocol_version": "protocol in force", "superseded": "revision history",
    },
    "participants.Withdrawal": {
        "id": "row id", "participant": "link", "from_status": "the status before withdrawal (system)",
        "adverse_event_id": "set when the withdrawal is recorded from an adverse event",
        "recorded_by": "audit", "recorded_at": "audit", "protocol_version": "protocol in force",
    },
    "visits.Liposuction": {
        "id": "row id", "participant": "link", "recorded_by": "audit", "recorded_at": "audit",
        "protocol_version": "protocol in force", "superseded": "revision history",
        "change_reason": "reason for change (audit)",
    },
    "allocation.Transplant": {
        "id": "row id", "participant": "link", "envelope": "the blind's link (system)",
        "activity_restriction_until": "derived: transplant day + the protocol's restriction days",
        "recorded_by": "audit", "recorded_at": "audit",
    },
    "safety.AdverseEvent": {
        "id": "row id", "participant": "link", "number": "assigned per participant",
        "source": "set when the event is recorded from a finding", "revision": "revision history",
        "protocol_version": "protocol in force", "created_at": "audit", "created_by": "audit",
        "updated_at": "audit",
    },
}
