"""Scheduled compatibility reports and their immutable snapshots."""

from django.conf import settings
from django.db import models

from .core import Team, Upstream
from .tracking import Migration


class ReportDefinition(models.Model):
    class ScheduleKind(models.TextChoices):
        INTERVAL = "interval", "Every N minutes"
        CRONTAB = "crontab", "Crontab expression"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="report_definitions")
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="report_definitions")
    migration = models.ForeignKey(
        Migration, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    fresh_replay = models.BooleanField(default=False, help_text="Replay a sample of recent traffic first.")
    replay_sample = models.PositiveIntegerField(default=50)
    schedule_kind = models.CharField(
        max_length=10, choices=ScheduleKind.choices, default=ScheduleKind.INTERVAL
    )
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    crontab = models.CharField(max_length=100, blank=True, help_text="e.g. 0 8 * * 1 (Mondays at 08:00 UTC)")
    recipients = models.TextField(blank=True, help_text="Email addresses, one per line or comma-separated.")
    # A webhook (Slack-compatible JSON, signed with HMAC-SHA256): its URL and signing secret are
    # secrets (a Slack URL is its own credential), stored encrypted; pages show the host only.
    webhook_url_encrypted = models.TextField(blank=True, editable=False)
    webhook_host = models.CharField(max_length=255, blank=True, editable=False)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # A fresh replay in progress: the snapshot is taken when it ends.
    pending_run = models.ForeignKey(
        "ReplayRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def recipient_list(self) -> list[str]:
        return [item.strip() for item in self.recipients.replace(",", "\n").splitlines() if item.strip()]


class ReportSnapshot(models.Model):
    """What a report found at one moment. Never changed once written."""

    class Status(models.TextChoices):
        OK = "ok", "Complete"
        DEGRADED = "degraded", "Degraded"

    definition = models.ForeignKey(ReportDefinition, on_delete=models.CASCADE, related_name="snapshots")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    status_reason = models.TextField(blank=True)
    payload = models.JSONField()
    breaking = models.PositiveIntegerField(default=0)
    unexplained = models.PositiveIntegerField(default=0)
    blocking = models.PositiveIntegerField(default=0, help_text="Breaking and not acknowledged.")
    emailed_to = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.definition} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise ValueError("A report snapshot is immutable once written.")
        super().save(*args, **kwargs)


class ReportDelivery(models.Model):
    """One attempt to deliver a snapshot (or a test message) by email or webhook: what the report's
    page shows as its delivery status."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed"

    definition = models.ForeignKey(ReportDefinition, on_delete=models.CASCADE, related_name="deliveries")
    # None for a test delivery.
    snapshot = models.ForeignKey(
        ReportSnapshot, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.channel} #{self.attempt} {self.status}"


class Acknowledgement(models.Model):
    """A team's decision that one finding may ship: it stops counting in the release gate while it is
    active (not revoked, and its expiry date not past). Keyed by the finding's signature hash, not by
    a row, so it holds across replays. A request the target version rejects is acknowledged only per
    client; a replay difference only for everyone."""

    class Finding(models.TextChoices):
        DIFFERENCE = "difference", "Difference found by replay"
        REQUEST = "request", "Request the target version rejects"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="acknowledgements")
    signature = models.CharField(max_length=64, db_index=True)
    finding = models.CharField(max_length=10, choices=Finding.choices)
    client = models.ForeignKey(
        "Client", null=True, blank=True, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    title = models.CharField(max_length=700, help_text="What was acknowledged, as shown when it was.")
    reason = models.TextField()
    expires_on = models.DateField(null=True, blank=True, help_text="Counts through this day, then expires.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "signature"],
                condition=models.Q(state="active", client__isnull=True),
                name="acknowledgement_active_global",
            ),
            models.UniqueConstraint(
                fields=["upstream", "signature", "client"],
                condition=models.Q(state="active", client__isnull=False),
                name="acknowledgement_active_client",
            ),
        ]

    def __str__(self):
        return f"{self.title} ({self.state})"


class AcknowledgementEvent(models.Model):
    """The audit trail of acknowledgements: who created, revoked or let expire one, when and why."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    acknowledgement = models.ForeignKey(Acknowledgement, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The actor's name when it happened (kept if the user is deleted), or "system" for an expiry.
    actor_name = models.CharField(max_length=150)
    via = models.CharField(max_length=20, help_text="page, api or schedule")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.action} by {self.actor_name} at {self.at:%Y-%m-%d %H:%M}"
