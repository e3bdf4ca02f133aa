import logging

from django.apps import AppConfig

# Loggers of the HTTP servers that write each request line, query string included.
REQUEST_LOGGERS = ("uvicorn.access", "django.server")


class MigrationsAuditConfig(AppConfig):
    name = "migrations_audit"
    verbose_name = "Migration Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from migrations_audit import upstream_guard

        # A malformed allow-list stops the start, not a save or a delivery.
        upstream_guard.allow_list(upstream_guard.SETTING)
        upstream_guard.allow_list(upstream_guard.WEBHOOK_SETTING)

        from migrations_audit.secrets import RequestLineMasking

        # A key in a query string (?key=sk-ant-...) is masked in the access log as in storage.
        for name in REQUEST_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(existing, RequestLineMasking) for existing in logger.filters):
                logger.addFilter(RequestLineMasking())
