"""Authentication for the JSON API: a team's ingest token (Authorization: Bearer) or a session."""

from functools import wraps

from django.http import JsonResponse

from migrations_audit import services


def api_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_auth(view):
    """Sets request.api_teams (the teams the caller acts for) or answers 401 with a clear message."""

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
        elif request.user.is_authenticated:
            request.api_teams = list(request.user.teams.values_list("pk", flat=True))
        else:
            return api_error(401, "Send a team ingest token: Authorization: Bearer <token>.")
        return view(request, *args, **kwargs)

    return wrapper
