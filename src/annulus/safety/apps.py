from django.apps import AppConfig


class SafetyConfig(AppConfig):
    name = "annulus.safety"
    label = "safety"
    verbose_name = "Safety"
