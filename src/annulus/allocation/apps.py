from django.apps import AppConfig


class AllocationConfig(AppConfig):
    name = "annulus.allocation"
    label = "allocation"
    verbose_name = "Allocation"
