"""Protocol API: the protocol in force, with dose recipes only for roles that may see them."""

from __future__ import annotations

from ninja import Router

from annulus.accounts.permissions import has, require

from .selectors import active_protocol, active_version

PREFIX = "/protocol"
router = Router(tags=["protocol"])


@router.get("", summary="The protocol version in force")
def protocol(request):
    require(request.user, "protocol.view")
    p = active_protocol()
    data = p.model_dump(mode="json")
    if not has(request.user, "allocation.recipe"):
        # arm names stay (they are public in the registry); what tells doses apart per sachet does not
        for arm in data["arms"]:
            arm.pop("recipe", None)
    pv = active_version()
    return {"version": pv.version, "digest": pv.digest, "protocol": data}
