"""Reports: definitions with their schedule, snapshot history, and each snapshot in every format."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from migrations_audit import selectors
from migrations_audit.models import ReportDefinition, ReportSnapshot
from migrations_audit.reports import delivery, services
from migrations_audit.reports import selectors as selectors_reports
from migrations_audit.reports.forms import ReportDefinitionForm
from migrations_audit.reports.render import report_csv, report_html
from migrations_audit.reports.tasks import report_run


def _definitions(user):
    return selectors_reports.definitions_for_user(user=user)


def _editable(user, definition_or_team) -> bool:
    team = getattr(definition_or_team, "team", definition_or_team)
    return selectors.user_can_edit(user=user, team=team)


def reports(request):
    rows = selectors_reports.definitions_with_latest(user=request.user)
    can_create = selectors.teams_editable_by_user(user=request.user).exists()
    return render(request, "migrations_audit/reports.html", {"rows": rows, "can_create": can_create})


def report_edit(request, definition_id=None):
    definition = get_object_or_404(_definitions(request.user), pk=definition_id) if definition_id else None
    upstreams = selectors.upstreams_for_user(user=request.user).filter(
        team__in=selectors.teams_editable_by_user(user=request.user)
    )
    if definition is not None and not _editable(request.user, definition):
        raise PermissionDenied("Viewers cannot change reports.")
    if definition is None and not upstreams.exists():
        raise PermissionDenied("Only team members can create reports.")
    form = ReportDefinitionForm(
        request.POST or None,
        instance=definition,
        upstreams=upstreams,
        initial=None if definition else _initial(upstreams.first()),
    )
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        form.webhook_apply(saved)
        saved.team = saved.upstream.team
        if definition is None:
            saved.created_by = request.user
        services.definition_save(definition=saved)
        messages.success(request, f"Report “{saved.name}” saved.")
        return redirect("migrations_audit:report", definition_id=saved.pk)
    shown = request.POST or {
        "schedule_kind": form["schedule_kind"].value(),
        "interval_seconds": form["interval_seconds"].value(),
        "crontab": form["crontab"].value() or "",
    }
    preview, preview_error = delivery.schedule_preview(
        kind=shown.get("schedule_kind") or "",
        interval_seconds=shown.get("interval_seconds"),
        crontab=shown.get("crontab") or "",
    )
    context = {"form": form, "definition": definition, "preview": preview, "preview_error": preview_error}
    return render(request, "migrations_audit/report_edit.html", context)


def _initial(upstream) -> dict:
    if upstream is None:
        return {}
    return {
        "upstream": upstream,
        "version_from": upstream.baseline_version,
        "version_to": upstream.target_version,
        "interval_seconds": 86400,
        "name": f"{upstream.name}: {upstream.baseline_version} → {upstream.target_version}",
    }


def report_detail(request, definition_id):
    definition = get_object_or_404(_definitions(request.user), pk=definition_id)
    upcoming = []
    if definition.enabled and definition.next_run_at:
        following, _ = delivery.schedule_preview(
            kind=definition.schedule_kind,
            interval_seconds=definition.interval_seconds,
            crontab=definition.crontab,
            after=definition.next_run_at,
            count=4,
        )
        upcoming = [definition.next_run_at, *following]
    context = {
        "deliveries": delivery.deliveries_latest(definition=definition),
        "definition": definition,
        "snapshots": selectors_reports.snapshots_summary().filter(definition=definition)[:50],
        "upcoming": upcoming,
        "can_edit": _editable(request.user, definition),
        "waiting": selectors_reports.report_waiting(definition=definition),
    }
    if request.htmx:
        response = render(request, "migrations_audit/report.html#runs", context)
        if context["waiting"] is None:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "migrations_audit/report.html", context)


@require_POST
def report_run_now(request, definition_id):
    definition = get_object_or_404(_definitions(request.user), pk=definition_id)
    if not _editable(request.user, definition):
        raise PermissionDenied("Viewers cannot run reports.")
    ReportDefinition.objects.filter(pk=definition.pk).update(last_run_at=timezone.now())
    transaction.on_commit(lambda: report_run.delay(definition.pk))
    messages.success(request, "The report is queued; its snapshot appears below when it is taken.")
    return redirect("migrations_audit:report", definition_id=definition.pk)


def report_snapshot(request, snapshot_id, fmt="page"):
    snapshot = get_object_or_404(
        ReportSnapshot.objects.select_related("definition__upstream"),
        pk=snapshot_id,
        definition__team__memberships__user=request.user,
    )
    payload, name = snapshot.payload, f"report-{snapshot.definition.pk}-{snapshot.pk}"
    if fmt == "json":
        response = JsonResponse(payload, json_dumps_params={"indent": 2})
    elif fmt == "csv":
        response = HttpResponse(report_csv(payload), content_type="text/csv; charset=utf-8")
    elif fmt == "html":
        response = HttpResponse(
            report_html(payload, title=snapshot.definition.name), content_type="text/html"
        )
    else:
        context = {"snapshot": snapshot, "p": _payload_shown(payload), "definition": snapshot.definition}
        return render(request, "migrations_audit/report_snapshot.html", context)
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


# The snapshot page lists this many clients or differences; the downloads hold them all.
PAGE_LIST_LIMIT = 50


def _payload_shown(payload: dict) -> dict:
    """The payload as the snapshot page shows it: long lists cut (how much in `cut`), and of each
    request rule's clients only the acknowledged ones, which are all the page names."""
    shown, cut = dict(payload), {}
    for key in ("clients_affected", "differences"):
        items = payload.get(key) or []
        if len(items) > PAGE_LIST_LIMIT:
            shown[key], cut[key] = items[:PAGE_LIST_LIMIT], len(items) - PAGE_LIST_LIMIT
    in_use = payload.get("versions_in_use")
    if isinstance(in_use, dict) and len(in_use.get("by_client") or []) > PAGE_LIST_LIMIT:
        shown["versions_in_use"] = {**in_use, "by_client": in_use["by_client"][:PAGE_LIST_LIMIT]}
        cut["by_client"] = len(in_use["by_client"]) - PAGE_LIST_LIMIT
    shown["request_rules"] = [
        {**rule, "by_client": [c for c in rule.get("by_client") or [] if c.get("acknowledged")]}
        for rule in payload.get("request_rules") or []
    ]
    shown["cut"] = cut
    return shown


def report_schedule_preview(request):
    """The next five run times of the schedule being edited (an htmx partial of the edit form)."""
    runs, error = delivery.schedule_preview(
        kind=request.GET.get("schedule_kind", ""),
        interval_seconds=request.GET.get("interval_seconds"),
        crontab=request.GET.get("crontab", "")[:100],
    )
    return render(
        request, "migrations_audit/report_edit.html#preview", {"preview": runs, "preview_error": error}
    )


@require_POST
def report_test_delivery(request, definition_id):
    definition = get_object_or_404(_definitions(request.user), pk=definition_id)
    if not _editable(request.user, definition):
        raise PermissionDenied("Viewers cannot send deliveries.")
    if not definition.webhook_url_encrypted:
        messages.error(request, "This report has no webhook: set one under Edit.")
    else:
        sent = delivery.delivery_test(definition=definition)
        if sent.status == sent.Status.SENT:
            messages.success(request, f"Test delivery to {definition.webhook_host}: {sent.http_status}.")
        else:
            messages.error(request, f"Test delivery to {definition.webhook_host} failed: {sent.error}")
    return redirect("migrations_audit:report", definition_id=definition.pk)
