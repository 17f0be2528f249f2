from .permissions import _capabilities, is_blinded, role_of


def role(request):
    user = getattr(request, "user", None)
    r = role_of(user)
    return {
        "user_role": r,
        "user_blinded": is_blinded(user) if r else True,
        "can": {cap: r in roles for cap, roles in _capabilities().items()} if r else {},
    }
