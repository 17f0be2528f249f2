"""Who may read a participant's casebook and who may sign it (21 CFR 11.50/11.100)."""

CAPABILITIES = {
    # the casebook (page, printable PDF, API) holds no allocation: every role that reads the
    # participant's record reads it
    "casebook.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb"},
    # signing: an investigator's role, and among investigators only the principal investigator
    # (checked by the service): see annulus.casebooks.services.sign_casebook
    "casebook.sign": {"investigator"},
}
