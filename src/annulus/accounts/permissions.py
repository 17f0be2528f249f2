"""What each role may do: the single table every view, API route and export consults.

Blinding is not decided here: it is enforced by the selectors, keyed on ``is_blinded(user)``.
"""

from __future__ import annotations

from annulus.errors import NotPermitted

# capability -> roles that hold it
CAPABILITIES: dict[str, set[str]] = {
    "participant.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb"},
    "participant.edit": {"investigator", "coordinator"},
    "participant.enrol": {"investigator", "coordinator"},
    "participant.withdraw": {"investigator", "coordinator"},
    # the coordinator enters and corrects the data, so sees the history of what was entered
    "audit.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "admin"},
    "protocol.view": {"investigator", "coordinator", "pharmacist", "designer", "statistician", "monitor", "data_manager", "auditor", "dsmb", "ethics", "admin"},
    "dashboard.view": {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb", "statistician",
                       "admin"},
    "users.manage": {"admin"},
    "protocol.manage": {"admin"},  # load a protocol amendment (a new version)
}
# Other apps add capabilities in their own ``capabilities.py`` (``CAPABILITIES = {cap: {roles}}``,
# and ``KEY_HOLDER_CAPABILITIES = {cap: "level1" | "level2" | "level2:cell"}`` for what belongs to
# the protocol's key holders); they are merged in here once, when first needed.
KEY_HOLDER_CAPABILITIES: dict[str, str] = {}
_merged = False


def _capabilities() -> dict[str, set[str]]:
    global _merged
    if not _merged:
        import importlib

        from django.apps import apps

        for config in apps.get_app_configs():
            if config.name.startswith("annulus.") and config.name != "annulus.accounts":
                try:
                    module = importlib.import_module(f"{config.name}.capabilities")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{config.name}.capabilities":
                        raise
                    continue
                for cap, roles in module.CAPABILITIES.items():
                    CAPABILITIES.setdefault(cap, set()).update(roles)
                KEY_HOLDER_CAPABILITIES.update(getattr(module, "KEY_HOLDER_CAPABILITIES", {}))
        _merged = True
    return CAPABILITIES


def role_of(user) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    try:
        return membership.role if membership else None
    except Exception:  # noqa: BLE001 - a user without membership row has no role
        return None


def roles_with(capability: str) -> set[str]:
    roles = set(_capabilities().get(capability, set()))
    holder = KEY_HOLDER_CAPABILITIES.get(capability)
    if holder is not None:
        from annulus.trial.selectors import key_holders

        level1, level2, _cell = key_holders()
        role = level1 if holder.startswith("level1") else level2
        if _holds(role, holder):
            roles.add(role)
    return roles


# What the protocol grants the roles that record a procedure kept as an eCRF form (its
# ``recorded_by``): to find and read the participant and the visit whose record they enter.
# Which record forms they may save is the visits app's rule (``procedures.may_save``).
RECORDING_GRANTS = ("participant.view", "visits.view")


def has(user, capability: str) -> bool:
    role = role_of(user)
    if role in _capabilities().get(capability, set()):
        return True
    if role is None:
        return False
    holder = KEY_HOLDER_CAPABILITIES.get(capability)
    if holder is not None:
        return _holds(role, holder)
    return capability in RECORDING_GRANTS and role in recording_roles()


def _holds(role: str, holder: str) -> bool:
    """Whether ``role`` is the key holder ``holder`` names ("level1", "level2", "level2:cell")."""
    from annulus.trial.selectors import key_holders

    level1, level2, cell = key_holders()
    level, _, product = holder.partition(":")
    return role == (level1 if level == "level1" else level2) and (product != "cell" or cell)


def recording_roles() -> frozenset[str]:
    from annulus.trial.selectors import recording_roles as protocol_recording_roles

    return protocol_recording_roles()


def need(request, capability: str) -> None:
    """For views: answer 403 unless the user's role holds the capability."""
    from django.core.exceptions import PermissionDenied

    if not has(request.user, capability):
        raise PermissionDenied


def require(user, capability: str) -> None:
    if not has(user, capability):
        raise NotPermitted(capability)


def unblinded_roles() -> frozenset[str]:
    """The roles the protocol in force declares ``blinded: false`` (the trial app's selector,
    cached per protocol version). No role name is written here: an amendment that changes a
    role's blinding changes this answer."""
    from annulus.trial.selectors import unblinded_roles as protocol_unblinded_roles

    return protocol_unblinded_roles()


def is_blinded(user) -> bool:
    """Everyone is blinded except the roles the protocol in force declares unblinded. What an
    unblinded role may see is still decided by ``annulus.allocation.selectors`` (the blind)."""
    role = role_of(user)
    return role is None or role not in unblinded_roles()
