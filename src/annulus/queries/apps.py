from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "annulus.queries"
    label = "queries"
    verbose_name = "Queries"

    def ready(self):
        from . import receivers

        receivers.connect()
