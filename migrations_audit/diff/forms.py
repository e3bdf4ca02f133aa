"""Forms of the diff pages. They validate query parameters; selectors do the reading."""

from django import forms

from migrations_audit.models import Client, DifferenceSignature, ReplayRun
from migrations_audit.models.diff import Classification

PAIR_SEPARATOR = ".."
CLIENTS_LISTED = 300


class DifferenceFilterForm(forms.Form):
    """The Differences page's filters, all optional; a value that names nothing of the upstream is
    an error, not an empty page."""

    run = forms.ModelChoiceField(queryset=ReplayRun.objects.none(), required=False, empty_label="Any run")
    pair = forms.CharField(required=False, label="Versions", widget=forms.Select)
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="Any client")
    classification = forms.ChoiceField(
        required=False, label="Class", choices=[("", "Breaking and additive"), *Classification.choices]
    )
    noise = forms.BooleanField(required=False, label="Show noise")

    def __init__(self, *args, upstream, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = ReplayRun.objects.filter(upstream=upstream).order_by("-pk")
        self.fields["run"].label_from_instance = lambda run: f"Run #{run.pk} ({', '.join(run.versions)})"
        clients = Client.objects.filter(upstream=upstream)
        self.fields["client"].queryset = clients
        if clients[:CLIENTS_LISTED].count() >= CLIENTS_LISTED:
            # Too many to list: the client pages link here with the id filled in.
            self.fields["client"].widget = forms.NumberInput(attrs={"placeholder": "client id", "min": 1})
        pairs = (
            DifferenceSignature.objects.filter(upstream=upstream)
            .values_list("version_from", "version_to")
            .distinct()
            .order_by("version_from", "version_to")
        )
        # The list offers the pairs that have differences; any pair of the upstream's versions is
        # accepted (a report links to its pair before a replay compared it).
        self.fields["pair"].widget.choices = [("", "Any versions")] + [
            (f"{a}{PAIR_SEPARATOR}{b}", f"{a} → {b}") for a, b in pairs
        ]
        self.versions = set(upstream.versions.values_list("name", flat=True))

    def clean_pair(self):
        pair = self.cleaned_data["pair"]
        if not pair:
            return ""
        version_from, separator, version_to = pair.partition(PAIR_SEPARATOR)
        unknown = [v for v in (version_from, version_to) if v not in self.versions]
        if not separator or unknown:
            known = ", ".join(sorted(self.versions))
            raise forms.ValidationError(f"“{pair}” is not FROM..TO of this upstream's versions ({known}).")
        return pair

    def selection(self) -> dict:
        """Keyword arguments of diff.selectors.signatures_for_upstream."""
        data = self.cleaned_data
        version_from, _, version_to = (data.get("pair") or "").partition(PAIR_SEPARATOR)
        return {
            "run": data.get("run"),
            "client": data.get("client"),
            "classification": data.get("classification") or None,
            "include_noise": bool(data.get("noise")),
            "version_from": version_from or None,
            "version_to": version_to or None,
        }
