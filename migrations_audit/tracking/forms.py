"""Forms of the tracking pages. They validate input; services do the writing."""

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from migrations_audit.models import Client, Status


class MigrationForm(forms.Form):
    name = forms.CharField(max_length=200)
    target_version = forms.ChoiceField()
    target_model = forms.CharField(
        max_length=100,
        required=False,
        help_text="Optional: the model clients move to (e.g. claude-sonnet-5). A client is migrated when "
        "its traffic shows the target version and this model.",
    )
    from_versions = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="The versions clients migrate away from."
    )
    deadline = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    quiet_period_days = forms.IntegerField(min_value=1, max_value=365, initial=7)
    at_risk_window_days = forms.IntegerField(min_value=0, max_value=365, initial=14)
    clients = forms.ModelMultipleChoiceField(
        queryset=Client.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave empty to include every client of the upstream, present and future.",
    )

    def __init__(self, *args, upstream, **kwargs):
        super().__init__(*args, **kwargs)
        versions = [(v, v) for v in upstream.versions.values_list("name", flat=True)]
        self.fields["target_version"].choices = versions
        self.fields["from_versions"].choices = versions
        self.fields["clients"].queryset = Client.objects.filter(upstream=upstream)
        self.fields["clients"].label_from_instance = lambda client: client.display_name
        if not self.is_bound:
            self.initial.setdefault("target_version", upstream.target_version)
            self.initial.setdefault(
                "from_versions", [upstream.baseline_version] if upstream.baseline_version else []
            )
            self.initial.setdefault("deadline", timezone.localdate() + timedelta(days=90))

    def clean(self):
        data = super().clean()
        if data.get("target_version") and data.get("target_version") in (data.get("from_versions") or []):
            self.add_error("from_versions", "The target version can't also be a version to move away from.")
        return data


class OverrideForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "No override (use the derived status)"), *Status.choices], required=False
    )
    reason = forms.CharField(max_length=500, required=False, widget=forms.TextInput)

    def clean(self):
        data = super().clean()
        if data.get("status") and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why the derived status is wrong.")
        return data


class NoteForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), required=False, empty_label="Nobody"
    )

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = (
            get_user_model().objects.filter(memberships__team=team).order_by("username")
        )
