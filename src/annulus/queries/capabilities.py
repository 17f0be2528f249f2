"""Who may do what with queries (merged into accounts.permissions). The site answers; the raiser's
side (monitor, data manager) closes and re-opens; whoever raised a query may also close it."""

CAPABILITIES = {
    "queries.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor"},
    "queries.raise": {"investigator", "coordinator", "monitor", "data_manager"},
    "queries.answer": {"investigator", "coordinator"},
    "queries.close": {"monitor", "data_manager"},
}
