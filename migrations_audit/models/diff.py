"""Differences between versions, the changelog rules that explain them, and their aggregates."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from migrations_audit import model_rules

from .capture import Exchange
from .core import Client, Upstream
from .replay import ReplayRun


class Classification(models.TextChoices):
    BREAKING = "breaking", "Breaking"
    ADDITIVE = "additive", "Additive"
    NOISE = "noise", "Noise"


class ChangelogRule(models.Model):
    """A changelog entry, as data: which differences between two versions it explains.

    `match` is declarative (kind, path pattern, request field...); see migrations_audit.diff.rules.
    Request rules (kind "request") reject a request under `version_to` before any replay.
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="changelog_rules")
    key = models.SlugField(max_length=100, help_text="Stable identifier, e.g. complete-exception-removed.")
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    title = models.CharField(max_length=200)
    explanation = models.TextField(blank=True)
    classification = models.CharField(max_length=10, choices=Classification.choices)
    match = models.JSONField(default=dict)
    documentation_url = models.URLField(blank=True)
    enabled = models.BooleanField(default=True, help_text="A disabled rule explains and rejects nothing.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["upstream", "version_to", "key"]
        constraints = [models.UniqueConstraint(fields=["upstream", "key"], name="rule_unique")]

    def __str__(self):
        return f"{self.version_from} -> {self.version_to}: {self.title}"

    @property
    def ref(self) -> str:
        """How differences, findings and verdict cards name this rule (see ModelRule.ref)."""
        return self.key

    @property
    def origin(self) -> str:
        """Where the rule holds, as pages show it beside its title."""
        return f"{self.version_from} → {self.version_to}"


class ModelRule(models.Model):
    """What a model (or family, by pattern) rejects in a request, whatever the version, as data.

    `match` is declarative (forbid_fields, forbid_values, assistant_prefill); see
    migrations_audit.model_rules. Shipped per upstream in rulesets/<name>-models.json, which the
    emulator reads too, and loaded here (diff.services.model_rules_install) for the admin to edit.
    """

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="model_rules")
    key = models.SlugField(max_length=100, help_text="Stable identifier, e.g. opus-4-8-temperature.")
    model_pattern = models.CharField(
        max_length=100, help_text="The model ids it applies to; * is any characters, e.g. claude-opus-4-8*."
    )
    title = models.CharField(max_length=200)
    explanation = models.TextField(blank=True)
    classification = models.CharField(max_length=10, choices=Classification.choices)
    match = models.JSONField(
        default=dict,
        help_text='What it rejects: {"forbid_fields": ["/temperature"]}, {"forbid_values": '
        '[{"field": "/thinking/type", "equals": "disabled"}]}, {"assistant_prefill": true}.',
    )
    error_status = models.PositiveSmallIntegerField(default=400)
    error_type = models.CharField(max_length=100, default="invalid_request_error")
    error_message = models.TextField(help_text="The error's message, as the API answers it.")
    documentation_url = models.URLField(blank=True)
    source = models.TextField(blank=True, help_text="Where the rule and its wording come from.")
    enabled = models.BooleanField(default=True, help_text="A disabled rule rejects nothing.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["upstream", "model_pattern", "key"]
        constraints = [models.UniqueConstraint(fields=["upstream", "key"], name="model_rule_unique")]

    def __str__(self):
        return f"{self.model_pattern}: {self.title}"

    @property
    def ref(self) -> str:
        """How differences, findings and verdict cards name this rule: apart from changelog rules."""
        return model_rules.rule_ref(self.key)

    @property
    def origin(self) -> str:
        """Where the rule holds, as pages show it beside its title: any version, these models."""
        return f"model {self.model_pattern}"


class Difference(models.Model):
    """One difference between the responses one exchange got under two versions."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="differences")
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="differences")
    run = models.ForeignKey(
        ReplayRun, null=True, blank=True, on_delete=models.CASCADE, related_name="differences"
    )
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    kind = models.CharField(max_length=40)
    path = models.CharField(max_length=500, help_text="JSON pointer, or a location such as header:x-foo.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    classification = models.CharField(max_length=10, choices=Classification.choices)
    rule = models.ForeignKey(ChangelogRule, null=True, blank=True, on_delete=models.SET_NULL)
    model_rule = models.ForeignKey(
        ModelRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="differences"
    )
    signature = models.CharField(max_length=64, db_index=True)
    endpoint = models.CharField(max_length=520, blank=True)
    # For noise: the share of repeated calls of one version where it varied (None: by pattern).
    noise_rate = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["upstream", "signature"], name="difference_signature"),
            models.Index(fields=["exchange", "version_to"], name="difference_exchange"),
        ]

    def __str__(self):
        return f"{self.kind} {self.path} ({self.classification})"

    @property
    def explained(self) -> bool:
        return self.rule_id is not None or self.model_rule_id is not None

    @property
    def explained_by(self):
        """The changelog rule or model rule that explains it, if any."""
        return explained_by(self)


class DifferenceSignature(models.Model):
    """Aggregate of the differences that share kind, path and rule, kept up to date incrementally."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="signatures")
    signature = models.CharField(max_length=64)
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    endpoint = models.CharField(max_length=520)
    kind = models.CharField(max_length=40)
    path = models.CharField(max_length=500)
    classification = models.CharField(max_length=10, choices=Classification.choices)
    rule = models.ForeignKey(ChangelogRule, null=True, blank=True, on_delete=models.SET_NULL)
    model_rule = models.ForeignKey(
        ModelRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="signatures"
    )
    count = models.PositiveIntegerField(default=0)
    exchanges = models.PositiveIntegerField(default=0)
    clients = models.ManyToManyField(Client, blank=True, related_name="signatures")
    example = models.ForeignKey(Exchange, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The share of sampled repeats where a noise signature varied, as last measured.
    noise_rate = models.FloatField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upstream", "signature"], name="signature_unique")]
        indexes = [models.Index(fields=["upstream", "version_from", "version_to"], name="signature_versions")]

    def __str__(self):
        return f"{self.kind} {self.path} x{self.count}"

    @property
    def explained_by(self):
        """The changelog rule or model rule that explains it, if any."""
        return explained_by(self)


class RequestFinding(models.Model):
    """A recorded request that a version's request rules reject, found without any replay: a
    changelog rule of the version, or a model rule of the model it would be sent with (`model`)."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="request_findings")
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="request_findings")
    client = models.ForeignKey(Client, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version = models.CharField(max_length=50, help_text="The version whose rules reject the request.")
    rule = models.ForeignKey(
        ChangelogRule, null=True, blank=True, on_delete=models.CASCADE, related_name="findings"
    )
    model_rule = models.ForeignKey(
        ModelRule, null=True, blank=True, on_delete=models.CASCADE, related_name="findings"
    )
    model = models.CharField(
        max_length=100, blank=True, help_text="For a model rule: the model the request would be sent with."
    )
    field = models.CharField(max_length=200, help_text="The request field at fault, as a JSON pointer.")
    message = models.CharField(max_length=500)
    # None until a replay under `version` answered: True if it rejected the request too.
    confirmed = models.BooleanField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exchange", "version", "rule", "field"], name="finding_unique"),
            models.UniqueConstraint(
                fields=["exchange", "version", "model_rule", "field"], name="finding_model_rule_unique"
            ),
            models.CheckConstraint(
                condition=Q(rule__isnull=False, model_rule__isnull=True)
                | Q(rule__isnull=True, model_rule__isnull=False),
                name="finding_one_rule",
            ),
        ]
        indexes = [models.Index(fields=["upstream", "version", "rule"], name="finding_rule")]

    def __str__(self):
        return f"{self.field} rejected under {self.version}"

    @property
    def explained_by(self):
        """The changelog rule or model rule that rejects the request."""
        return explained_by(self)


def explained_by(row):
    """The rule a difference, signature or finding names: its changelog rule, else its model rule."""
    if row.rule_id is not None:
        return row.rule
    return row.model_rule if row.model_rule_id is not None else None


class ExchangeComparison(models.Model):
    """One exchange compared under two versions in one run, even when nothing differed: the
    denominator of "share of exchanges affected", and what makes re-diffing idempotent."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="comparisons")
    run = models.ForeignKey(ReplayRun, on_delete=models.CASCADE, related_name="comparisons")
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="comparisons")
    endpoint = models.CharField(max_length=520)
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    # "replay" when both sides were replayed, "capture" when one side is the recorded response.
    source = models.CharField(max_length=10, default="replay")
    breaking = models.PositiveIntegerField(default=0)
    unexplained = models.PositiveIntegerField(default=0)
    compared_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "exchange", "version_from", "version_to"], name="comparison_unique"
            )
        ]

    def __str__(self):
        return f"{self.exchange_id} {self.version_from} -> {self.version_to}"


class ComparisonTally(models.Model):
    """How many exchanges were compared per upstream, version pair and endpoint, kept up to date as
    comparisons are recorded so that pages read shares without counting rows."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="comparison_tallies")
    endpoint = models.CharField(max_length=520)
    version_from = models.CharField(max_length=50)
    version_to = models.CharField(max_length=50)
    exchanges = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "version_from", "version_to", "endpoint"], name="tally_unique"
            )
        ]

    def __str__(self):
        return f"{self.endpoint} {self.version_from} -> {self.version_to}: {self.exchanges}"
