from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
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
            new_key = services.issue_token(user=request.user, name=form.cleaned_data["name"])
            form = TokenForm()
    else:
        form = TokenForm()
    rows = request.user.api_tokens.order_by("-created")
    return render(request, "accounts/tokens.html", {"form": form, "tokens": rows, "new_key": new_key})
