"""A team's own page for its upstream's rules: what each explains or rejects, editable by its editors."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render

from migrations_audit import selectors
from migrations_audit.diff.services import rule_update
from migrations_audit.models import ChangelogRule, ModelRule
from migrations_audit.models.diff import Classification

RULE_MODELS = {"changelog": ChangelogRule, "model": ModelRule}


class RuleForm(forms.Form):
    kind = forms.ChoiceField(choices=[(kind, kind) for kind in RULE_MODELS], widget=forms.HiddenInput)
    rule = forms.IntegerField(widget=forms.HiddenInput)
    title = forms.CharField(max_length=200)
    explanation = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    classification = forms.ChoiceField(choices=Classification.choices)
    enabled = forms.BooleanField(required=False, help_text="A disabled rule explains and rejects nothing.")


def rules(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    can_edit = selectors.user_can_edit(user=request.user, team=upstream.team)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Viewers cannot change rules.")
        form = RuleForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            rule = get_object_or_404(RULE_MODELS[data["kind"]], upstream=upstream, pk=data["rule"])
            rule_update(
                rule=rule,
                user=request.user,
                title=data["title"],
                explanation=data["explanation"],
                classification=data["classification"],
                enabled=data["enabled"],
            )
            messages.success(
                request, f"Rule “{rule.title}” saved; it counts for the next checks and replays."
            )
            return redirect("migrations_audit:rules", slug=upstream.slug)
        messages.error(request, "The rule was not saved: " + "; ".join(_errors(form)))
    related = ("updated_by",)
    context = {
        "upstream": upstream,
        "can_edit": can_edit,
        "changelog_rules": upstream.changelog_rules.select_related(*related).order_by("version_to", "key"),
        "model_rules": upstream.model_rules.select_related(*related).order_by("model_pattern", "key"),
        "classifications": Classification.choices,
    }
    return render(request, "migrations_audit/rules.html", context)


def _errors(form: RuleForm) -> list[str]:
    fields = form.fields
    return [
        f"{name if name not in fields else fields[name].label or name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    ]
