from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, SetPasswordForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .backends import client_source, login_locked_until


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": _("This account is locked after repeated failed logins. "
                    "Try again after %(time)s or ask the administrator."),
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        until = login_locked_until(username, client_source(self.request)) if username else None
        if until is not None:
            raise forms.ValidationError(self.error_messages["locked"], code="locked",
                                        params={"time": timezone.localtime(until).strftime("%Y-%m-%d %H:%M")})
        return super().clean()


class OwnPasswordChangeForm(PasswordChangeForm):
    """The user's own password change: the old password is a re-entered password like a
    signature (it counts towards the lockout); saving goes through ``services.change_password``."""

    def clean_old_password(self):
        from annulus.errors import RuleViolation

        from .services import sign

        try:
            sign(user=self.user, password=self.cleaned_data.get("old_password"), meaning="password change",
                 what="password change")
        except RuleViolation as exc:
            raise forms.ValidationError(exc.message, code="password_incorrect") from None
        return self.cleaned_data["old_password"]

    def save(self, commit=True):
        from .services import change_password

        return change_password(actor=self.user, user=self.user, password=self.cleaned_data["new_password1"],
                               check_password=False)  # the form has validated it


class AdminPasswordResetForm(SetPasswordForm):
    """The administrator sets a temporary password for ``user`` (Users page): the password twice
    and a reason. Every error is found at once and named by its field; the password rules are the
    validators', judged against the user whose password it becomes. Saving goes through
    ``services.reset_password`` (tokens revoked, locks cleared, a change required at the next
    login, audited without the password)."""

    reason = forms.CharField(label=_("Reason"), max_length=500,
                             widget=forms.TextInput(attrs={"autocomplete": "off"}),
                             help_text=_("Kept in the audit trail with who reset the password and when; "
                                         "the password itself is never recorded."))

    def __init__(self, user, *args, actor=None, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.actor = actor
        self.fields["new_password1"].label = _("Temporary password")
        self.fields["new_password2"].label = _("Temporary password (again)")
        self.fields["new_password2"].help_text = _("The user must replace it with their own password at their next "
                                                   "login.")

    def clean(self):
        self.validate_passwords("new_password1", "new_password2")
        self.validate_password_for_user(self.user, "new_password1")  # the error on the password, not the copy
        return forms.Form.clean(self)

    def save(self, commit=True):
        from .services import reset_password

        return reset_password(actor=self.actor, user=self.user, password=self.cleaned_data["new_password1"],
                              reason=self.cleaned_data["reason"], check_password=False)  # validated above


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Token name"), max_length=80)
    days = forms.IntegerField(label=_("Valid for (days)"), min_value=1, max_value=3650, required=False,
                              help_text=_("Refused after this many days; %(days)s unless given."))

    def __init__(self, *args, **kwargs):
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.fields["days"].help_text = self.fields["days"].help_text % {"days": settings.ANNULUS_TOKEN_DAYS}


class UserCreateForm(forms.Form):
    username = forms.RegexField(label=_("Username"), max_length=150, regex=r"^[A-Za-z0-9_.-]+$",
                                error_messages={"invalid": _("letters, digits and . _ - only")})
    full_name = forms.CharField(label=_("Full name"), max_length=150, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=40, required=False)
    role = forms.ChoiceField(label=_("Role"))
    is_pi = forms.BooleanField(label=_("Principal investigator"), required=False)
    password = forms.CharField(label=_("Initial password"), widget=forms.PasswordInput)
    cosigner_username = forms.CharField(
        label=_("Co-signing principal investigator (user name)"), max_length=150, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text=_("Needed for roles that can learn an allocation (pharmacist, designer, DSMB, investigator) "
                    "and for a principal investigator."))
    # typed by the PI at the administrator's screen: the browser must not offer to keep it
    cosigner_password = forms.CharField(label=_("Co-signing principal investigator's password"), required=False,
                                        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, roles=(), sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [("", "—")] + [r for r in roles if r[0] != ""]
        if sites:  # a trial with several sites: the account may be scoped to some of them
            self.fields["sites"] = SitesField(sites)
            self.order_fields([n for n in self.fields if n not in ("password", "cosigner_username", "cosigner_password")]
                              + ["password", "cosigner_username", "cosigner_password"])


def SitesField(sites, **kwargs):
    """The sites whose participants a user sees; none ticked: every site."""
    return forms.MultipleChoiceField(
        label=_("Sites"), required=False, choices=list(sites), widget=forms.CheckboxSelectMultiple,
        help_text=_("The user sees only these sites' participants; none ticked: every site."), **kwargs)


class UserSitesForm(forms.Form):
    """Change which sites' participants an existing user sees (Users page)."""

    reason = forms.CharField(label=_("Reason"), max_length=500)

    def __init__(self, *args, sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sites"] = SitesField(sites)
