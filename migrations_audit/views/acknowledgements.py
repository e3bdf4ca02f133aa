"""Acknowledgements on the team's pages and in the API: list, acknowledge, revoke.

Everyone in the team reads them; only its admins write (a member or a viewer gets 403); another
team's upstream is 404. On the pages, a finding's panel posts with htmx and swaps itself; without
JavaScript the same forms post and redirect. In the API, reads take a team token or a session;
writes take a session only (an acknowledgement names the person who made it) with its CSRF token.
"""

import json
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from migrations_audit import selectors
from migrations_audit.models import Acknowledgement, Upstream
from migrations_audit.reports import acknowledgements as acks

from .api import api_auth, api_error

PANEL = "migrations_audit/acknowledgement_panel.html"


def _upstream(request, slug, *, write: bool = False) -> tuple[Upstream, bool]:
    upstream = selectors.upstream_for_user(user=request.user, slug=slug)
    can_acknowledge = acks.user_can_acknowledge(user=request.user, team=upstream.team)
    if write and not can_acknowledge:
        raise PermissionDenied("Only the team's admins acknowledge findings.")
    return upstream, can_acknowledge


def _date(value) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise acks.AcknowledgementError("The expiry date must be a date such as 2027-03-31.") from None


def _client_id(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise acks.AcknowledgementError("The client must be chosen from the list.") from None


def panel_context(*, upstream: Upstream, signature: str, title: str, can_acknowledge: bool, **extra) -> dict:
    """What a finding's acknowledgement panel shows: its active acknowledgement and the form."""
    if "request_finding" not in extra and upstream.target_version:
        extra["request_finding"] = next(
            (
                found
                for found in acks.request_findings_open(upstream=upstream, version=upstream.target_version)
                if found.signature == signature
            ),
            None,
        )
    return {
        "upstream": upstream,
        "ack_signature": signature,
        "ack_title": title,
        "acknowledgement": acks.acknowledgement_for_signature(upstream=upstream, signature=signature),
        "can_acknowledge": can_acknowledge,
        "errors": [],
        **extra,
    }


def acknowledgements(request, slug):
    upstream, can_acknowledge = _upstream(request, slug)
    listed = list(acks.acknowledgements_for_upstream(upstream=upstream))
    version = upstream.target_version
    open_requests = acks.request_findings_open(upstream=upstream, version=version) if version else []
    panels = [
        panel_context(
            upstream=upstream,
            signature=found.signature,
            title=found.title,
            can_acknowledge=can_acknowledge and found.client is not None,
            request_finding=found,
        )
        for found in open_requests
    ]
    context = {
        "upstream": upstream,
        "active": [a for a in listed if a.state == Acknowledgement.State.ACTIVE],
        "ended": [a for a in listed if a.state != Acknowledgement.State.ACTIVE],
        "panels": panels,
        "can_acknowledge": can_acknowledge,
    }
    return render(request, "migrations_audit/acknowledgements.html", context)


def _back(request, upstream: Upstream):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("migrations_audit:acknowledgements", slug=upstream.slug)


@require_POST
def acknowledgement_create(request, slug):
    upstream, _ = _upstream(request, slug, write=True)
    signature = request.POST.get("signature", "").strip().lower()
    errors = []
    try:
        acknowledgement = acks.acknowledgement_create(
            upstream=upstream,
            signature=signature,
            reason=request.POST.get("reason", ""),
            expires_on=_date(request.POST.get("expires_on")),
            client_id=_client_id(request.POST.get("client")),
            user=request.user,
            via="page",
        )
    except acks.AcknowledgementError as error:
        errors.append(str(error))
    if request.htmx:
        context = panel_context(
            upstream=upstream,
            signature=signature,
            title=request.POST.get("title", ""),
            can_acknowledge=True,
            errors=errors,
            form=request.POST,
            next=request.POST.get("next", ""),
        )
        return render(request, PANEL, context)
    if errors:
        for error in errors:
            messages.error(request, error)
    else:
        messages.success(request, f"Acknowledged: {acknowledgement.title}.")
    return _back(request, upstream)


@require_POST
def acknowledgement_revoke(request, slug, acknowledgement_id):
    upstream, _ = _upstream(request, slug, write=True)
    acknowledgement = get_object_or_404(Acknowledgement, upstream=upstream, pk=acknowledgement_id)
    errors = []
    try:
        acks.acknowledgement_revoke(
            acknowledgement=acknowledgement,
            reason=request.POST.get("reason", ""),
            user=request.user,
            via="page",
        )
    except acks.AcknowledgementError as error:
        errors.append(str(error))
    if request.htmx:
        context = panel_context(
            upstream=upstream,
            signature=acknowledgement.signature,
            title=acknowledgement.title,
            can_acknowledge=True,
            errors=errors,
            next=request.POST.get("next", ""),
        )
        return render(request, PANEL, context)
    for error in errors:
        messages.error(request, error)
    if not errors:
        messages.success(request, f"Revoked: {acknowledgement.title}.")
    return _back(request, upstream)


# --- API ----------------------------------------------------------------------------------------


def acknowledgement_json(acknowledgement: Acknowledgement) -> dict:
    return {
        "id": acknowledgement.pk,
        "signature": acknowledgement.signature,
        "finding": acknowledgement.finding,
        "title": acknowledgement.title,
        "client": acknowledgement.client.display_name if acknowledgement.client else None,
        "reason": acknowledgement.reason,
        "expires_on": acknowledgement.expires_on.isoformat() if acknowledgement.expires_on else None,
        "state": acknowledgement.state,
        "created_by": acknowledgement.created_by.get_username() if acknowledgement.created_by else None,
        "created_at": acknowledgement.created_at.isoformat(),
        "events": [
            {
                "action": event.action,
                "by": event.actor_name,
                "via": event.via,
                "reason": event.reason,
                "at": event.at.isoformat(),
            }
            for event in acknowledgement.events.all()
        ],
    }


def _api_writer(request, slug) -> tuple[Upstream | None, JsonResponse | None]:
    """The upstream a session user may acknowledge on, or the error to answer."""
    if "Authorization" in request.headers:
        return None, api_error(
            403, "Acknowledging names a person: sign in as a team admin (session); tokens only read."
        )
    if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
        return None, api_error(403, "CSRF token missing or wrong: send it in the X-CSRFToken header.")
    upstream = Upstream.objects.filter(slug=slug, team_id__in=request.api_teams).first()
    if upstream is None:
        return None, api_error(404, f"No upstream {slug!r} for this caller.")
    if not acks.user_can_acknowledge(user=request.user, team=upstream.team):
        return None, api_error(403, "Only the team's admins acknowledge findings.")
    return upstream, None


def _json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise acks.AcknowledgementError("The body must be JSON.") from None
    if not isinstance(data, dict):
        raise acks.AcknowledgementError("The body must be a JSON object.")
    return data


@login_not_required
@csrf_exempt  # checked below for sessions; a token caller cannot write
@api_auth
def api_acknowledgements(request, slug):
    """GET: an upstream's acknowledgements with their audit trail. POST {signature, reason,
    expires_on?, client?}: acknowledge a finding (team admins, session and CSRF token)."""
    if request.method == "GET":
        upstream = Upstream.objects.filter(slug=slug, team_id__in=request.api_teams).first()
        if upstream is None:
            return api_error(404, f"No upstream {slug!r} for this caller.")
        listed = acks.acknowledgements_for_upstream(upstream=upstream)
        return JsonResponse({"acknowledgements": [acknowledgement_json(a) for a in listed]})
    if request.method != "POST":
        return api_error(405, "GET the list, or POST {signature, reason, expires_on, client}.")
    upstream, refusal = _api_writer(request, slug)
    if refusal is not None:
        return refusal
    try:
        data = _json_body(request)
        acknowledgement = acks.acknowledgement_create(
            upstream=upstream,
            signature=str(data.get("signature") or ""),
            reason=str(data.get("reason") or ""),
            expires_on=_date(data.get("expires_on")),
            client_id=_client_id(data.get("client")),
            user=request.user,
            via="api",
        )
    except acks.AcknowledgementError as error:
        return api_error(400, str(error))
    return JsonResponse(acknowledgement_json(acknowledgement), status=201)


@login_not_required
@csrf_exempt  # checked below for sessions; a token caller cannot write
@api_auth
def api_acknowledgement_revoke(request, slug, acknowledgement_id):
    """POST {reason}: revoke an acknowledgement (team admins, session and CSRF token)."""
    if request.method != "POST":
        return api_error(405, "POST {reason} to revoke.")
    upstream, refusal = _api_writer(request, slug)
    if refusal is not None:
        return refusal
    acknowledgement = Acknowledgement.objects.filter(upstream=upstream, pk=acknowledgement_id).first()
    if acknowledgement is None:
        return api_error(404, "No such acknowledgement.")
    try:
        data = _json_body(request)
        revoked = acks.acknowledgement_revoke(
            acknowledgement=acknowledgement,
            reason=str(data.get("reason") or ""),
            user=request.user,
            via="api",
        )
    except acks.AcknowledgementError as error:
        return api_error(400, str(error))
    if not revoked:
        return api_error(409, f"This acknowledgement has already ended ({acknowledgement.state}).")
    return JsonResponse(acknowledgement_json(acknowledgement))
