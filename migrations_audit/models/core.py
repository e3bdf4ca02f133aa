"""Who owns what: teams, the upstream APIs they audit, their versions, and the clients seen."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from migrations_audit.upstream_guard import validate_base_url, validate_replay_key_env


class Team(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        MEMBER = "member", "Member"
        ADMIN = "admin", "Admin"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_edit(self) -> bool:
        return self.role in (self.Role.MEMBER, self.Role.ADMIN)


class Upstream(models.Model):
    """An API that versions by header, audited by one team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="upstreams")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True, help_text="Clients use /proxy/<slug>/ as base URL.")
    base_url = models.URLField(
        help_text="Where the proxy and replays send requests, e.g. https://api.anthropic.com "
        "(a host the operator allows in MIGRATION_AUDIT_UPSTREAM_HOSTS).",
        validators=[validate_base_url],
    )
    version_header = models.CharField(max_length=100, default="anthropic-version")
    baseline_version = models.CharField(max_length=50, blank=True)
    target_version = models.CharField(max_length=50, blank=True)
    target_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="The model the team moves to, e.g. claude-sonnet-5: the request check applies its "
        "model rules to every recorded request. Blank: the model each request names.",
    )
    # "METHOD /path" entries; only these are ever replayed, so a replay never repeats a side effect
    # nobody allowed.
    replayable_endpoints = models.JSONField(default=list, blank=True)
    # Response headers that differ on every call (dates, ids, rate-limit counters): never a difference.
    volatile_headers = models.JSONField(default=list, blank=True)
    rate_limit_rps = models.FloatField(
        default=50.0, help_text="Replay requests per second, all workers together."
    )
    rate_limit_concurrency = models.PositiveIntegerField(
        default=8, help_text="Replay requests in flight at once."
    )
    max_tokens_clamp = models.PositiveIntegerField(
        null=True, blank=True, help_text="Replays send at most this many max_tokens (caps cost)."
    )
    recording_paused = models.BooleanField(default=False)
    record_one_in = models.PositiveIntegerField(default=1, help_text="Record one exchange in N (1 = all).")
    # Replay credentials: the name of an environment variable, or a secret entered once and stored
    # encrypted (see migrations_audit.crypto). Never taken from recorded traffic.
    replay_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_replay_key_env],
        help_text="An environment variable named MIGRATION_AUDIT_REPLAY_KEY_<NAME>.",
    )
    replay_key_encrypted = models.TextField(blank=True, editable=False)
    replay_key_header = models.CharField(max_length=100, default="x-api-key")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        """Limits that would let nothing through (or everything) are refused, in forms and the admin."""
        problems = {}
        if self.rate_limit_rps is not None and not 0 < self.rate_limit_rps <= 10_000:
            problems["rate_limit_rps"] = (
                "Give a rate between 0.01 and 10,000 requests per second: replays of every worker together "
                "never send faster (0 would send nothing, a negative rate was once taken as no limit)."
            )
        if self.rate_limit_concurrency is not None and not 1 <= self.rate_limit_concurrency <= 1_000:
            problems["rate_limit_concurrency"] = (
                "Allow between 1 and 1,000 replayed requests in flight at once (0 would send nothing)."
            )
        if self.record_one_in is not None and self.record_one_in < 1:
            problems["record_one_in"] = "Record one exchange in N, with N at least 1 (1 records every one)."
        if self.max_tokens_clamp is not None and self.max_tokens_clamp < 1:
            problems["max_tokens_clamp"] = "Clamp max_tokens to at least 1, or leave it empty for no clamp."
        if problems:
            raise ValidationError(problems)

    @property
    def has_replay_key(self) -> bool:
        return bool(self.replay_key_encrypted or self.replay_key_env)

    @property
    def proxy_url(self) -> str:
        """The base URL a client uses to send its calls through the recording proxy."""
        return f"{settings.MIGRATION_AUDIT_PROXY_URL}/proxy/{self.slug}"

    @property
    def proxy_root_url(self) -> str:
        """The proxy's root, for clients that take only a host and port, if it serves this upstream."""
        if self.slug != settings.MIGRATION_AUDIT_DEFAULT_UPSTREAM:
            return ""
        return settings.MIGRATION_AUDIT_PROXY_URL


class ApiVersion(models.Model):
    """One version of an upstream's API, with its release date."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=50)
    released_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["upstream", models.F("released_on").asc(nulls_last=True), "name"]
        constraints = [models.UniqueConstraint(fields=["upstream", "name"], name="apiversion_unique")]

    def __str__(self):
        return f"{self.upstream.slug} {self.name}"


class Client(models.Model):
    """Who sent traffic: a declared name (X-Audit-Client) or a keyed fingerprint of an API key."""

    class Kind(models.TextChoices):
        DECLARED = "declared", "Declared name"
        KEY = "key", "API-key fingerprint"
        ANONYMOUS = "anonymous", "No key"

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="clients")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The declared name, or the fingerprint (never the key itself).
    identity = models.CharField(max_length=200)
    label = models.CharField(max_length=200, blank=True, help_text="A friendly name given by a user.")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="clients")
    note = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["upstream", "identity"]
        constraints = [models.UniqueConstraint(fields=["upstream", "identity"], name="client_unique")]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        if self.label:
            return self.label
        if self.kind == self.Kind.KEY:
            return f"key {self.identity[:12]}"
        return self.identity


class ApiToken(models.Model):
    """A per-team token for the ingest API. Only its SHA-256 is stored; the token is shown once."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise a token.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class WorkerHeartbeat(models.Model):
    """Written by a periodic task, so the dashboard can tell whether any worker is alive."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self):
        return f"{self.hostname} at {self.seen_at:%H:%M:%S}"
