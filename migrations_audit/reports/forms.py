from croniter import croniter
from django import forms
from django.core.validators import validate_email

from migrations_audit.models import Migration, ReportDefinition, Upstream


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

    def __init__(self, *args, upstreams, **kwargs):
        super().__init__(*args, **kwargs)
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

    def clean(self):
        cleaned = super().clean()
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
