"""What clients sent and what they got back."""

from django.db import models

from .core import Client, Upstream


class Exchange(models.Model):
    """One recorded request and its response. Secrets are masked before a row is ever written."""

    class Source(models.TextChoices):
        PROXY = "proxy", "Proxy"
        INGEST = "ingest", "Ingest API"
        HAR = "har", "HAR import"
        DEMO = "demo", "Demo data"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="exchanges")
    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.SET_NULL, related_name="exchanges"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PROXY)
    started_at = models.DateTimeField(db_index=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    query = models.CharField(max_length=2000, blank=True)
    # "METHOD /path" without the query: what pages group by and replay allows.
    endpoint = models.CharField(max_length=520)
    api_version = models.CharField(max_length=50, blank=True, help_text="The version header the client sent.")
    user_agent = models.CharField(max_length=300, blank=True)
    sdk = models.CharField(max_length=100, blank=True, help_text="SDK and version, from the user agent.")
    request_headers = models.JSONField(default=dict)
    request_body = models.BinaryField(default=b"")
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null when no response came.")
    response_headers = models.JSONField(default=dict)
    # For a stream: the raw SSE bytes exactly as received; response_events holds them parsed.
    response_body = models.BinaryField(default=b"")
    streamed = models.BooleanField(default=False)
    response_events = models.JSONField(default=list, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    first_byte_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Transport failure, if any.")
    # The response went past MIGRATION_AUDIT_RECORD_MAX_BYTES: the client got it whole, only its
    # start is stored, and the diff does not compare it.
    truncated = models.BooleanField(default=False)
    # sha256 of method, path, body and version: ingest and HAR import store each once.
    content_hash = models.CharField(max_length=64)
    # One per captured exchange, made by its entry point (the proxy: a uuid per request; ingest: the
    # hash of the line; HAR: of the entry): a retried batch never stores an exchange twice. Null only
    # for rows stored before it existed.
    capture_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["upstream", "capture_key"], name="exchange_capture_key_unique")
        ]
        indexes = [
            models.Index(fields=["upstream", "-started_at", "-id"], name="exchange_upstream_time"),
            models.Index(fields=["upstream", "content_hash"], name="exchange_upstream_hash"),
            models.Index(fields=["upstream", "endpoint", "-started_at"], name="exchange_endpoint_time"),
            models.Index(fields=["upstream", "api_version", "-started_at"], name="exchange_version_time"),
            models.Index(fields=["client", "-started_at"], name="exchange_client_time"),
            models.Index(fields=["upstream", "-duration_ms", "-id"], name="exchange_upstream_duration"),
        ]

    def __str__(self):
        return f"{self.method} {self.path} [{self.api_version or '-'}] {self.status or 'no response'}"


class HarImport(models.Model):
    """One HAR file being imported in the background, with progress for the page that polls it."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="har_imports")
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL)
    filename = models.CharField(max_length=255)
    stored_path = models.CharField(max_length=500)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_done = models.PositiveBigIntegerField(default=0)
    entries_seen = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Entries for other hosts or not API calls.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.filename} ({self.state})"

    @property
    def percent(self) -> int:
        return int(100 * self.bytes_done / self.bytes_total) if self.bytes_total else 0


class TrafficDay(models.Model):
    """Exchanges recorded per upstream, day, endpoint, version and client: kept up to date as
    traffic is stored, so the overview and the filters read a few hundred rows, not every exchange."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="traffic_days")
    day = models.DateField()
    endpoint = models.CharField(max_length=520)
    api_version = models.CharField(max_length=50, blank=True)
    # Null for traffic with no client; such rows may repeat a key (NULLs are distinct to a unique
    # constraint), which sums never mind.
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "day", "endpoint", "api_version", "client"],
                name="trafficday_unique",
            )
        ]
        indexes = [models.Index(fields=["upstream", "day"], name="trafficday_upstream_day")]

    def __str__(self):
        return f"{self.day} {self.endpoint} {self.api_version}: {self.count}"


class RecorderTotals(models.Model):
    """What one proxy recorder did for an upstream since its process started: exchanges written,
    dropped because its queue was full, and given up on because the database stayed away.

    The proxy rewrites its running totals here every few seconds while the database answers, so an
    exchange that was answered but never recorded shows on the dashboard, not only in the health
    endpoint of a process that may be gone by the time someone looks."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="recorder_totals")
    recorder = models.CharField(max_length=200, help_text="Host, process id and listener of the proxy.")
    recorded = models.PositiveBigIntegerField(default=0)
    dropped = models.PositiveBigIntegerField(default=0, help_text="Not kept: the recording queue was full.")
    failed = models.PositiveBigIntegerField(default=0, help_text="Given up: the database stayed unavailable.")
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upstream", "recorder"], name="recordertotals_unique")]

    def __str__(self):
        return f"{self.recorder}: {self.recorded} recorded, {self.dropped} dropped, {self.failed} failed"
