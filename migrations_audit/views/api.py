"""Authentication for the JSON API: a team's ingest token (Authorization: Bearer) or a session.

Roles apply as on the pages: a viewer reads, a member or admin writes. A session is a browser's, so
its unsafe requests need the CSRF token as a form's do; a token is sent on purpose by a program, and
a browser never adds it to a forged request, so a token's requests need none.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from migrations_audit import selectors, services
from migrations_audit.models import Upstream


def api_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, run by the API for session callers only: answers the reason it refuses."""

    def _reject(self, request, reason):
        return reason


def _csrf_refusal(request) -> str | None:
    check = _CsrfCheck(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def api_auth(view):
    """Sets request.api_teams (the teams the caller reads) and request.api_editable_teams (those it
    may change), or answers 401 with a clear message; Http404 and PermissionDenied become JSON."""

    @csrf_exempt  # only for token callers: session callers are checked below
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        authorization = request.headers.get("Authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return api_error(401, "Authorization must be 'Bearer <ingest token>'.")
            api_token = services.api_token_authenticate(token=token.strip())
            if api_token is None:
                return api_error(401, "The token is unknown or revoked.")
            request.api_teams = [api_token.team_id]
            can_edit = selectors.token_can_edit(token=api_token)
            request.api_editable_teams = [api_token.team_id] if can_edit else []
        elif request.user.is_authenticated:
            reason = _csrf_refusal(request)
            if reason:
                return api_error(
                    403,
                    f"CSRF check failed ({reason}). A session must send its CSRF token (X-CSRFToken); "
                    "programs should use a team token: Authorization: Bearer <token>.",
                )
            request.api_teams = list(selectors.teams_for_user(user=request.user).values_list("pk", flat=True))
            request.api_editable_teams = list(
                selectors.teams_editable_by_user(user=request.user).values_list("pk", flat=True)
            )
        else:
            return api_error(401, "Send a team ingest token: Authorization: Bearer <token>.")
        try:
            return view(request, *args, **kwargs)
        except Http404 as error:
            return api_error(404, str(error) or "Not found.")
        except PermissionDenied as error:
            return api_error(403, str(error) or "Forbidden.")

    return wrapper


def api_upstream_for_write(request, slug: str) -> Upstream:
    """The caller's upstream, for an unsafe request: 404 if the caller's teams do not hold it (so ids
    of other teams stay unknown), 403 if the caller may only read it, as a viewer on the pages."""
    upstream = Upstream.objects.filter(slug=slug, team_id__in=request.api_teams).first()
    if upstream is None:
        raise Http404(f"No upstream {slug!r} for this caller.")
    if upstream.team_id not in request.api_editable_teams:
        raise PermissionDenied("Viewers can read through the API but not change anything.")
    return upstream
