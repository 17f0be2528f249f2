"""What participants read before a questionnaire's first question names the trial's condition
only where the protocol says so: the first trial's VAS form asks about low back pain in its own
words (``self_report_intro``); the VAS instrument itself asks about "your pain"."""

from __future__ import annotations

import pytest

from annulus.protocol import default_protocol_path, load_protocol
from annulus.selfentry.selectors import questions


@pytest.mark.req("X-5.7", "X-1.3")
@pytest.mark.parametrize("language, condition, generic", [
    ("en", "How bad is your low back pain right now?", "How bad is your pain right now?"),
    ("zh-hans", "您现在的腰痛有多严重？", "您现在的疼痛有多严重？"),
])
def test_the_intro_is_the_protocols_for_its_form_else_the_instruments(language, condition, generic):
    protocol = load_protocol(default_protocol_path())
    (vas,) = questions(protocol, ["vas"], language)
    assert vas["intro"].startswith(condition)
    form = next(f for f in protocol.schedule.forms if f.id == "vas")
    plain = protocol.model_copy(update={"schedule": protocol.schedule.model_copy(update={
        "forms": [f.model_copy(update={"self_report_intro": None}) if f is form else f
                  for f in protocol.schedule.forms]})})
    (vas,) = questions(plain, ["vas"], language)
    assert vas["intro"].startswith(generic)
