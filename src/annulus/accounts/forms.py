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
