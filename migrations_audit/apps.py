from django.apps import AppConfig


class MigrationsAuditConfig(AppConfig):
    name = "migrations_audit"
    verbose_name = "Migration Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from migrations_audit import upstream_guard

        upstream_guard.allow_list()  # a malformed MIGRATION_AUDIT_UPSTREAM_HOSTS stops the start, not a save
