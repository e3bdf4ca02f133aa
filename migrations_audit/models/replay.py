"""Replays of recorded exchanges against each API version."""

from django.conf import settings
from django.db import models

from .capture import Exchange
from .core import Upstream


class ReplayRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    versions = models.JSONField(default=list)
    # The filter that chose the exchanges (client, endpoint, time range, streamed, sample size).
    selection = models.JSONField(default=dict, blank=True)
    noise_sample_rate = models.FloatField(default=0.1)
    token_budget = models.PositiveIntegerField(null=True, blank=True)
    tokens_spent = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Results are created in chunks of exchanges, the first in the request that starts the run and
    # the rest by a task: how many exchanges are prepared of how many (None until counted), where
    # the next chunk starts, and when the last was done (None: the run cannot complete yet).
    exchanges_prepared = models.PositiveIntegerField(default=0)
    exchanges_total = models.PositiveIntegerField(null=True, blank=True)
    prepare_cursor = models.JSONField(default=dict, blank=True)
    prepared_at = models.DateTimeField(null=True, blank=True)
    # What each replay target of `versions` is: {label: variant} (see replay/variants.py). A label
    # is a version, `VERSION@MODEL`, or a saved variant's name; it is what results and differences
    # carry as their "version".
    variants = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["upstream", "-created_at"], name="run_upstream_time")]

    def __str__(self):
        return f"Run #{self.pk} of {self.upstream.slug}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.RUNNING)


class ReplayResult(models.Model):
    """The response one exchange got under one version. Attempt 1 is the replay; attempt 2 the
    repeat of the noise sample. Unique per (run, exchange, version, attempt), so work is idempotent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # Indexed by the unique constraint and result_run_state, which both start with it: a third index
    # would only be one more to update with every change of state.
    run = models.ForeignKey(ReplayRun, on_delete=models.CASCADE, related_name="results", db_index=False)
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="replay_results")
    version = models.CharField(max_length=50)
    attempt = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    leased_until = models.DateTimeField(null=True, blank=True)
    # When a task for this result was last queued, and the earliest time a retry may run: the
    # reconcile task queues again what a lost message or a killed worker left behind.
    queued_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    # Set once, by whichever worker finishes an exchange's last result: it alone runs the diff.
    diffed_at = models.DateTimeField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.BinaryField(default=b"")
    streamed = models.BooleanField(default=False)
    response_events = models.JSONField(default=list, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Cost and latency of the answer: the model the request named (after the variant's rewrites),
    # the usage it reported, and when its first byte (or event) and its end came.
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_read_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_creation_tokens = models.PositiveIntegerField(null=True, blank=True)
    first_byte_ms = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "exchange", "version", "attempt"], name="result_unique"),
        ]
        indexes = [models.Index(fields=["run", "state"], name="result_run_state")]

    def __str__(self):
        return f"{self.exchange_id}@{self.version}#{self.attempt}: {self.state}"


class RateLimiterState(models.Model):
    """The database-backed limiter of replays to one upstream (used when the broker is not Redis)."""

    upstream = models.OneToOneField(Upstream, on_delete=models.CASCADE, related_name="+")
    # The earliest moment (epoch seconds) the next request may start: one request every 1/rps.
    next_slot = models.FloatField(default=0.0)

    def __str__(self):
        return f"limiter of {self.upstream_id}"


class ReplayAttempt(models.Model):
    """Each HTTP try behind a result, so the UI can show retries and their errors."""

    # Indexed by attempt_unique, which starts with it.
    result = models.ForeignKey(
        ReplayResult, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["result", "number"]
        constraints = [models.UniqueConstraint(fields=["result", "number"], name="attempt_unique")]

    def __str__(self):
        return f"try {self.number}: {self.status or self.error}"


class ReplayVariant(models.Model):
    """A named replay target of an upstream: a version header value plus request rewrites (a model
    map, headers set or dropped, the key header's style), e.g. "SDK 2 + Sonnet 5". Chosen by name
    wherever a version is (`VERSION[@MODEL]` spells an unnamed one)."""

    class KeyStyle(models.TextChoices):
        UPSTREAM = "", "As the upstream's settings say"
        X_API_KEY = "x-api-key", "x-api-key: KEY"
        BEARER = "bearer", "Authorization: Bearer KEY"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=50, help_text="Letters, digits, spaces, + - . _ (no comma or @).")
    version = models.CharField(max_length=50, help_text="The version header's value.")
    model_map = models.TextField(
        blank=True,
        help_text="One per line: `claude-sonnet-4-5 -> claude-sonnet-5`, or `* -> MODEL` for every model.",
    )
    set_headers = models.TextField(blank=True, help_text="One per line: `name: value` (never a key).")
    drop_headers = models.CharField(max_length=500, blank=True, help_text="Comma-separated header names.")
    key_style = models.CharField(max_length=10, choices=KeyStyle.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["upstream", "name"]
        constraints = [models.UniqueConstraint(fields=["upstream", "name"], name="variant_unique_name")]

    def __str__(self):
        return self.name
