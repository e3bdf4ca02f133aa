"""Tracking pages: clients and their owners, migrations, the board, per-client evidence, the API.

Thin: pick what the user may see (another team's objects are 404), check the role for writes
(viewers read only: 403), call one service or selector. htmx requests get a partial of the same
template; without JavaScript the same forms post and redirect.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from migrations_audit import selectors as core_selectors
from migrations_audit import services as core_services
from migrations_audit.models import StatusChange
from migrations_audit.tracking import charts, selectors, services
from migrations_audit.tracking.forms import MigrationForm, NoteForm, OverrideForm


def _upstream(request, slug, *, edit: bool = False):
    """The upstream the user may see (else 404); with `edit`, a viewer gets 403."""
    upstream = core_selectors.upstream_for_user(user=request.user, slug=slug)
    can_edit = core_selectors.user_can_edit(user=request.user, team=upstream.team)
    if edit and not can_edit:
        raise PermissionDenied("Viewers can't change anything.")
    return upstream, can_edit


# Clients


@require_GET
def clients(request, slug):
    upstream, can_edit = _upstream(request, slug)
    owner = request.GET.get("owner", "")
    migration = selectors.latest_open_migration(upstream=upstream)
    owner = owner if owner in ("owned", "unowned") else ""
    page = selectors.clients_overview(
        upstream=upstream, owner=owner, migration=migration, page=request.GET.get("page")
    )
    context = {
        "upstream": upstream,
        "migration": migration,
        "page": page,
        "rows": page.object_list,
        "owner": owner,
        "claim_teams": list(selectors.claimable_teams(user=request.user)),
        "can_edit": can_edit,
    }
    return render(request, "migrations_audit/clients.html", context)


@require_GET
def client_detail(request, slug, client_id):
    upstream, can_edit = _upstream(request, slug)
    client = selectors.client_for_upstream(upstream=upstream, client_id=client_id)
    profile = selectors.client_profile(client=client)
    context = {
        "upstream": upstream,
        "client": client,
        "profile": profile,
        "chart": charts.versions_chart(days=profile["days"], target_version=profile["target_version"]),
        "claim_teams": list(selectors.claimable_teams(user=request.user)),
        "can_edit": can_edit,
        "versions_in_use": _versions_in_use(upstream, client),
    }
    return render(request, "migrations_audit/client.html", context)


def _versions_in_use(upstream, client) -> list[dict]:
    """One row per version: the client's requests with it in the last 7 and 30 days."""
    windows = core_selectors.versions_in_use(upstream=upstream, client=client, windows=(7, 30))
    week = {row["version"]: row for row in windows[7]}
    return [
        {
            "version": row["version"],
            "month": row["exchanges"],
            "month_share": row["share"],
            "week": week.get(row["version"], {}).get("exchanges", 0),
            "week_share": week.get(row["version"], {}).get("share", 0),
        }
        for row in windows[30]
    ]


