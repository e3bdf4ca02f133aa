"""The run form: what a run replays (its versions and which exchanges) and its noise sample and
token budget, one set of rules for the new-run page, the API (POST /api/v1/runs) and `manage.py
replay`."""

from django import forms
from django.utils.dateparse import parse_datetime

from migrations_audit.models import ReplayVariant

from .variants import NAME, VariantError, headers_parse, model_map_parse


class ListField(forms.Field):
    """A list of names, from a form's repeated field, a JSON list or a comma-separated string."""

    widget = forms.SelectMultiple

    def to_python(self, value):
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
            return [name.strip() for part in value for name in part.split(",") if name.strip()]
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class YesNoField(forms.Field):
    """Yes, no, or either (None): "yes"/"no" from a form or the command, true/false from JSON."""

    def to_python(self, value):
        if value in ("yes", True):
            return True
        if value in ("no", False):
            return False
        return None


class DateOrTimeField(forms.CharField):
    """A date (midnight UTC) or an ISO 8601 time, kept as the ISO text the run's selection stores."""

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return ""
        try:
            valid = parse_datetime(value) is not None or parse_datetime(value + "T00:00:00") is not None
        except ValueError:
            valid = False
        if not valid:
            raise forms.ValidationError(f"{self.label} must be a date or an ISO 8601 time.", code="invalid")
        return value if "T" in value else value + "T00:00:00+00:00"


class RunForm(forms.Form):
    # Replay targets: versions, `VERSION@MODEL` variants or saved variants' names, in either field
    # (the page ticks versions and saved variants and types others; the API and the command say
    # `versions` or `variants`).
    versions = ListField(
        required=False, error_messages={"invalid": "versions must be a list of version names."}
    )
    variants = ListField(
        required=False,
        error_messages={"invalid": "variants must be a list of VERSION[@MODEL] or variant names."},
    )
    endpoint = forms.CharField(required=False, max_length=200)
    version = forms.CharField(required=False, max_length=100)
    client = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        error_messages={
            "invalid": "client must be a client id.",
            "min_value": "client must be a client id.",
            "max_value": "client must be a client id.",
        },
    )
    since = DateOrTimeField(required=False, label="since")
    until = DateOrTimeField(required=False, label="until")
    streamed = YesNoField(required=False)
    sample = forms.IntegerField(
        required=False,
        min_value=1,
        error_messages={
            "invalid": "sample must be a whole number of exchanges.",
            "min_value": "sample must be at least 1.",
        },
    )
    # The page asks for a percent, the API and the command for a share: either may be given.
    noise_percent = forms.FloatField(
        required=False,
        min_value=0,
        max_value=100,
        error_messages={"invalid": "Noise sample must be a number."},
    )
    noise_sample_rate = forms.FloatField(
        required=False, error_messages={"invalid": "noise_sample_rate must be a number."}
    )
    token_budget = forms.IntegerField(
        required=False, error_messages={"invalid": "Token budget must be a number."}
    )

    SELECTION = ("endpoint", "version", "client", "since", "until", "streamed", "sample")

    def clean(self):
        data = super().clean()
        targets = list(dict.fromkeys((data.get("versions") or []) + (data.get("variants") or [])))
        if not targets and not self.errors:
            raise forms.ValidationError("Choose at least one version to replay under.")
        data["targets"] = targets
        return data

    def selection(self) -> dict:
        """The exchange filter stored on the run: only the fields given."""
        return {
            name: self.cleaned_data[name]
            for name in self.SELECTION
            if self.cleaned_data.get(name) not in (None, "")
        }

    def run_arguments(self, *, default_noise: float = 0.1) -> dict:
        """Keyword arguments of `runs.run_start` (without the upstream and who starts it)."""
        data = self.cleaned_data
        if data.get("noise_percent") is not None:
            noise = data["noise_percent"] / 100
        elif data.get("noise_sample_rate") is not None:
            noise = data["noise_sample_rate"]
        else:
            noise = default_noise
        return {
            "versions": data["targets"],
            "selection": self.selection(),
            "noise_sample_rate": noise,
            "token_budget": data.get("token_budget"),
        }

    def error_text(self) -> str:
        return " ".join(message for messages in self.errors.values() for message in messages)


class ReplayVariantForm(forms.ModelForm):
    """A named variant of an upstream (the admin and the new-run page save them through it)."""

    class Meta:
        model = ReplayVariant
        fields = ["name", "version", "model_map", "set_headers", "drop_headers", "key_style"]
        widgets = {
            "model_map": forms.Textarea(attrs={"rows": 2}),
            "set_headers": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, upstream=None, **kwargs):
        super().__init__(*args, **kwargs)
        if upstream is not None:
            self.instance.upstream = upstream

    def _upstream(self):
        return self.instance.upstream if self.instance.upstream_id else None

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not NAME.match(name):
            raise forms.ValidationError("A name is letters, digits, spaces and + - . _ (no comma or @).")
        upstream = self._upstream()
        if upstream is not None and upstream.versions.filter(name=name).exists():
            raise forms.ValidationError(f"{name} is a version of {upstream.name}: choose another name.")
        return name

    def clean_version(self):
        version = self.cleaned_data["version"].strip()
        upstream = self._upstream()
        if upstream is not None and not upstream.versions.filter(name=version).exists():
            raise forms.ValidationError(f"{upstream.name} has no version {version}.")
        return version

    def clean_model_map(self):
        return self._parsed("model_map", model_map_parse)

    def clean_set_headers(self):
        return self._parsed("set_headers", headers_parse)

    def _parsed(self, name, parse):
        value = self.cleaned_data[name]
        try:
            parse(value)
        except VariantError as error:
            raise forms.ValidationError(str(error)) from None
        return value
