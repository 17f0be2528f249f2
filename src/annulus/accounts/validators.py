import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


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
