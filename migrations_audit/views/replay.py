"""Replay runs from the UI and the API: start, watch, cancel, resume."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from migrations_audit import selectors
from migrations_audit.models import ReplayRun, Upstream
from migrations_audit.replay import costs, runs
from migrations_audit.replay import selectors as replay_selectors
from migrations_audit.replay.forms import ReplayVariantForm, RunForm
from migrations_audit.replay.runs import ReplayError

from .api import api_auth, api_error, api_upstream_for_write


def _editable_upstream(request, slug) -> Upstream:
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    if not selectors.user_can_edit(user=request.user, team=upstream.team):
        raise PermissionDenied("Viewers cannot start or stop replays.")
    return upstream


def run_start(request, slug):
    upstream = _editable_upstream(request, slug)
    errors = []
    if request.method == "POST":
        form = RunForm(request.POST)
        try:
            if not form.is_valid():
                raise ReplayError(form.error_text())
            run = runs.run_start(upstream=upstream, created_by=request.user, **form.run_arguments())
        except ReplayError as error:
            errors.append(str(error))
        else:
            messages.success(request, _started(run))
            return redirect("migrations_audit:run", slug=slug, run_id=run.pk)
    context = {
        "upstream": upstream,
        "errors": errors,
        "saved_variants": upstream.variants.all(),
        "chosen_variants": request.POST.getlist("variants"),
        "variant_form": ReplayVariantForm(upstream=upstream),
        "choices": selectors.traffic_choices(upstream=upstream),
        "chosen_versions": request.POST.getlist("versions")
        or [upstream.baseline_version, upstream.target_version],
        "form": request.POST,
    }
    return render(request, "migrations_audit/run_start.html", context, status=400 if errors else 200)


@require_POST
def variant_save(request, slug):
    """Save a named variant of the upstream, from the new-run page."""
    upstream = _editable_upstream(request, slug)
    form = ReplayVariantForm(request.POST, upstream=upstream)
    if form.is_valid():
        variant = form.save()
        messages.success(request, f"Variant {variant.name} saved: choose it below.")
    else:
        messages.error(request, "The variant was not saved: " + form_errors_text(form))
    return redirect("migrations_audit:run_start", slug=slug)


def form_errors_text(form) -> str:
    return " ".join(f"{name}: {message}" for name, messages_ in form.errors.items() for message in messages_)


def _started(run: ReplayRun) -> str:
    if run.prepared_at:
        return f"Run #{run.pk} started: {run.exchanges_prepared} exchanges to replay."
    return (
        f"Run #{run.pk} started: its first {run.exchanges_prepared} exchanges are queued, "
        "the rest are being prepared."
    )


def run_detail(request, slug, run_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    run = get_object_or_404(ReplayRun, upstream=upstream, pk=run_id)
    context = {
        "upstream": upstream,
        "run": run,
        "progress": replay_selectors.run_progress(run=run),
        "summary": replay_selectors.run_differences_summary(run=run),
        "waiting": replay_selectors.run_waiting(run=run),
        "can_edit": selectors.user_can_edit(user=request.user, team=upstream.team),
    }
    if request.htmx:
        response = render(request, "migrations_audit/run.html#progress", context)
        if not run.is_active:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    context["costs"] = costs.run_costs(run=run)
    return render(request, "migrations_audit/run.html", context)


@require_POST
def run_cancel(request, slug, run_id):
    upstream = _editable_upstream(request, slug)
    run = get_object_or_404(ReplayRun, upstream=upstream, pk=run_id)
    if runs.run_cancel(run=run):
        messages.success(request, f"Run #{run.pk} cancelled: requests in flight finish, nothing new starts.")
    return redirect("migrations_audit:run", slug=slug, run_id=run.pk)


@require_POST
def run_resume(request, slug, run_id):
    upstream = _editable_upstream(request, slug)
    run = get_object_or_404(ReplayRun, upstream=upstream, pk=run_id)
    if runs.run_resume(run=run):
        messages.success(request, f"Run #{run.pk} resumed.")
    return redirect("migrations_audit:run", slug=slug, run_id=run.pk)


def _run_json(request, run: ReplayRun) -> dict:
    return {
        "id": run.pk,
        "upstream": run.upstream.slug,
        "status": run.status,
        "versions": run.versions,
        "variants": run.variants,
        "selection": run.selection,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "progress": replay_selectors.run_progress(run=run),
        "differences": replay_selectors.run_differences_summary(run=run),
        "url": request.build_absolute_uri(reverse("migrations_audit:run", args=[run.upstream.slug, run.pk])),
    }


@login_not_required
@api_auth
def api_runs(request):
    if request.method != "POST":
        return api_error(
            405, "POST a JSON run: {upstream, versions, selection, noise_sample_rate, token_budget}."
        )
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return api_error(400, "The body must be JSON.")
    if not isinstance(data, dict):
        return api_error(400, "The body must be a JSON object.")
    upstream = api_upstream_for_write(request, str(data.get("upstream", "")))
    selection = data.get("selection") or {}
    if not isinstance(selection, dict):
        return api_error(400, "selection must be a JSON object.")
    if not isinstance(data.get("versions", []), list) or not isinstance(data.get("variants", []), list):
        return api_error(400, "versions (or variants) must be a list of version or variant names.")
    fields = {name: data.get(name) for name in ("versions", "variants", "noise_sample_rate", "token_budget")}
    form = RunForm({**selection, **fields})
    if not form.is_valid():
        return api_error(400, form.error_text())
    try:
        run = runs.run_start(
            upstream=upstream,
            created_by=request.user if request.user.is_authenticated else None,
            **form.run_arguments(),
        )
    except ReplayError as error:
        return api_error(400, str(error))
    return JsonResponse(_run_json(request, run), status=201)


@login_not_required
@api_auth
def api_run(request, run_id):
    run = (
        ReplayRun.objects.select_related("upstream")
        .filter(pk=run_id, upstream__team_id__in=request.api_teams)
        .first()
    )
    if run is None:
        return api_error(404, "No such run.")
    return JsonResponse(_run_json(request, run))
