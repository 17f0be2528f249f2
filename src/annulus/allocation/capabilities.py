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
    # level-1 key holder: generates the list, holds random number -> group label
    "allocation.generate": {"designer"},
    "allocation.level1": {"designer"},
    # level-2 key holder: recipes, release, dispensing, sachet labels, emergency letters
    "allocation.recipe": {"pharmacist"},
    "allocation.release": {"pharmacist"},
    "allocation.dispense": {"pharmacist"},
    "allocation.letters": {"pharmacist"},
    "allocation.level2": {"pharmacist"},
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
    "unblinding.level1_release": {"designer"},
    "unblinding.signoff": {"statistician"},
    "unblinding.level2_release": {"pharmacist"},
}
