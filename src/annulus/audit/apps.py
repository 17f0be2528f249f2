from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "annulus.audit"
    label = "audit"
    verbose_name = "Audit trail"
