from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    name = "annulus.participants"
    label = "participants"
    verbose_name = "Participants"
