"""What each role may do with allocation, the pharmacy and unblinding.

Capabilities only open pages and routes; what a page may reveal about arms is decided by
``annulus.allocation.selectors`` (the blind), never here.
"""

SITE = {"investigator", "coordinator"}
OVERSIGHT = {"monitor", "data_manager", "auditor", "ethics", "dsmb"}

CAPABILITIES = {
    # site staff open the next envelope; the drug code is all they get
    "allocation.randomise": SITE,
    "allocation.view": SITE | OVERSIGHT | {"statistician"},
    "allocation.transplant": {"investigator"},
    # a kit product's kit list, for labelling: the page also checks that the role holds the
    # level-2 key (``selectors.kit_list``)
    "allocation.kit_list": {"supply_manager"},
    # the DSMB only: the designer's level-1 key next to a closed report would give label -> treatment
    "allocation.closed_report": {"dsmb"},
    "unblinding.emergency": {"investigator"},
    "unblinding.emergency_list": SITE | OVERSIGHT | {"statistician"},
    "unblinding.view": SITE | OVERSIGHT | {"statistician", "designer", "pharmacist"},
    # principal investigator (checked in the service) and statistician sign the lock
    "unblinding.lock": {"investigator", "statistician"},
    "unblinding.signoff": {"statistician"},
}

# Capabilities of whoever the protocol names as a key holder (``randomisation.level1_key_holder``
# and ``level2_key_holder``), whatever that role is called; "level2:cell" only while the product is
# a cell product prepared per participant (its recipes, release, dispensing, sachet labels and
# emergency letters). Merged by ``annulus.accounts.permissions``.
KEY_HOLDER_CAPABILITIES = {
    # level-1 key holder: generates the list, holds random number -> group label
    "allocation.generate": "level1",
    "allocation.level1": "level1",
    "unblinding.level1_release": "level1",
    # level-2 key holder: group label -> arm
    "allocation.level2": "level2",
    "unblinding.level2_release": "level2",
    "allocation.recipe": "level2:cell",
    "allocation.release": "level2:cell",
    "allocation.dispense": "level2:cell",
    "allocation.letters": "level2:cell",
}
