"""``annulus protocol validate FILE`` and ``annulus protocol show [FILE]``."""

from __future__ import annotations

import sys



def register(subparsers) -> None:
    parser = subparsers.add_parser("protocol", help="validate or summarise a protocol file")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    v = sub.add_parser("validate", help="check a protocol file; exit 2 with each error and its field path")
    v.add_argument("file")
    v.set_defaults(func=validate)
    s = sub.add_parser("show", help="print a readable summary of a protocol file")
    s.add_argument("file", nargs="?", help="default: the shipped protocol")
    s.add_argument("--language", default="en", choices=["en", "zh"])
    s.set_defaults(func=show)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def validate(args) -> int:
    from annulus.protocol import ProtocolError, load_protocol

    try:
        p = load_protocol(args.file)
    except ProtocolError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    print(f"{args.file}: valid protocol {p.trial.registry_number} version {p.version}")
    return 0


def show(args) -> int:
    from annulus.protocol import ProtocolError, default_protocol_path, load_protocol

    path = args.file or default_protocol_path()
    try:
        p = load_protocol(path)
    except ProtocolError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    lang = args.language
    out = []
    out.append(f"{p.trial.short_title.get(lang)}  [{p.trial.registry_number}]  protocol version {p.version}")
    out.append(p.trial.title.get(lang))
    out.append(f"Design: {p.trial.design.get(lang)}; phase {p.trial.phase}; site: {p.trial.site.get(lang)}")
    ss = p.sample_size
    out.append(
        f"Sample size: {ss.per_arm} per arm, {ss.total} in total (delta {ss.delta}, SD {ss.sd}, "
        f"alpha {ss.alpha}, power {ss.power}, dropout {ss.dropout:.0%})"
    )
    out.append("\nArms (ratio; cells/disc; cells + saline + HA mL):")
    for a in p.arms:
        r = a.recipe
        out.append(
            f"  {a.id:<8} {a.ratio}  {a.cells_per_disc / 1e6:>5g}x10^6  "
            f"{r.cell_suspension_ml:g} + {r.saline_ml:g} + {r.ha_hydrogel_ml:g} = {r.total_ml:g} mL  {a.name.get(lang)}"
        )
    for box in ("inclusion", "exclusion"):
        out.append(f"\n{box.capitalize()} criteria:")
        for c in getattr(p.eligibility, box):
            out.append(f"  {c.id:<4} {c.text.get(lang)}")
    out.append("\nVisits (anchor + offset, window):")
    for v in p.schedule.visits:
        out.append(
            f"  {v.id:<12} {v.anchor} {v.offset_days:+d} d  (-{v.window.before_days}/+{v.window.after_days} d)  "
            f"{', '.join(v.forms)}"
        )
    out.append("\nRoles:")
    for r in p.roles:
        out.append(f"  {r.id:<13} {'blinded' if r.blinded else 'UNBLINDED':<9} {r.name.get(lang)}")
    out.append("\nSAE reporting:")
    for rec in p.safety.sae_recipients:
        extra = f" or end of working day {rec.or_end_of_working_day}" if rec.or_end_of_working_day else ""
        out.append(f"  {rec.name.get(lang)}: {rec.hours} h{extra}")
    out.append("\nDSMB thresholds:")
    for t in p.safety.dsmb_thresholds:
        out.append(f"  {t.id}: {t.description.get(lang)}")
    out.extend(_plan_lines(p.analysis, lang))
    if p.assumptions:
        out.append("\nAssumptions (not stated in the protocol):")
        for a in p.assumptions:
            out.append(f"  - {a.get(lang)}")
    print("\n".join(out))
    return 0


def _plan_lines(plan, lang: str) -> list[str]:
    """The analysis plan in a few lines (nothing without one)."""
    if plan is None:
        return []
    out = [f"\nAnalysis plan (two-sided alpha {plan.alpha:g}):"]
    for pop in plan.populations:
        out.append(f"  population {pop.id:<7} {pop.role:<8} {pop.name.get(lang)}: {', '.join(pop.rule)}")
    for ep in plan.endpoints:
        m = ep.model
        role = "primary  " if ep is plan.primary else "secondary"
        covariates = ", ".join(m.covariates) or "none"
        responder = ""
        if ep.responder is not None:
            r = ep.responder
            responder = (f"; responder change <= {r.change_at_most:g}" if r.change_at_most is not None
                         else f"; responder change >= {r.change_at_least:g}")
        out.append(f"  {role} {ep.parameter:<8} {ep.population} at {', '.join(ep.visits)} (main {ep.primary_visit}): "
                   f"{m.method.upper()} {m.covariance} {m.estimation} {m.df}, covariates {covariates}{responder}")
    dr = plan.dose_response
    if dr is not None:
        parts = [f"control {dr.control}"]
        if dr.dunnett:
            parts.append("Dunnett")
        if dr.trend:
            parts.append("trend")
        if dr.mcpmod is not None:
            parts.append(f"MCP-Mod at {dr.mcpmod.visit} (one-sided {dr.mcpmod.alpha:g}; {', '.join(dr.mcpmod.models)})")
        out.append(f"  dose response: {'; '.join(parts)}")
    if plan.missing_data is not None:
        md = plan.missing_data
        out.append(f"  missing data: {md.approach}; sensitivity {', '.join(md.sensitivity) or 'none'}")
    if plan.safety is not None:
        out.append(f"  safety: {plan.safety.population} by {', '.join(plan.safety.by)}; {plan.safety.interval} CIs")
    pv = plan.per_visit
    out.append(f"  per visit: {pv.primary} of the {pv.endpoint}; sensitivity {', '.join(pv.sensitivity) or 'none'}")
    return out
