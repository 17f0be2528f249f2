"""What the queries app tells record locks (X-7.5): open or answered queries on the record, or on
anything below it, forbid locking it."""

from __future__ import annotations

from django.utils.translation import ngettext

from .selectors import open_query_counts


def open_work(participant_id: int, visit: str, form: str) -> list[str]:
    from annulus.participants.locks import record_name

    lines = []
    for (pid, v, f), n in sorted(open_query_counts(participant_ids=[participant_id]).items()):
        if pid != participant_id or not n:
            continue
        if form and (v, f) != (visit, form):
            continue
        if not form and visit and v != visit:
            continue
        lines.append(ngettext("%(n)s open query on %(what)s", "%(n)s open queries on %(what)s", n) % {
            "n": n, "what": record_name(v, f)})
    return lines
