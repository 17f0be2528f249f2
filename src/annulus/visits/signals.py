"""What the visit records tell other apps, without this app importing them.

``adverse_event_prompt`` is sent, inside the saving transaction, for each finding that may be an
adverse event: complications written on the liposuction record, "AE review = yes" on a visit, a
laboratory value judged clinically significant. The safety app opens an adverse-event task for
each (once per ``key``). Arguments: ``actor``, ``participant_id``, ``key``, ``source``
("liposuction", "ae_review", "lab"), ``description``, ``term`` (a suggested adverse-event term).

``forms_saved`` is sent, inside the saving transaction, once per save of a visit's eCRF forms (one
form or the whole visit; new forms are inserted in bulk, so no ``post_save`` fires for them).
Arguments: ``participant_id``, ``visit`` (the visit key), ``forms`` (the ids of the forms written).
The queries app re-runs its edit checks on them.
"""

from django.dispatch import Signal

adverse_event_prompt = Signal()
forms_saved = Signal()
