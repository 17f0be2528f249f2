from django.apps import AppConfig


class SafetyConfig(AppConfig):
    name = "annulus.safety"
    label = "safety"
    verbose_name = "Safety"

    def ready(self):
        # findings of the visit records that may be adverse events open adverse-event tasks here
        from annulus.visits.signals import adverse_event_prompt

        from .services import open_ae_task

        def _open(sender, **kwargs):
            open_ae_task(**kwargs)

        adverse_event_prompt.connect(_open, dispatch_uid="safety.open_ae_task", weak=False)
