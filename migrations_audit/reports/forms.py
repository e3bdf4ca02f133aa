from croniter import croniter
from django import forms
from django.core.validators import validate_email

from migrations_audit.models import Migration, ReportDefinition, Upstream

from .delivery import webhook_set, webhook_url_validate


class ReportDefinitionForm(forms.ModelForm):
    class Meta:
        model = ReportDefinition
        fields = [
            "name",
            "upstream",
            "migration",
            "version_from",
            "version_to",
            "fresh_replay",
            "replay_sample",
            "schedule_kind",
            "interval_seconds",
            "crontab",
            "recipients",
            "enabled",
        ]
        labels = {
            "interval_seconds": "Interval (seconds)",
            "version_from": "From version",
            "version_to": "To version",
        }
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3})}

    webhook_url = forms.CharField(
        required=False,
        label="Webhook URL",
        widget=forms.PasswordInput(render_value=False),
        help_text="Slack-compatible JSON, signed. Leave empty to keep the current one; stored encrypted.",
    )
    webhook_secret = forms.CharField(
        required=False,
        label="Webhook signing secret",
        widget=forms.PasswordInput(render_value=False),
        help_text="The HMAC-SHA256 key of X-Migration-Audit-Signature. Leave empty to keep.",
    )
    webhook_remove = forms.BooleanField(required=False, label="Remove the webhook")

    def __init__(self, *args, upstreams, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.webhook_host:
            self.fields["webhook_url"].help_text = (
                f"Now delivers to {self.instance.webhook_host}. " + self.fields["webhook_url"].help_text
            )
        self.fields["upstream"].queryset = upstreams
        self.fields["migration"].queryset = Migration.objects.filter(upstream__in=upstreams)
        self.fields["migration"].required = False

    def clean_recipients(self):
        recipients = self.cleaned_data["recipients"]
        for address in recipients.replace(",", "\n").splitlines():
            if address.strip():
                try:
                    validate_email(address.strip())
                except forms.ValidationError:
                    raise forms.ValidationError(f"“{address.strip()}” is not an email address.") from None
        return recipients

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        return webhook_url_validate(url) if url else ""

    def clean(self):
        cleaned = super().clean()
        has_secret = bool(cleaned.get("webhook_secret") or self.instance.webhook_secret_encrypted)
        if cleaned.get("webhook_url") and not has_secret and not cleaned.get("webhook_remove"):
            self.add_error(
                "webhook_secret", "Give a signing secret so that the receiver can verify deliveries."
            )
        upstream: Upstream | None = cleaned.get("upstream")
        if upstream is not None:
            known = set(upstream.versions.values_list("name", flat=True))
            for name in ("version_from", "version_to"):
                if cleaned.get(name) and cleaned[name] not in known:
                    self.add_error(
                        name,
                        f"{upstream.name} has no version {cleaned[name]} "
                        f"(it has {', '.join(sorted(known))}).",
                    )
            migration = cleaned.get("migration")
            if migration is not None and migration.upstream_id != upstream.pk:
                self.add_error("migration", "That migration belongs to another upstream.")
        if cleaned.get("schedule_kind") == ReportDefinition.ScheduleKind.CRONTAB:
            expression = (cleaned.get("crontab") or "").strip()
            if not expression or not croniter.is_valid(expression):
                self.add_error(
                    "crontab",
                    "Give a crontab expression such as “0 8 * * 1” (minute hour day month weekday).",
                )
        elif not cleaned.get("interval_seconds"):
            self.add_error("interval_seconds", "Give the interval in seconds (3600 = hourly, 86400 = daily).")
        return cleaned

    def webhook_apply(self, definition: ReportDefinition) -> None:
        """Store the webhook fields on the definition (encrypted), before it is saved."""
        if self.cleaned_data.get("webhook_remove"):
            webhook_set(definition=definition, url="", secret=None)
        else:
            webhook_set(
                definition=definition,
                url=self.cleaned_data.get("webhook_url") or None,
                secret=self.cleaned_data.get("webhook_secret") or None,
            )
