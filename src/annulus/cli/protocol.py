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
    out.extend(_sample_size_lines(p))
    out.extend(_arm_lines(p, lang))
    out.extend(_allocation_lines(p, lang))
    for box in ("inclusion", "exclusion"):
        out.append(f"\n{box.capitalize()} criteria:")
        for c in getattr(p.eligibility, box):
            out.append(f"  {c.id:<4} {c.text.get(lang)}")
    out.append("\nVisits (anchor + offset, window):")
    width = max(12, *(len(v.id) for v in p.schedule.visits))
    for v in p.schedule.visits:
        out.append(
            f"  {v.id:<{width}} {v.anchor} {v.offset_days:+d} d  (-{v.window.before_days}/+{v.window.after_days} d)  "
            f"{', '.join(v.forms)}"
        )
    out.extend(_procedure_lines(p, lang))
    out.append("\nRoles:")
    width = max(13, *(len(r.id) for r in p.roles))
    for r in p.roles:
        out.append(f"  {r.id:<{width}} {'blinded' if r.blinded else 'UNBLINDED':<9} {r.name.get(lang)}")
    out.append("\nSAE reporting:")
    for rec in p.safety.sae_recipients:
        extra = f" or end of working day {rec.or_end_of_working_day}" if rec.or_end_of_working_day else ""
        out.append(f"  {rec.name.get(lang)}: {rec.hours} h{extra}")
    out.append("\nDSMB thresholds:")
    for t in p.safety.dsmb_thresholds:
        out.append(f"  {t.id}: {t.description.get(lang)}")
    out.extend(_plan_lines(p.analysis, lang, [f.id for f in p.randomisation.strata or []]))
    if p.assumptions:
        out.append("\nAssumptions (not stated in the protocol):")
        for a in p.assumptions:
            out.append(f"  - {a.get(lang)}")
    print("\n".join(out))
    return 0


def _ratio(p) -> str:
    return ":".join(str(a.ratio) for a in p.arms)


def _sample_size_lines(p) -> list[str]:
    """The sample size; with unequal ratios ``per_arm`` is one ratio unit, so each arm's size is
    printed (the arms' sum is the total)."""
    ss = p.sample_size
    stats = f"delta {ss.delta}, SD {ss.sd}, alpha {ss.alpha}, power {ss.power}, dropout {ss.dropout:.0%}"
    if len({a.ratio for a in p.arms}) == 1:
        return [f"Sample size: {ss.per_arm} per arm, {ss.total} in total ({stats})"]
    arms = ", ".join(f"{a.id} {ss.per_arm * a.ratio}" for a in p.arms)
    return [f"Sample size: {ss.per_arm} per ratio unit ({arms}; ratio {_ratio(p)}), {ss.total} in total ({stats})"]


def _arm_lines(p, lang: str) -> list[str]:
    """The arms in the terms of the product: a cell product's dose and injection recipe, or what
    each arm's kit holds."""
    if p.product.kind == "kit":
        out = [f"\nArms (ratio {_ratio(p)}; dose score; kit contents):"]
        for a in p.arms:
            control = "  (control)" if a.control else ""
            out.append(f"  {a.id:<8} {a.ratio}  {a.dose_score:>5g}  {a.kit.get(lang)}  {a.name.get(lang)}{control}")
        return out
    out = ["\nArms (ratio; cells/disc; cells + saline + HA mL):"]
    for a in p.arms:
        r = a.recipe
        out.append(
            f"  {a.id:<8} {a.ratio}  {a.cells_per_disc / 1e6:>5g}x10^6  "
            f"{r.cell_suspension_ml:g} + {r.saline_ml:g} + {r.ha_hydrogel_ml:g} = {r.total_ml:g} mL  {a.name.get(lang)}"
        )
    return out


