"""Reads of the reports pages: a fixed number of queries whatever the number of snapshots, and never
a snapshot's payload where its summary columns say enough."""

from django.db.models import OuterRef, QuerySet, Subquery

from migrations_audit.models import ReportDefinition, ReportSnapshot

# What a list of snapshots shows: the summary columns, not the payload.
SNAPSHOT_SUMMARY = (
    "id",
    "definition_id",
    "created_at",
    "status",
    "status_reason",
    "breaking",
    "unexplained",
    "blocking",
)


def definitions_for_user(*, user) -> QuerySet[ReportDefinition]:
    return ReportDefinition.objects.filter(team__memberships__user=user).select_related("upstream", "team")


def definitions_with_latest(*, user) -> list[tuple[ReportDefinition, ReportSnapshot | None]]:
    """Each report the user may see with its latest snapshot (summary only): two queries."""
    latest = (
        ReportSnapshot.objects.filter(definition=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    definitions = list(definitions_for_user(user=user).annotate(latest_id=Subquery(latest)))
    wanted = [definition.latest_id for definition in definitions if definition.latest_id]
    snapshots = (
        {snapshot.pk: snapshot for snapshot in snapshots_summary().filter(pk__in=wanted)} if wanted else {}
    )
    return [(definition, snapshots.get(definition.latest_id)) for definition in definitions]


def snapshots_summary() -> QuerySet[ReportSnapshot]:
    return ReportSnapshot.objects.only(*SNAPSHOT_SUMMARY)
