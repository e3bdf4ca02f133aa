"""The upstream settings form: an API, its versions, what may be replayed, and its limits."""

import re
from datetime import date

from django import forms

from migrations_audit import services
from migrations_audit.models import Team, Upstream

_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")


def _version_line(name: str, released) -> str:
    """A version as the versions box shows it: a dated version's name is its date already."""
    if released is None or str(released) == name:
        return name
    return f"{name} {released}"


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class UpstreamForm(forms.ModelForm):
    team = forms.ModelChoiceField(queryset=Team.objects.none())
    versions_text = forms.CharField(
        label="Versions",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, the value clients send in the version header; a version whose name is not "
        "its release date may add it: “beta 2026-10-21”.",
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
            "target_model",
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
        help_texts = {
            "rate_limit_rps": "Replays of every worker together never send faster (0.01 to 10,000).",
            "rate_limit_concurrency": "Replayed requests in flight at once, all workers (1 to 1,000).",
            "record_one_in": "The proxy records one exchange in N: 1 records all, 10 one in ten.",
            "max_tokens_clamp": "Replays send at most this many max_tokens (caps cost). Empty: as sent.",
            "baseline_version": "The version clients use today: replays and reports compare from it.",
            "target_version": "The version clients move to: the request check and the Overview judge by it.",
        }
        widgets = {
            "rate_limit_rps": forms.NumberInput(attrs={"min": "0.01", "max": "10000", "step": "any"}),
            "rate_limit_concurrency": forms.NumberInput(attrs={"min": "1", "max": "1000"}),
            "record_one_in": forms.NumberInput(attrs={"min": "1"}),
            "max_tokens_clamp": forms.NumberInput(attrs={"min": "1"}),
            "baseline_version": forms.Select,
            "target_version": forms.Select,
        }

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        if len(teams) == 1:
            self.fields["team"].initial = teams[0].pk
        instance = self.instance
        known = (
            list(instance.versions.values_list("name", flat=True))
            if instance.pk
            else [name for name, _ in services.ANTHROPIC_VERSIONS]
        )
        for name in ("baseline_version", "target_version"):
            current = getattr(instance, name, "")
            choices = [("", "none yet")] + [(version, version) for version in known]
            if current and current not in known:
                choices.append((current, current))
            self.fields[name].widget.choices = choices
        if instance.pk:
            self.fields["team"].initial = instance.team_id
            self.fields["versions_text"].initial = "\n".join(
                _version_line(v.name, v.released_on) for v in instance.versions.all()
            )
            self.fields["endpoints_text"].initial = "\n".join(instance.replayable_endpoints)
            self.fields["volatile_text"].initial = "\n".join(instance.volatile_headers)
        else:
            self.fields["versions_text"].initial = "\n".join(
                _version_line(name, released) for name, released in services.ANTHROPIC_VERSIONS
            )
            self.fields["endpoints_text"].initial = "\n".join(services.ANTHROPIC_REPLAYABLE_ENDPOINTS)
            self.fields["volatile_text"].initial = "\n".join(services.ANTHROPIC_VOLATILE_HEADERS)

    def clean_versions_text(self):
        versions = []
        for line in _lines(self.cleaned_data["versions_text"]):
            name, _, released = line.partition(" ")
            released = released.strip() or (name if _DATED.fullmatch(name) else "")
            try:
                versions.append((name, date.fromisoformat(released) if released else None))
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
        """Create or update through the services, the one way to do either."""
        data = self.cleaned_data
        values = {name: data[name] for name in self._meta.fields if name in data}
        values["replayable_endpoints"] = data["endpoints_text"]
        values["volatile_headers"] = [header.lower() for header in _lines(data["volatile_text"])]
        versions = data["versions_text"]
        replay_key = "" if data.get("clear_replay_key") else (data.get("replay_key") or None)
        if self.instance.pk:
            self.instance = services.upstream_update(
                upstream=self.instance, versions=versions, replay_key=replay_key, **values
            )
        else:
            self.instance = services.upstream_create(versions=versions, replay_key=replay_key or "", **values)
        return self.instance
