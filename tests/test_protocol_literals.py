"""No new trial-specific literal in app code: the first protocol's ids (visit, form, instrument
and procedure ids) written as quoted strings under src/ - outside the instruments library - are
exactly those of the checked-in allow-list tests/data/protocol_literals_allowed.txt, so the list
can only shrink (X-1.3)."""

from __future__ import annotations

import pytest

from tests.protocol_literals import _python_strings, _template_strings, counts, protocol_ids, read_allowed, report


@pytest.mark.req("X-1.3")
def test_the_first_protocols_literals_in_the_source_are_the_allow_list():
    found, allowed = counts(), read_allowed()
    new = sorted(k for k in found if found[k] > allowed.get(k, 0))
    gone = sorted(k for k in allowed if allowed[k] > found.get(k, 0))
    where = {}
    for rel, line, literal in report():
        where.setdefault((rel, literal), []).append(line)
    message = []
    for key in new:
        lines = ", ".join(str(n) for n in where[key])
        message.append(f"new literal {key[1]!r} in {key[0]} (lines {lines}; allowed {allowed.get(key, 0)}): "
                       "read it from the protocol instead")
    for key in gone:
        message.append(f"{key[0]} now writes {key[1]!r} {found.get(key, 0)} time(s), the allow-list says "
                       f"{allowed[key]}: lower or delete its line in tests/data/protocol_literals_allowed.txt")
    assert not message, "\n".join(message)


@pytest.mark.req("X-1.3")
def test_the_ids_looked_for_come_from_the_first_protocol():
    ids = protocol_ids()
    # visit ids, procedure ids, form ids and instrument ids
    assert {"baseline", "w1", "m12", "m24"} <= ids
    assert {"liposuction", "transplant"} <= ids
    assert {"blood_routine", "urinalysis", "adverse_events"} <= ids
    assert {"vas", "odi", "joa", "sf36", "imaging", "vitals"} <= ids
    assert not {"nrs", "koos", "first_dose", "w12"} & ids  # the second protocol's own ids are not looked for


@pytest.mark.req("X-1.3")
def test_only_whole_quoted_ids_count():
    source = ('x = "vas"  # "odi" in a comment\n'
              '"""transplant happens in week 3"""\n'
              'y = f"m12"\n'
              'z = f"{name}_vas"\n'
              'w = "vas_mm" + baseline_visit\n'
              "v = 'liposuction'\n")
    assert [(n, s) for n, s in _python_strings(source) if s in protocol_ids()] == [
        (1, "vas"), (3, "m12"), (6, "liposuction")]
    template = '{% if slot.visit_id == "baseline" %}<a data-x="m12_link">{% url \'transplant\' %}</a>{% endif %}'
    assert [s for _, s in _template_strings(template) if s in protocol_ids()] == ["baseline", "transplant"]
