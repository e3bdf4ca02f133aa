"""Read access shared by every page: what a user may see."""

from django.db.models import QuerySet
from django.http import Http404

from migrations_audit.models import Membership, Team, Upstream


def teams_for_user(*, user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user)


def upstreams_for_user(*, user) -> QuerySet[Upstream]:
    return Upstream.objects.filter(team__memberships__user=user).select_related("team")


def upstream_for_user(*, user, slug: str) -> Upstream:
    """The upstream if the user is in its team; otherwise 404, so ids of other teams stay unknown."""
    upstream = upstreams_for_user(user=user).filter(slug=slug).first()
    if upstream is None:
        raise Http404("No such upstream")
    return upstream


def membership_role(*, user, team: Team) -> str | None:
    return Membership.objects.filter(user=user, team=team).values_list("role", flat=True).first()


def user_can_edit(*, user, team: Team) -> bool:
    return membership_role(user=user, team=team) in (Membership.Role.MEMBER, Membership.Role.ADMIN)
