from django.apps import AppConfig


class MigrationsAuditConfig(AppConfig):
    name = "migrations_audit"
    verbose_name = "Migration Audit"
    default_auto_field = "django.db.models.BigAutoField"
