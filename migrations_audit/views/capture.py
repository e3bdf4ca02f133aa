"""Capture's pages and API: NDJSON ingest, HAR upload with progress, ingest tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from migrations_audit import selectors, services
from migrations_audit.capture.har import har_import_queue
from migrations_audit.capture.ingest import ndjson_ingest, ndjson_lines
from migrations_audit.models import ApiToken, HarImport, Upstream

from .api import api_auth, api_error, api_upstream_for_write


@login_not_required
@api_auth
def api_ingest(request, slug):
    if request.method != "POST":
        return api_error(405, "POST NDJSON here, one exchange per line.")
    upstream = api_upstream_for_write(request, slug)
    limit = settings.MIGRATION_AUDIT_MAX_INGEST_BYTES
    if _content_length(request) > limit:
        return api_error(
            413, f"The body is larger than {limit} bytes (MIGRATION_AUDIT_MAX_INGEST_BYTES): send it in parts"
        )
    # Read the body as a stream, a line at a time, none kept longer than the proxy's body limit.
    summary = ndjson_ingest(upstream=upstream, lines=ndjson_lines(request))
    return JsonResponse(summary.as_dict(), status=200)


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _editable_upstream(request, slug) -> Upstream:
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    if not selectors.user_can_edit(user=request.user, team=upstream.team):
        raise PermissionDenied("Viewers cannot import traffic.")
    return upstream


def har_imports(request, slug):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    if request.method == "POST":
        upstream = _editable_upstream(request, slug)
        uploaded = request.FILES.get("har")
        if uploaded is None:
            messages.error(request, "Choose a HAR file to upload.")
        else:
            job = har_import_queue(upstream=upstream, uploaded=uploaded, created_by=request.user)
            return redirect("migrations_audit:har_import", slug=slug, job_id=job.pk)
    jobs = upstream.har_imports.all()[:20]
    return render(request, "migrations_audit/har_imports.html", {"upstream": upstream, "jobs": jobs})


def har_import_detail(request, slug, job_id):
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    job = get_object_or_404(HarImport, upstream=upstream, pk=job_id)
    context = {"upstream": upstream, "job": job, "ahead": selectors.har_imports_ahead(job=job)}
    if request.htmx:
        finished = job.state in (HarImport.State.DONE, HarImport.State.FAILED)
        response = render(request, "migrations_audit/har_import.html#progress", context)
        if finished:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "migrations_audit/har_import.html", context)


@require_POST
def token_create(request, team_slug):
    team = get_object_or_404(selectors.teams_for_user(user=request.user), slug=team_slug)
    if not selectors.user_can_edit(user=request.user, team=team):
        raise PermissionDenied("Viewers cannot create tokens.")
    name = (request.POST.get("name") or "").strip()[:100]
    if not name:
        messages.error(request, "Give the token a name, such as the system that will use it.")
        return redirect("migrations_audit:settings")
    _, token = services.api_token_create(team=team, name=name, created_by=request.user)
    # Shown once, on this response only: never stored, never shown again.
    return render(
        request,
        "migrations_audit/token_created.html",
        {"team": team, "name": name, "token": token, "upstreams": team.upstreams.order_by("name")},
    )


@require_POST
def token_revoke(request, team_slug, token_id):
    team = get_object_or_404(selectors.teams_for_user(user=request.user), slug=team_slug)
    if not selectors.user_can_edit(user=request.user, team=team):
        raise PermissionDenied("Viewers cannot revoke tokens.")
    updated = ApiToken.objects.filter(team=team, pk=token_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if not updated:
        raise Http404("No such token")
    messages.success(request, "Token revoked.")
    return redirect("migrations_audit:settings")
