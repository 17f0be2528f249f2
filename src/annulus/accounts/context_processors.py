from django.utils.translation import get_language

from .permissions import _capabilities, role_of


def role(request):
    user = getattr(request, "user", None)
    r = role_of(user)
    if not r:
        return {"user_role": r, "user_role_name": "", "user_blinded": True, "can": {}}
    # the protocol in force is parsed once per version; its roles give the blind and the role's name
    from annulus.trial.selectors import active_protocol

    declared = {x.id: x for x in active_protocol().roles}
    own = declared.get(r)
    return {
        "user_role": r,
        "user_role_name": own.name.get(get_language()) if own else r,
        "user_blinded": own is None or own.blinded,
        "can": {cap: r in roles for cap, roles in _capabilities().items()},
    }
