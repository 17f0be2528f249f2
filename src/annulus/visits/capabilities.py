"""What each role may do with visits, eCRFs and reminders (merged into accounts.permissions)."""

CAPABILITIES = {
    "visits.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "dsmb", "ethics"},
    "visits.edit": {"investigator", "coordinator"},
    "visits.remind": {"investigator", "coordinator"},
}
