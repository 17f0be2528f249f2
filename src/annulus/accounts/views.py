from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annulus.audit import services as audit
from annulus.errors import RuleViolation

from . import services
from .forms import LoginForm, TokenForm


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        with transaction.atomic():
            audit.record(actor=self.request.user, action="login", obj_type="user", obj_id=self.request.user.pk)
        return response


@require_POST
def logout_view(request):
    from django.contrib.auth import logout

    if request.user.is_authenticated:
        with transaction.atomic():
            audit.record(actor=request.user, action="logout", obj_type="user", obj_id=request.user.pk)
    logout(request)
    return redirect("login")


@login_required
def tokens(request):
    new_key = None
    if request.method == "POST":
        if "revoke" in request.POST:
            try:
                services.revoke_token(user=request.user, token_id=int(request.POST["revoke"]))
                messages.success(request, _("Token revoked."))
            except (RuleViolation, ValueError):
                messages.error(request, _("No such active token."))
            return redirect("tokens")
        form = TokenForm(request.POST)
        if form.is_valid():
            new_key = services.issue_token(user=request.user, name=form.cleaned_data["name"],
                                           days=form.cleaned_data.get("days"))
            form = TokenForm()
    else:
        form = TokenForm()
    rows = request.user.api_tokens.order_by("-created")
    return render(request, "accounts/tokens.html", {"form": form, "tokens": rows, "new_key": new_key,
                                                    "now": timezone.now()})


def users(request):
    from django.contrib.auth import get_user_model
    from django.core.exceptions import PermissionDenied
    from django.utils.translation import get_language

    from annulus.participants.forms import add_violation
    from annulus.trial.selectors import active_protocol

    from .forms import UserCreateForm
    from .permissions import has

    if not has(request.user, "users.manage"):
        raise PermissionDenied
    protocol = active_protocol()
    roles = [(r.id, r.name.get(get_language())) for r in protocol.roles]
    # several sites: an account may be scoped to some of them
    sites = [(s.id, f"{s.id} · {s.name.get(get_language())}") for s in protocol.site_list] if len(protocol.site_list) > 1 else []
    form = (UserCreateForm(request.POST or None, roles=roles, sites=sites) if "create" in request.POST or request.method == "GET"
            else UserCreateForm(roles=roles, sites=sites))
    if request.method == "POST" and "set_sites" in request.POST and sites:
        from .forms import UserSitesForm

        sites_form = UserSitesForm(request.POST, sites=sites)
        try:
            if not sites_form.is_valid():
                field, errors = next(iter(sites_form.errors.items()))
                raise RuleViolation(field, " ".join(errors))
            services.set_sites(actor=request.user, user_id=int(request.POST["set_sites"]),
                               sites=sites_form.cleaned_data["sites"], reason=sites_form.cleaned_data["reason"])
            messages.success(request, _("Account updated."))
        except (RuleViolation, ValueError) as exc:
            messages.error(request, f"{getattr(exc, 'field', '')}: {getattr(exc, 'message', _('Invalid request.'))}")
        return redirect("users")
    if request.method == "POST" and "toggle" in request.POST:
        try:
            services.set_active(actor=request.user, user_id=int(request.POST["toggle"]),
                                active=request.POST.get("active") == "1", reason=request.POST.get("reason", ""))
            messages.success(request, _("Account updated."))
        except (RuleViolation, ValueError) as exc:
            messages.error(request, getattr(exc, "message", _("Invalid request.")))
        return redirect("users")
    if request.method == "POST" and "unlock" in request.POST:
        try:
            services.unlock(actor=request.user, username=request.POST["unlock"], reason=request.POST.get("reason", ""))
            messages.success(request, _("Account %(u)s unlocked.") % {"u": request.POST["unlock"]})
        except RuleViolation as exc:
            messages.error(request, f"{exc.field}: {exc.message}")
        return redirect("users")
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.create_user(actor=request.user, username=d["username"], password=d["password"], role=d["role"],
                                 known_roles={r for r, _ in roles}, email=d["email"], full_name=d["full_name"],
                                 is_pi=d["is_pi"], phone=d["phone"], cosigner_username=d["cosigner_username"],
                                 cosigner_password=d["cosigner_password"], sites=d.get("sites", []))
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("User %(u)s created.") % {"u": d["username"]})
            return redirect("users")
    rows = list(get_user_model().objects.select_related("membership").order_by("username"))
    locks = services.locks_by_user(u.username for u in rows)
    for u in rows:
        u.locks = locks.get(u.username, [])
    return render(request, "accounts/users.html", {"form": form, "rows": rows, "role_names": dict(roles), "sites": sites})


def user_password_reset(request, pk: int):
    """The administrator sets a temporary password for another account (``services.reset_password``):
    the password twice and a reason. Their own password they change on the password page."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import PermissionDenied
    from django.shortcuts import get_object_or_404

    from annulus.participants.forms import add_violation

    from .forms import AdminPasswordResetForm
    from .models import ApiToken
    from .permissions import has

    if not has(request.user, "users.manage"):
        raise PermissionDenied
    target = get_object_or_404(get_user_model().objects.select_related("membership"), pk=pk)
    own = target.pk == request.user.pk
    form = None if own else AdminPasswordResetForm(target, request.POST or None, actor=request.user)
    if request.method == "POST" and form is not None and form.is_valid():
        try:
            form.save()
        except RuleViolation as exc:
            add_violation(form, exc)
        else:
            messages.success(request, _("The password of %(u)s was reset: give it to them in person or by telephone. "
                                        "They must choose their own at their next login.") % {"u": target.username})
            return redirect("users")
    from django.utils.translation import get_language

    from annulus.trial.selectors import active_protocol

    role = getattr(getattr(target, "membership", None), "role", "")
    role_name = next((r.name.get(get_language()) for r in active_protocol().roles if r.id == role), role)
    return render(request, "accounts/user_password.html", {
        "form": form, "target": target, "own": own, "role_name": role_name,
        "tokens": ApiToken.objects.filter(user=target, revoked__isnull=True, expires__gt=timezone.now()).count(),
        "locks": services.locks_by_user([target.username]).get(target.username, []),
    })
