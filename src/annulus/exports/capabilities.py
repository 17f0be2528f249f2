"""Who may export the trial's data (X-7.6). Every export is blinded and pseudonymised for the
role that makes it (``annulus.exports.source``); the identifiable export (initials, name, phone)
only for the roles that see identities. The protocol designer, the DSMB (its reports are its own),
the ethics committee and the administrator do not export."""

CAPABILITIES = {
    "export.run": {"investigator", "coordinator", "data_manager", "statistician", "monitor", "auditor",
                   "pharmacist"},
    "export.identifiable": {"investigator", "coordinator"},
    # the data manager sees every export job on the Exports page (others see their own)
    "export.all_jobs": {"data_manager"},
}
