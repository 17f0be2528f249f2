from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "annulus.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"
