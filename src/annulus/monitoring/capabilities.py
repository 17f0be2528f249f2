"""Monitoring capabilities: the status grid and casebook summary (read), source-data verification
(the monitor alone) and the auditor's review findings."""

CAPABILITIES = {
    # the status grid, casebook summaries and SDV progress (no allocation data in any of them)
    "monitoring.view": {"monitor", "data_manager", "auditor", "investigator", "coordinator", "ethics"},
    # the grid as the top panel of the home page (the monitor's and the data manager's work)
    "monitoring.home": {"monitor", "data_manager"},
    # marking data verified against source documents (P-7.1): the monitor only
    "sdv.verify": {"monitor"},
    # review findings: read by those who act on them, recorded and resolved by the auditor
    "review.view": {"auditor", "monitor", "data_manager", "investigator"},
    "review.record": {"auditor"},
}
