from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "annulus.visits"
    label = "visits"
    verbose_name = "Visits"
