from django.apps import AppConfig


class MigrationsAuditConfig(AppConfig):
    name = "migrations_audit"
    verbose_name = "Migration Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from migrations_audit import upstream_guard

        # A malformed allow-list stops the start, not a save or a delivery.
        upstream_guard.allow_list(upstream_guard.SETTING)
        upstream_guard.allow_list(upstream_guard.WEBHOOK_SETTING)
