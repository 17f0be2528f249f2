from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "annulus.exports"
    label = "exports"
    verbose_name = "Exports"
