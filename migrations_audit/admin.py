"""The admin, for every model. Secrets are never stored, and the few encrypted or hashed values
(replay credentials, token hashes) are never shown."""

from django.contrib import admin

from migrations_audit import models
from migrations_audit.diff import admin as diff_admin  # noqa: F401 - registers the diff stage's models
from migrations_audit.replay import admin as replay_admin  # noqa: F401 - registers replay variants
from migrations_audit.tracking import admin as tracking_admin  # noqa: F401 - registers the tracking models


@admin.register(models.Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role"]
    list_filter = ["role", "team"]


class ApiVersionInline(admin.TabularInline):
    model = models.ApiVersion
    extra = 0


@admin.register(models.Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "base_url", "baseline_version", "target_version", "recording_paused"]
    inlines = [ApiVersionInline]
    readonly_fields = ["has_replay_key"]
    exclude = ["replay_key_encrypted"]


@admin.register(models.Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["display_name", "upstream", "kind", "team", "last_seen_at"]
    list_filter = ["upstream", "kind", "team"]
    search_fields = ["identity", "label"]


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "team", "created_at", "last_used_at", "revoked_at"]
    exclude = ["token_hash"]
    readonly_fields = ["prefix"]


@admin.register(models.Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ["started_at", "upstream", "endpoint", "api_version", "status", "streamed", "client"]
    list_filter = ["upstream", "source", "streamed", "api_version"]
    list_select_related = ["upstream", "client"]
    raw_id_fields = ["client"]
    date_hierarchy = "started_at"


@admin.register(models.ReplayRun)
class ReplayRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "upstream", "status", "created_at", "finished_at"]
    list_filter = ["status", "upstream"]


@admin.register(models.ReplayResult)
class ReplayResultAdmin(admin.ModelAdmin):
    list_display = ["pk", "run", "exchange", "version", "attempt", "state", "status", "tries"]
    list_filter = ["state", "version"]
    raw_id_fields = ["run", "exchange"]


@admin.register(models.ReplayAttempt)
class ReplayAttemptAdmin(admin.ModelAdmin):
    list_display = ["result", "number", "status", "duration_ms", "error"]
    raw_id_fields = ["result"]


@admin.register(models.ChangelogRule)
class ChangelogRuleAdmin(admin.ModelAdmin):
    list_display = ["key", "upstream", "version_from", "version_to", "classification", "title"]
    list_filter = ["upstream", "version_to", "classification"]


@admin.register(models.ModelRule)
class ModelRuleAdmin(admin.ModelAdmin):
    list_display = ["key", "upstream", "model_pattern", "classification", "error_status", "title"]
    list_filter = ["upstream", "classification"]
    search_fields = ["key", "model_pattern", "title"]


@admin.register(models.Difference)
class DifferenceAdmin(admin.ModelAdmin):
    list_display = ["exchange", "version_from", "version_to", "kind", "path", "classification", "rule"]
    list_filter = ["classification", "kind"]
    raw_id_fields = ["exchange", "run"]


@admin.register(models.DifferenceSignature)
class DifferenceSignatureAdmin(admin.ModelAdmin):
    list_display = ["kind", "path", "classification", "rule", "count", "exchanges"]
    list_filter = ["classification"]
    raw_id_fields = ["example"]
    filter_horizontal = ["clients"]


class AcknowledgementEventInline(admin.TabularInline):
    model = models.AcknowledgementEvent
    extra = 0
    can_delete = False
    readonly_fields = ["action", "actor_name", "via", "reason", "at"]
    fields = readonly_fields


@admin.register(models.Acknowledgement)
class AcknowledgementAdmin(admin.ModelAdmin):
    """Read-only: acknowledgements are made and revoked on the team's pages or the API, which keep
    the audit trail (an edit here would bypass it)."""

    list_display = ["title", "upstream", "client", "state", "expires_on", "created_by", "created_at"]
    list_filter = ["state", "finding"]
    inlines = [AcknowledgementEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.RequestFinding)
class RequestFindingAdmin(admin.ModelAdmin):
    list_display = ["exchange", "version", "rule", "model_rule", "model", "field", "confirmed"]
    raw_id_fields = ["exchange", "client"]


@admin.register(models.WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "seen_at"]
