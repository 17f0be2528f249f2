from django.apps import AppConfig


class AllocationConfig(AppConfig):
    name = "annulus.allocation"
    label = "allocation"
    verbose_name = "Allocation"

    def ready(self):
        # the visits app checks a dispensing record's kit number against the kits allocated here
        from annulus.visits.procedures import add_kit_source

        from .selectors import kits_allocated_for_system

        add_kit_source(kits_allocated_for_system)
