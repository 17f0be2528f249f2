from django.apps import AppConfig


class CasebooksConfig(AppConfig):
    name = "annulus.casebooks"
    label = "casebooks"
    verbose_name = "Casebooks"
