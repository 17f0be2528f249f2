from django.apps import AppConfig


class TrialConfig(AppConfig):
    name = "annulus.trial"
    label = "trial"
    verbose_name = "Trial"
