from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from .backends import is_locked


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": _("This account is locked after repeated failed logins. Try again in 15 minutes or ask the administrator."),
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and is_locked(username):
            raise forms.ValidationError(self.error_messages["locked"], code="locked")
        return super().clean()


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Token name"), max_length=80)


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

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [("", "—")] + [r for r in roles if r[0] != ""]
