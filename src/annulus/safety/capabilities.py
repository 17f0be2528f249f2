"""Safety capabilities. The closed (by-arm) DSMB material is limited to the unblinded reviewers."""

CAPABILITIES = {
    # adverse-event records, listings and SAE clocks (no allocation data in any of them)
    "safety.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb"},
    "safety.edit": {"investigator", "coordinator"},
    "safety.report": {"investigator", "coordinator"},
    # the DSMB page: schedule, open (pooled) reports, recommendations
    "dsmb.open": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb", "statistician", "designer"},
    # data by arm and the threshold alerts (a per-arm alert names an arm)
    # (the DSMB only: a key holder reading them could join its key to the arms)
    "dsmb.closed": {"dsmb"},
    "dsmb.recommend": {"dsmb"},
    # an on-demand report (the six-monthly ones are produced by the schedule): not the monitor,
    # auditor or ethics reviewer, who read the reports and change nothing
    "dsmb.generate": {"investigator", "coordinator", "dsmb", "statistician", "designer"},
}
