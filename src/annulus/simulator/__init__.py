"""A seeded trial simulator (pure core, no Django): screening candidates, each participant's
answers at every visit, and adverse events, for any protocol in the declarative form. The same
seed gives the same trial.

The first trial (DLBP) has built-in models; every other protocol is simulated from its own
declarations (eligibility fields and rules, sites, recruitment sources, arms with ``ratio``,
``dose_score`` and ``control``, the schedule, the instruments' item specs, laboratory panels,
vital-sign limits, sample size and the analysis parameters' ``lower_is_better``). The built-in
models' output is unchanged by this: the same seed gives the same DLBP demo.

What the demo calls, for the active protocol ``protocol``:

``generate_candidates(n, seed=, start=, days=, protocol=protocol)`` -> ``list[Candidate]``
    Pre-screening candidates in date order: ``initials``, ``full_name``, ``sex``, ``phone``,
    ``source`` (one of ``protocol.recruitment_sources``), ``site`` (a site id of the protocol,
    recruiting unevenly), ``prescreened_on``, ``consents`` / ``consent_date``, ``evidence`` (the
    values of the protocol's eligibility fields, JSON-ready, for ``enter_evidence``) and
    ``intended_failing`` (the criteria the evidence fails, as ``annulus.protocol.evaluate``
    finds; empty for an eligible candidate). Without ``protocol`` the built-in DLBP model (no
    site).

``simulate_participant_for(protocol, arm, seed=, index=, evidence=)``
    One participant's answers: ``.visits[visit_id][form_id]`` is the item dict to save on that
    eCRF form (``annulus.visits.crf.clean`` accepts it), ``.missed`` the visits missed,
    ``.dropout_after`` the last visit before dropping out (``None``: stays). ``arm`` is the arm
    id the participant was allocated; ``evidence`` the candidate's screening evidence, so the
    baseline of a score measured at screening (NRS pain) agrees with it. For the DLBP protocol
    the built-in ``trajectories.simulate_participant`` (``evidence`` is not used); else
    ``outcomes.ProtocolOutcomes``. Procedure records are not simulated here.

``simulate_adverse_events_for(protocol, participants, seed=, today=)``
    Adverse events in onset order, each a ``SimEvent`` whose ``fields`` go to
    ``record_adverse_event``. ``participants`` are ``TreatedParticipant(id, consented_on,
    treated_on, arm)``. For the DLBP protocol the built-in model (liposuction 21 days before the
    injection, as the protocol times it, unless ``SimParticipant`` are given); else the generic
    model of ``adverse_events.simulate_protocol_adverse_events``.

``uses_builtin_models(protocol)``: whether the built-in DLBP models serve the protocol.
"""

from __future__ import annotations

from datetime import date, timedelta

from .adverse_events import SimEvent, SimParticipant, TreatedParticipant, simulate_adverse_events
from .adverse_events import simulate_protocol_adverse_events
from .candidates import Candidate, builtin_candidates_fit, generate_candidates
from .outcomes import ProtocolOutcomes, ProtocolTrajectory, outcomes_for, simulate_protocol_participant
from .trajectories import builtin_outcomes_fit, simulate_participant

__all__ = ["Candidate", "ProtocolOutcomes", "ProtocolTrajectory", "SimEvent", "SimParticipant", "TreatedParticipant",
           "generate_candidates", "outcomes_for", "simulate_adverse_events_for", "simulate_participant_for",
           "uses_builtin_models"]


def uses_builtin_models(protocol) -> bool:
    """The built-in DLBP models serve this protocol (its evidence fields, arms, visits and forms
    are theirs)."""
    return builtin_candidates_fit(protocol) and builtin_outcomes_fit(protocol)


def simulate_participant_for(protocol, arm: str, *, seed: int, index: int, evidence: dict | None = None):
    """One participant's answers at every visit of ``protocol`` (see the module docstring)."""
    if builtin_outcomes_fit(protocol):
        return simulate_participant(arm, seed=seed, index=index)
    return simulate_protocol_participant(protocol, arm, seed=seed, index=index, evidence=evidence)


def _lead_days(protocol) -> int:
    """Days from the procedure the treatment's timing counts from to the treatment (DLBP: the
    liposuction three weeks before the injection)."""
    treatment = protocol.treatment_procedure
    return treatment.timing.offset_days if treatment is not None and treatment.timing is not None else 0


def simulate_adverse_events_for(protocol, participants: list, *, seed: int, today: date) -> list[SimEvent]:
    """The adverse events of ``participants`` (see the module docstring)."""
    if uses_builtin_models(protocol):
        sims = [p if isinstance(p, SimParticipant) else
                SimParticipant(p.id, p.consented_on, p.treated_on - timedelta(days=_lead_days(protocol)),
                               p.treated_on, p.arm)
                for p in participants]
        return simulate_adverse_events(sims, seed=seed, today=today)
    return simulate_protocol_adverse_events(protocol, participants, seed=seed, today=today)
