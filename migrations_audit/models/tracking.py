"""Team migration tracking: a migration to a target version, each client's status, and its history."""

from django.conf import settings
from django.db import models

from .core import Client, Upstream


class Status(models.TextChoices):
    """Where a client stands in a migration. Derived from traffic; a user may override it."""

    NOT_STARTED = "not_started", "Not started"
    AFFECTED = "affected", "Affected"
    IN_PROGRESS = "in_progress", "In progress"
    MIGRATED = "migrated", "Migrated"
    AT_RISK = "at_risk", "At risk"


class Migration(models.Model):
    """A move of an upstream's clients from some versions to a target version by a deadline."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="migrations")
    name = models.CharField(max_length=200)
    target_version = models.CharField(max_length=50)
    target_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="With a target model, a client is migrated when its traffic shows the target version "
        "and this model (the `model` its requests name), e.g. claude-sonnet-5.",
    )
    from_versions = models.JSONField(default=list, help_text="The versions clients migrate away from.")
    deadline = models.DateField()
    quiet_period_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days of target-only traffic after which a client counts as migrated."
    )
    at_risk_window_days = models.PositiveSmallIntegerField(
        default=14, help_text="A client not migrated this many days before the deadline is at risk."
    )
    all_clients = models.BooleanField(default=True, help_text="Every client of the upstream is in scope.")
    clients = models.ManyToManyField(Client, blank=True, related_name="migrations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # Set when a refresh is queued; the page says one is on its way until refreshed_at passes it.
    refresh_queued_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="Closed migrations are not refreshed.")

    class Meta:
        ordering = ["deadline", "name"]

    def __str__(self):
        return f"{self.name} ({self.upstream.slug} -> {self.target_label})"

    @property
    def target_label(self) -> str:
        """The target as a variant is spelled: `VERSION[@MODEL]`."""
        return f"{self.target_version}@{self.target_model}" if self.target_model else self.target_version

    @property
    def is_active(self) -> bool:
        return self.closed_at is None

    @property
    def refresh_pending(self) -> bool:
        """A refresh was queued and has not run since."""
        queued = self.refresh_queued_at
        return queued is not None and (self.refreshed_at is None or self.refreshed_at < queued)


class MigrationClientState(models.Model):
    """One client in one migration: the status derived from its traffic, with the evidence for it."""

    migration = models.ForeignKey(Migration, on_delete=models.CASCADE, related_name="states")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="migration_states")
    derived_status = models.CharField(max_length=12, choices=Status.choices, default=Status.NOT_STARTED)
    # Why the derived status is what it is, in words (also the cause of the last StatusChange).
    reason = models.CharField(max_length=500, blank=True)
    override_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    override_reason = models.CharField(max_length=500, blank=True)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    override_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Versions seen per day, counts, the impact list and the exchange ids that show each fact.
    evidence = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["migration", "client"]
        constraints = [
            models.UniqueConstraint(fields=["migration", "client"], name="migration_client_unique")
        ]

    def __str__(self):
        return f"{self.client} in {self.migration.name}: {self.status}"

    @property
    def status(self) -> str:
        """What the board shows: the override if a user set one, else the derived status."""
        return self.override_status or self.derived_status

    @property
    def is_overridden(self) -> bool:
        return bool(self.override_status)

    def get_status_display(self) -> str:
        return Status(self.status).label


class StatusChange(models.Model):
    """Every change of a client's status in a migration, with its time and cause: the audit trail."""

    migration = models.ForeignKey(Migration, on_delete=models.CASCADE, related_name="status_changes")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=Status.choices)
    cause = models.CharField(max_length=500)
    is_override = models.BooleanField(default=False)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["migration", "client", "-at"], name="statuschange_client_time")]

    def __str__(self):
        return f"{self.client}: {self.from_status or '-'} -> {self.to_status}"
