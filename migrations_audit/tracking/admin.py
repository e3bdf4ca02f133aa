"""Admin for the tracking models. The history (StatusChange) is read-only: it is the audit trail.

Imported by migrations_audit/admin.py: `from .tracking import admin as tracking_admin  # noqa: F401`.
"""

from django.contrib import admin

from migrations_audit.models import Migration, MigrationClientState, StatusChange


@admin.register(Migration)
class MigrationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "upstream",
        "target_version",
        "deadline",
        "all_clients",
        "refreshed_at",
        "closed_at",
    ]
    list_filter = ["upstream"]
    filter_horizontal = ["clients"]
    readonly_fields = ["refreshed_at", "created_at"]


@admin.register(MigrationClientState)
class MigrationClientStateAdmin(admin.ModelAdmin):
    list_display = ["client", "migration", "derived_status", "override_status", "owner", "updated_at"]
    list_filter = ["derived_status", "override_status", "migration"]
    raw_id_fields = ["client", "owner", "override_by"]
    readonly_fields = ["derived_status", "reason", "evidence", "updated_at"]


@admin.register(StatusChange)
class StatusChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "migration", "client", "from_status", "to_status", "is_override", "by", "cause"]
    list_filter = ["is_override", "to_status", "migration"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
