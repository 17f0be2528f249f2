"""What each role may do with a participant's journey beyond the shared table in
``annulus.accounts.permissions``."""

CAPABILITIES = {
    # the eligibility decision is signed by an investigator (password re-entered); a coordinator
    # prepares it (consent, screening evidence) and may enrol once it is signed
    "participant.decide": {"investigator"},
}
CAPABILITIES["record.lock"] = {"data_manager"}  # form, visit and casebook locks and unlocks
