from django.apps import AppConfig


class SelfEntryConfig(AppConfig):
    name = "annulus.selfentry"
    label = "selfentry"
    verbose_name = "Participant self-entry"
