"""The upstream settings form: an API, its versions, what may be replayed, and its limits."""

from datetime import date

from django import forms
from django.db import transaction

from migrations_audit import services
from migrations_audit.models import ApiVersion, Team, Upstream


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class UpstreamForm(forms.ModelForm):
    team = forms.ModelChoiceField(queryset=Team.objects.none())
    versions_text = forms.CharField(
        label="Versions",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, optionally with its release date: “2026-10-21 2026-10-21”.",
    )
    endpoints_text = forms.CharField(
        label="Replayable endpoints",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One “METHOD /path” per line. Only these are ever replayed.",
    )
    volatile_text = forms.CharField(
        label="Headers that always vary",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line; a trailing * matches a prefix (anthropic-ratelimit-*).",
    )
    replay_key = forms.CharField(
        label="Replay credential",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current one.",
    )
    clear_replay_key = forms.BooleanField(label="Remove the stored replay credential", required=False)

    class Meta:
        model = Upstream
        fields = [
            "team",
            "name",
            "slug",
            "base_url",
            "version_header",
            "baseline_version",
            "target_version",
            "rate_limit_rps",
            "rate_limit_concurrency",
            "max_tokens_clamp",
            "recording_paused",
            "record_one_in",
            "replay_key_env",
            "replay_key_header",
        ]
        labels = {
            "base_url": "Base URL",
            "rate_limit_rps": "Replay rate limit (requests per second)",
            "rate_limit_concurrency": "Replay concurrency limit",
            "max_tokens_clamp": "Clamp max_tokens in replays to",
            "replay_key_env": "Replay credential from environment variable",
        }

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        if len(teams) == 1:
            self.fields["team"].initial = teams[0].pk
        instance = self.instance
        if instance.pk:
            self.fields["team"].initial = instance.team_id
            self.fields["versions_text"].initial = "\n".join(
                f"{v.name} {v.released_on or ''}".strip() for v in instance.versions.all()
            )
            self.fields["endpoints_text"].initial = "\n".join(instance.replayable_endpoints)
            self.fields["volatile_text"].initial = "\n".join(instance.volatile_headers)
        else:
            self.fields["versions_text"].initial = "\n".join(
                f"{name} {released}" for name, released in services.ANTHROPIC_VERSIONS
            )
            self.fields["endpoints_text"].initial = "\n".join(services.ANTHROPIC_REPLAYABLE_ENDPOINTS)
            self.fields["volatile_text"].initial = "\n".join(services.ANTHROPIC_VOLATILE_HEADERS)

    def clean_versions_text(self):
        versions = []
        for line in _lines(self.cleaned_data["versions_text"]):
            name, _, released = line.partition(" ")
            try:
                versions.append((name, date.fromisoformat(released.strip()) if released.strip() else None))
            except ValueError:
                raise forms.ValidationError(f"“{released.strip()}” is not a date (YYYY-MM-DD).") from None
        if not versions:
            raise forms.ValidationError("List at least one version.")
        if len({name for name, _ in versions}) != len(versions):
            raise forms.ValidationError("A version is listed twice.")
        return versions

    def clean_endpoints_text(self):
        endpoints = []
        for line in _lines(self.cleaned_data["endpoints_text"]):
            method, _, path = line.partition(" ")
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not path.startswith("/"):
                raise forms.ValidationError(f"“{line}” is not “METHOD /path”.")
            endpoints.append(f"{method.upper()} {path.strip()}")
        return endpoints

    def clean(self):
        cleaned = super().clean()
        names = [name for name, _ in cleaned.get("versions_text") or []]
        # A baseline or target may be a variant: VERSION@MODEL, or a saved variant's name.
        saved = set(self.instance.variants.values_list("name", flat=True)) if self.instance.pk else set()
        for field in ("baseline_version", "target_version"):
            value = cleaned.get(field)
            if value and names and value.partition("@")[0] not in names and value not in saved:
                self.add_error(field, f"{value} is not one of the versions listed (nor a variant of one).")
        return cleaned

    def save(self, commit=True):
        upstream = super().save(commit=False)
        upstream.team = self.cleaned_data["team"]
        upstream.version_header = upstream.version_header.lower()
        upstream.base_url = upstream.base_url.rstrip("/")
        upstream.replayable_endpoints = self.cleaned_data["endpoints_text"]
        upstream.volatile_headers = [h.lower() for h in _lines(self.cleaned_data["volatile_text"])]
        is_new = upstream.pk is None
        with transaction.atomic():
            upstream.save()
            versions = self.cleaned_data["versions_text"]
            upstream.versions.exclude(name__in=[name for name, _ in versions]).delete()
            for name, released in versions:
                ApiVersion.objects.update_or_create(
                    upstream=upstream, name=name, defaults={"released_on": released}
                )
            if self.cleaned_data.get("clear_replay_key"):
                services.upstream_set_replay_key(upstream=upstream, replay_key="")
            elif self.cleaned_data.get("replay_key"):
                services.upstream_set_replay_key(
                    upstream=upstream, replay_key=self.cleaned_data["replay_key"]
                )
            if is_new and upstream.version_header == "anthropic-version":
                from migrations_audit.diff.services import changelog_rules_install

                changelog_rules_install(upstream=upstream)
        return upstream
