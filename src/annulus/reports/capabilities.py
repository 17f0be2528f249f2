"""Who may build the trial report (X-8.5): the statistician and the investigator (the PI), and the
data manager for the data review. The report is made from an export, so a role must also be able to
export (``export.run``); what it shows follows the export's blind for that role: pooled before the
first-level unblinding, by group label after it, by treatment after the second level."""

CAPABILITIES = {
    "report.build": {"statistician", "investigator", "data_manager"},
    # the statistician sees every report built on the Report page (others see their own)
    "report.all": {"statistician"},
}
