import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext_lazy

# Django's MinimumLengthValidator (settings.AUTH_PASSWORD_VALIDATORS) words its message this way
# since Django 5.2, and Django's own Chinese catalogue has only the older wording: the message is
# marked here so that the project's catalogue keeps its translation (which Django then finds).
DJANGO_TOO_SHORT = ngettext_lazy("This password is too short. It must contain at least %d character.",
                                 "This password is too short. It must contain at least %d characters.", 12)


class CharacterClassValidator:
    """A password needs a lower-case letter, an upper-case letter, a digit and a symbol."""

    def validate(self, password, user=None):
        missing = []
        if not re.search(r"[a-z]", password):
            missing.append(_("a lower-case letter"))
        if not re.search(r"[A-Z]", password):
            missing.append(_("an upper-case letter"))
        if not re.search(r"[0-9]", password):
            missing.append(_("a digit"))
        if not re.search(r"[^A-Za-z0-9]", password):
            missing.append(_("a symbol"))
        if missing:
            raise ValidationError(_("The password needs %(what)s.") % {"what": ", ".join(missing)}, code="password_classes")

    def get_help_text(self):
        return _("Your password must contain a lower-case and an upper-case letter, a digit and a symbol.")


class CommonWordValidator:
    """Refuses a common password dressed up with digits and symbols ("Password123!", "Welcome2026!!"):
    length and character classes alone let these through, while the letters are a top common password."""

    def __init__(self):
        from django.contrib.auth.password_validation import CommonPasswordValidator

        self.passwords = CommonPasswordValidator().passwords

    def validate(self, password, user=None):
        letters = re.sub(r"[^a-z]", "", password.lower())
        if letters in self.passwords:
            raise ValidationError(
                _("This password is a common word with digits or symbols added; choose one that is harder to guess."),
                code="password_too_common",
            )

    def get_help_text(self):
        return _("Your password cannot be a common password with digits or symbols added.")