def _allocation_lines(p, lang: str) -> list[str]:
    """What a protocol declares beyond one site and one unstratified list: the kit product, the
    sites, the strata or minimisation factors (nothing for a single-site cell trial with permuted
    blocks, whose summary is as it always was)."""
    out = []
    product = p.product
    if product.kind == "kit":
        c = product.compliance
        out.append(f"\nProduct (kits): {product.name.get(lang)}")
        out.append(f"  {product.dosage_form.get(lang)}; route {product.route}; {product.units_per_kit} units per kit, "
                   f"{product.kit_days} days per kit")
        out.append(f"  storage: {product.storage.get(lang)}")
        out.append(f"  compliance: {c.units_per_day:g} unit(s) a day, acceptable {c.min_percent:g}-{c.max_percent:g} %")
        out.append("  checks at dispensing:")
        for check in product.kit_checks:
            limit = ""
            if check.kind == "max":
                limit = f" (at most {check.max:g}{' ' + check.unit if check.unit else ''})"
            elif check.kind == "min":
                limit = f" (at least {check.min:g}{' ' + check.unit if check.unit else ''})"
            out.append(f"    {check.id:<24} {check.kind:<9} {check.label.get(lang)}{limit}")
    if p.sites:
        out.append("\nSites:")
        for site in p.sites:
            out.append(f"  {site.id:<6} {site.name.get(lang)}")
    rand = p.randomisation
    factors = rand.strata or rand.factors
    if factors:
        if rand.method == "stratified_blocks":
            strata = 1
            for f in factors:
                strata *= len(f.levels)
            per = rand.stratum_list_length or p.sample_size.total
            sizes = ", ".join(map(str, rand.block_sizes))
            out.append(f"\nRandomisation: stratified permuted blocks (block sizes {sizes}), "
                       f"{strata} strata of {per} random numbers each; case numbers {rand.case_numbers}; "
                       f"drug codes {p.drug_code_prefix}XXXXXX")
        else:
            out.append(f"\nRandomisation: minimisation (p {rand.p:g}, {rand.measure}); "
                       f"case numbers {rand.case_numbers}; drug codes {p.drug_code_prefix}XXXXXX")
        for f in factors:
            cuts = f" cut at {', '.join(f'{c:g}' for c in f.cuts)}" if f.cuts else ""
            weight = f", weight {f.weight:g}" if hasattr(f, "weight") else ""
            out.append(f"  {f.id:<8} from {f.source}: {', '.join(f.levels)}{cuts}{weight}")
    return out


def _procedure_lines(p, lang: str) -> list[str]:
    """A kit trial's procedures (first dose, dispensing, returns): who records them, when, and the
    checks that apply. A cell trial's procedures are its visits, listed above."""
    if p.product.kind != "kit" or not p.procedures:
        return []
    out = ["\nProcedures (timing; recorded by; checks):"]
    for proc in p.procedures:
        t = proc.timing
        when = (f"{t.after} {t.offset_days:+d} d (-{t.window.before_days}/+{t.window.after_days} d)"
                if t is not None else "at its visits")
        checks = ", ".join(proc.checks) or "none"
        treatment = "; the treatment" if proc.treatment else ""
        roles = ", ".join(proc.recorded_by) or "anyone"
        out.append(f"  {proc.id:<15} {when}; {roles}; checks {checks}{treatment}  {proc.name.get(lang)}")
    return out


def _plan_lines(plan, lang: str, strata=()) -> list[str]:
    """The analysis plan in a few lines (nothing without one); ``strata`` the randomisation's
    stratification factor ids, in order (a covariate that is one is shown with its column)."""
    if plan is None:
        return []
    from annulus.interchange.adam import stratum_columns

    columns = stratum_columns(strata)
    out = [f"\nAnalysis plan (two-sided alpha {plan.alpha:g}):"]
    for pop in plan.populations:
        out.append(f"  population {pop.id:<7} {pop.role:<8} {pop.name.get(lang)}: {', '.join(pop.rule)}")
    for ep in plan.endpoints:
        m = ep.model
        role = "primary  " if ep is plan.primary else "secondary"
        covariates = ", ".join(f"stratum {c} ({columns[c]})" if c in columns else c
                               for c in m.covariates) or "none"
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
