"""Reads of the reports pages: a fixed number of queries whatever the number of snapshots, and never
a snapshot's payload where its summary columns say enough."""

from django.db.models import Exists, OuterRef, QuerySet, Subquery

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


def definitions_waiting() -> QuerySet[ReportDefinition]:
    """Definitions asked to run (now or by their schedule) whose snapshot is not taken yet."""
    taken = ReportSnapshot.objects.filter(definition=OuterRef("pk"), created_at__gte=OuterRef("last_run_at"))
    return ReportDefinition.objects.filter(last_run_at__isnull=False).exclude(Exists(taken))


def report_waiting(*, definition: ReportDefinition) -> dict | None:
    """While a run of the report waits for its snapshot: how many report runs asked before it are
    still waiting too, and the fresh replay it waits for, if any; None when nothing waits."""
    if not definitions_waiting().filter(pk=definition.pk).exists():
        return None
    ahead = definitions_waiting().filter(last_run_at__lt=definition.last_run_at).count()
    return {"ahead": ahead, "replay": definition.pending_run}
