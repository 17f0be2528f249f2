"""The records the dictionary declares as data match the Django model fields they are stored in
(type, choices, required), and every model field a person enters is declared, so the two cannot
drift apart: a new field fails here until it is declared or listed as not captured."""

from django.apps import apps
from django.db import models

from annulus.dictionary import records

# which dictionary types each kind of model field may hold
ALLOWED = {
    models.CharField: {"text", "choice"},
    models.TextField: {"text"},
    models.DateField: {"date"},
    models.DateTimeField: {"datetime"},
    models.DecimalField: {"number"},
    models.FloatField: {"number"},
    models.BooleanField: {"bool"},
    models.PositiveSmallIntegerField: {"integer", "code"},
    models.PositiveIntegerField: {"integer", "code"},
    models.IntegerField: {"integer", "code"},
    models.BigIntegerField: {"integer"},
    models.ForeignKey: {"choice"},
    models.JSONField: {"choice"},
}


def _model(label):
    return apps.get_model(label)


def _declared():
    """(record form, item, model, field) of every declared item."""
    for form in records.RECORDS:
        for item in form.items:
            model = _model(item.model or form.model)
            yield form, item, model, model._meta.get_field(item.model_field)


def _allowed(field) -> set:
    for cls in type(field).__mro__:  # DateTimeField is a DateField: the most specific class first
        if cls in ALLOWED:
            return ALLOWED[cls]
    raise AssertionError(f"no dictionary type for {type(field).__name__}")


def test_each_declared_item_is_a_field_of_its_model_with_the_same_type():
    for form, item, model, field in _declared():
        assert item.type in _allowed(field), (form.id, item.id, type(field).__name__, item.type)
        if field.choices:
            assert item.type in ("choice", "code"), (form.id, item.id)


def test_declared_codelists_are_the_models_choices():
    checked = 0
    for form, item, model, field in _declared():
        if not field.choices:
            continue
        model_values = [str(v) for v, _label in field.choices]
        declared = [v for v, _en, _zh in item.codelist]
        if item.subset:
            assert declared and set(declared) <= set(model_values), (form.id, item.id)
        else:
            assert declared == model_values, (form.id, item.id)
            # the English label is the model's (the page's words before translation)
            assert [en for _v, en, _zh in item.codelist] == [str(label) for _v, label in field.choices], \
                (form.id, item.id)
        checked += 1
    assert checked >= 10  # sex, outcome, anaesthesia, grade, causality x3, expectedness, action, outcome, ...


def test_a_multiple_choice_list_holds_the_declared_codes():
    from annulus.safety.models import SERIOUS_CRITERIA

    item = next(i for i in records.ADVERSE_EVENT.items if i.id == "serious_criteria")
    assert item.multiple
    assert [(v, en) for v, en, _zh in item.codelist] == [(v, str(label)) for v, label in SERIOUS_CRITERIA]


def test_required_matches_the_model():
    for form, item, model, field in _declared():
        if isinstance(field, models.BooleanField):
            required = True  # always yes or no
        elif field.has_default() and field.get_default() in ([], "", {}):
            required = False  # an empty list by default: nothing needs to be chosen
        else:
            required = not (field.blank or field.null)
        assert item.required == required, (form.id, item.id)


def test_every_captured_model_field_is_declared_or_named_as_not_captured():
    declared: dict[str, set] = {}
    for form, item, model, field in _declared():
        declared.setdefault(model._meta.label, set()).add(field.name)
    for form in records.RECORDS:
        if form.key_value:  # one row per item: the item and its value
            declared.setdefault(form.model, set()).update(form.key_value)
    assert set(declared) == set(records.NOT_CAPTURED), "every declared model lists its uncaptured fields"
    for label, names in declared.items():
        fields = {f.name for f in _model(label)._meta.concrete_fields}
        not_captured = set(records.NOT_CAPTURED[label])
        assert not (names & not_captured), (label, names & not_captured)
        assert fields == names | not_captured, (label, "undeclared:", fields - names - not_captured,
                                                "not a field:", (names | not_captured) - fields)


def test_the_evidence_rows_hold_the_protocols_fields(protocol_version):
    from annulus.dictionary import build
    from annulus.participants.models import Evidence
    from annulus.trial.selectors import protocol_for

    protocol = protocol_for(protocol_version)
    d = build(protocol)
    item_field, value_field = records.SCREENING_EVIDENCE.key_value
    assert Evidence._meta.get_field(item_field).max_length >= max(len(f.id) for f in protocol.eligibility.fields)
    assert isinstance(Evidence._meta.get_field(value_field), models.JSONField)
    assert {f.id for f in protocol.eligibility.fields} <= {e.item for e in d.form("screening").items}
