from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "annulus.participants"
    label = "participants"
    verbose_name = "Participants"

    def ready(self):
        from annulus.audit.services import add_guard

        from .selectors import refuse_unseen

        # a user scoped to sites writes nothing for a participant of another site: the one check
        # every write passes (pages and the API refuse such a write before it reaches a service)
        add_guard(refuse_unseen)