@require_POST
def client_claim(request, slug, client_id):
    upstream, _ = _upstream(request, slug)
    client = selectors.client_for_upstream(upstream=upstream, client_id=client_id)
    teams = {str(team.pk): team for team in selectors.claimable_teams(user=request.user)}
    if not teams:
        raise PermissionDenied("Only a member or admin of a team can claim a client.")
    if request.POST.get("team"):
        team = teams.get(request.POST["team"])
    else:
        team = teams.get(str(upstream.team_id)) or (next(iter(teams.values())) if len(teams) == 1 else None)
    if team is None:
        raise PermissionDenied("You can only claim a client for a team you are a member of.")
    error = ""
    try:
        services.client_claim(client=client, team=team, by=request.user)
    except ValidationError as exc:
        error = exc.messages[0]
        client.refresh_from_db()
    if request.htmx:
        context = {
            "upstream": upstream,
            "client": client,
            "claim_teams": list(teams.values()),
            "error": error,
        }
        return render(request, "migrations_audit/clients.html#owner", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{client.display_name} now belongs to {team.name}.")
    return redirect("migrations_audit:clients", upstream.slug)


# Migrations


@require_http_methods(["GET", "POST"])
def migrations(request, slug):
    upstream, can_edit = _upstream(request, slug, edit=request.method == "POST")
    form = MigrationForm(request.POST or None, upstream=upstream)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        migration = services.migration_create(
            upstream=upstream,
            name=data["name"],
            target_version=data["target_version"],
            target_model=data.get("target_model") or "",
            from_versions=data["from_versions"],
            deadline=data["deadline"],
            quiet_period_days=data["quiet_period_days"],
            at_risk_window_days=data["at_risk_window_days"],
            clients=list(data["clients"]),
            created_by=request.user,
        )
        services.migration_refresh_queue(migration=migration)
        messages.success(request, f"Migration “{migration.name}” created; its board is being filled.")
        return redirect("migrations_audit:migration", upstream.slug, migration.pk)
    context = {
        "upstream": upstream,
        "migrations": selectors.migrations_for_upstream(upstream=upstream),
        "form": form,
        "can_edit": can_edit,
    }
    return render(request, "migrations_audit/migrations.html", context, status=400 if form.errors else 200)


@require_GET
def migration_detail(request, slug, migration_id):
    upstream, can_edit = _upstream(request, slug)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    burndown = selectors.migration_burndown(migration=migration)
    context = {
        "upstream": upstream,
        "migration": migration,
        "columns": selectors.migration_board(migration=migration),
        "burndown": burndown,
        "chart": charts.burndown_chart(series=burndown),
        "history": StatusChange.objects.filter(migration=migration).select_related("client", "by")[:20],
        "can_edit": can_edit,
    }
    if request.htmx and request.GET.get("partial") == "board":
        return render(request, "migrations_audit/migration.html#board", context)
    return render(request, "migrations_audit/migration.html", context)


@require_POST
def migration_refresh(request, slug, migration_id):
    upstream, _ = _upstream(request, slug, edit=True)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    services.migration_refresh_queue(migration=migration)
    messages.success(request, "Refresh queued: the board updates from recorded traffic in a moment.")
    return redirect("migrations_audit:migration", upstream.slug, migration.pk)


@require_POST
def migration_close(request, slug, migration_id):
    upstream, _ = _upstream(request, slug, edit=True)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    services.migration_close(migration=migration, closed=request.POST.get("closed", "1") == "1")
    messages.success(request, "Migration closed." if migration.closed_at else "Migration reopened.")
    return redirect("migrations_audit:migration", upstream.slug, migration.pk)


def _client_context(request, upstream, migration, client_id, can_edit, **forms):
    state = selectors.state_for_migration(migration=migration, client_id=client_id)
    return {
        "upstream": upstream,
        "migration": migration,
        "state": state,
        "client": state.client,
        "evidence": state.evidence or {},
        "chart": charts.versions_chart(
            days=[
                {"day": row["day"], "versions": row["versions"]}
                for row in (state.evidence or {}).get("days", [])
            ],
            target_version=migration.target_version,
        ),
        "history": StatusChange.objects.filter(migration=migration, client=state.client).select_related("by"),
        "override_form": forms.get("override_form")
        or OverrideForm(initial={"status": state.override_status, "reason": state.override_reason}),
        "note_form": forms.get("note_form")
        or NoteForm(initial={"note": state.note, "owner": state.owner_id}, team=upstream.team),
        "can_edit": can_edit,
    }


@require_GET
def migration_client(request, slug, migration_id, client_id):
    upstream, can_edit = _upstream(request, slug)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    context = _client_context(request, upstream, migration, client_id, can_edit)
    return render(request, "migrations_audit/migration_client.html", context)


@require_POST
def migration_client_override(request, slug, migration_id, client_id):
    upstream, can_edit = _upstream(request, slug, edit=True)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    state = selectors.state_for_migration(migration=migration, client_id=client_id)
    form = OverrideForm(request.POST)
    if form.is_valid():
        services.migration_state_override(
            state=state,
            status=form.cleaned_data["status"],
            reason=form.cleaned_data["reason"],
            by=request.user,
        )
        form = None
    return _client_form_response(
        request, upstream, migration, client_id, can_edit, "override", override_form=form
    )


@require_POST
def migration_client_note(request, slug, migration_id, client_id):
    upstream, can_edit = _upstream(request, slug, edit=True)
    migration = selectors.migration_for_upstream(upstream=upstream, migration_id=migration_id)
    state = selectors.state_for_migration(migration=migration, client_id=client_id)
    form = NoteForm(request.POST, team=upstream.team)
    if form.is_valid():
        services.migration_state_annotate(
            state=state, note=form.cleaned_data["note"], owner=form.cleaned_data["owner"]
        )
        form = None
    return _client_form_response(request, upstream, migration, client_id, can_edit, "note", note_form=form)


def _client_form_response(request, upstream, migration, client_id, can_edit, partial, **forms):
    """htmx: the form's partial (with errors, or saved); without JS: redirect, or the page with errors."""
    invalid = any(form is not None for form in forms.values())
    if request.htmx:
        context = _client_context(request, upstream, migration, client_id, can_edit, **forms)
        context["saved"] = not invalid
        return render(request, f"migrations_audit/migration_client.html#{partial}_response", context)
    if invalid:
        context = _client_context(request, upstream, migration, client_id, can_edit, **forms)
        return render(request, "migrations_audit/migration_client.html", context, status=400)
    messages.success(request, "Saved.")
    return redirect("migrations_audit:migration_client", upstream.slug, migration.pk, client_id)


# API


@login_not_required
@require_GET
def api_migration(request, migration_id):
    """GET /api/v1/migrations/<id>: the board as JSON, for a session or a team token (Bearer)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() == "bearer" and token.strip():
            api_token = core_services.api_token_authenticate(token=token.strip())
            if api_token is None:
                return JsonResponse({"error": "invalid token"}, status=401)
            migration = selectors.migration_for_team(team=api_token.team, migration_id=migration_id)
        elif request.user.is_authenticated:
            migration = selectors.migration_for_user(user=request.user, migration_id=migration_id)
        else:
            return JsonResponse({"error": "authentication required"}, status=401)
    except Http404:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse(selectors.migration_board_json(migration=migration))
