from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "annulus.reports"
    label = "reports"
    verbose_name = "Trial report"
