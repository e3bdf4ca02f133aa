"""Store captured exchanges: one place for every entry point (proxy, ingest, HAR, demo).

Capture records and commits; the diff stage's request check runs after the commit, as a task given
the stored ids (`request_check_queue`): capture never calls into the diff stage.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db import (
    InterfaceError,
    InternalError,
    OperationalError,
    connection,
    connections,
    router,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from migrations_audit.bulk import rows_insert
from migrations_audit.models import Client, Exchange, RecorderTotals, TrafficDay, Upstream

from .recording import CapturedExchange, ClientIdentity, exchange_build

logger = logging.getLogger(__name__)
# Six parameters a row: well under SQLite's and PostgreSQL's limits on parameters per statement.
TRAFFIC_DAYS_PER_UPSERT = 1000
# The database being away (refused or reset connections, a locked SQLite file, a read-only failover):
# worth trying again later. Any other error comes from what is being stored, and trying again would
# fail the same way.
DATABASE_OUTAGE_ERRORS = (OperationalError, InterfaceError, InternalError)


# Exchange ids per request-check task: one task for a proxy batch, a few for an ingest batch.
REQUEST_CHECK_CHUNK = 1000


@dataclass
class RecordSummary:
    stored: int = 0
    duplicates: int = 0
    exchange_ids: list[int] = field(default_factory=list)


def exchanges_record(
    *, upstream: Upstream, captured: list[CapturedExchange], source: str, dedupe: bool = False
) -> RecordSummary:
    """Mask, identify and store a batch in one transaction; once it commits, queue the request check
    (the `request_check` task) for the exchanges it stored.

    An exchange whose capture key the upstream already holds was stored by an earlier try of the same
    batch: it is counted as a duplicate, never stored twice. With `dedupe`, so is an exchange whose
    content hash is already stored for the upstream (or repeats one of the batch): ingest and HAR
    import may send the same traffic twice; the proxy records every call, since repeated calls are
    real traffic.
    """
    built = [exchange_build(upstream=upstream, captured=item, source=source) for item in captured]
    summary = RecordSummary()
    if dedupe:
        built = _unseen(built, "content_hash", content_hashes_stored, upstream=upstream, summary=summary)
    if not built:
        return summary
    with transaction.atomic():
        # Read inside the transaction that inserts: the unique constraint refuses a key another
        # writer stores meanwhile, and the caller's retry then finds it here.
        built = _unseen(built, "capture_key", capture_keys_stored, upstream=upstream, summary=summary)
        if not built:
            return summary
        clients = clients_resolve(
            upstream=upstream, seen=[(identity, exchange) for exchange, identity in built]
        )
        exchanges = []
        for exchange, identity in built:
            # The id and the relation's cache: the descriptor's checks cost more than the rest of the row.
            client = clients[identity.identity]
            exchange.client_id = client.pk
            Exchange.client.field.set_cached_value(exchange, client)
            exchanges.append(exchange)
        rows_insert(Exchange, exchanges)
        traffic_days_add(upstream=upstream, exchanges=exchanges)
        stored_ids = [exchange.pk for exchange in exchanges]
        transaction.on_commit(lambda: request_check_queue(exchange_ids=stored_ids), robust=True)
    summary.stored = len(exchanges)
    summary.exchange_ids = stored_ids
    return summary


def _unseen(built, attribute: str, stored, *, upstream: Upstream, summary: RecordSummary) -> list:
    """The built exchanges whose `attribute` the upstream does not hold yet and no earlier one of the
    batch has; the others are counted as duplicates."""
    known = stored(upstream=upstream, hashes={getattr(exchange, attribute) for exchange, _ in built})
    unseen = []
    for exchange, identity in built:
        value = getattr(exchange, attribute)
        if value in known:
            summary.duplicates += 1
            continue
        known.add(value)
        unseen.append((exchange, identity))
    return unseen


def request_check_queue(*, exchange_ids: list[int]) -> None:
    """Queue the diff stage's request check for stored exchanges, in chunks; capture never waits for it."""
    from migrations_audit.tasks import request_check

    for start in range(0, len(exchange_ids), REQUEST_CHECK_CHUNK):
        request_check.delay(exchange_ids[start : start + REQUEST_CHECK_CHUNK])


def recorder_totals_record(*, recorder: str, started_at: datetime, totals: dict[int, dict[str, int]]) -> None:
    """Store a proxy recorder's running totals per upstream pk ({"recorded", "dropped", "failed"}).

    Totals, not increments: writing the same totals twice (a retry after a lost reply) changes nothing."""
    now = timezone.now()
    for upstream_pk in Upstream.objects.filter(pk__in=totals).values_list("pk", flat=True):
        RecorderTotals.objects.update_or_create(
            upstream_id=upstream_pk,
            recorder=recorder,
            defaults={**totals[upstream_pk], "updated_at": now},
            create_defaults={**totals[upstream_pk], "updated_at": now, "started_at": started_at},
        )


def content_hashes_stored(*, upstream: Upstream, hashes: set[str]) -> set[str]:
    """Which of these content hashes the upstream already has, in one query."""
    return _values_stored(upstream=upstream, column="content_hash", values=hashes)


def capture_keys_stored(*, upstream: Upstream, hashes: set[str]) -> set[str]:
    """Which of these capture keys the upstream already has, in one query."""
    return _values_stored(upstream=upstream, column="capture_key", values=hashes)


def _values_stored(*, upstream: Upstream, column: str, values: set[str]) -> set[str]:
    db = connections[router.db_for_read(Exchange)]
    if db.vendor != "postgresql" or not values:
        return set(
            Exchange.objects.filter(upstream=upstream, **{f"{column}__in": values}).values_list(
                column, flat=True
            )
        )
    # The values as one text parameter that the server splits: binding thousands of separate
    # parameters cost more than the lookup itself (keys and hashes are hex: never a space).
    quote = db.ops.quote_name
    upstream_column = quote(Exchange._meta.get_field("upstream").column)
    value_column = quote(Exchange._meta.get_field(column).column)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {value_column} FROM {quote(Exchange._meta.db_table)} "  # noqa: S608
            f"WHERE {upstream_column} = %s AND {value_column} = ANY(string_to_array(%s, ' '))",
            [upstream.pk, " ".join(values)],
        )
        return {value for (value,) in cursor.fetchall()}


def traffic_days_add(*, upstream: Upstream, exchanges: list[Exchange]) -> None:
    """Count a batch into the daily rollup: one upsert for all the (day, endpoint, version, client) it
    touches, which adds to a row another writer may be adding to at the same time."""
    zone = timezone.get_current_timezone()  # looked up once: a context-local read per row adds up
    counts = Counter(
        (timezone.localdate(item.started_at, zone), item.endpoint, item.api_version, item.client_id)
        for item in exchanges
    )
    # Sorted: two writers lock the rows they share in the same order, so they cannot deadlock.
    with_client = sorted(item for item in counts.items() if item[0][3] is not None)
    for start in range(0, len(with_client), TRAFFIC_DAYS_PER_UPSERT):
        _traffic_days_upsert(
            upstream_id=upstream.pk, counts=with_client[start : start + TRAFFIC_DAYS_PER_UPSERT]
        )
    # Rows without a client are outside the unique constraint, so an upsert would only ever insert.
    for (day, endpoint, version, client_id), count in counts.items():
        if client_id is not None:
            continue
        key = {"upstream": upstream, "day": day, "endpoint": endpoint, "api_version": version, "client": None}
        if not TrafficDay.objects.filter(**key).update(count=F("count") + count):
            TrafficDay.objects.create(**key, count=count)


def _traffic_days_upsert(*, upstream_id: int, counts: list[tuple[tuple, int]]) -> None:
    quote = connection.ops.quote_name
    table = quote(TrafficDay._meta.db_table)
    names = ["upstream", "day", "endpoint", "api_version", "client", "count"]
    fields = [TrafficDay._meta.get_field(name) for name in names]
    columns = ", ".join(quote(field.column) for field in fields)
    unique = ", ".join(quote(field.column) for field in fields[:-1])
    count_column = quote(fields[-1].column)
    params = []
    for key, count in counts:
        values = zip(fields, (upstream_id, *key, count), strict=True)
        params.extend(field.get_db_prep_save(value, connection) for field, value in values)
    rows = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(counts))
    with connection.cursor() as cursor:
        cursor.execute(
            # Only names from the model's meta are formatted in; every value is a parameter.
            f"INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT ({unique}) "  # noqa: S608
            f"DO UPDATE SET {count_column} = {table}.{count_column} + EXCLUDED.{count_column}",
            params,
        )


def _clients_rekey(*, upstream: Upstream, renames: dict[str, str]) -> None:
    """Clients known by a fingerprint under a previous key take the current key's fingerprint, so
    rotating the fingerprint key keeps every client who it was."""
    current = set(
        Client.objects.filter(upstream=upstream, identity__in=set(renames.values())).values_list(
            "identity", flat=True
        )
    )
    for client_id, old in Client.objects.filter(upstream=upstream, identity__in=renames).values_list(
        "pk", "identity"
    ):
        new = renames[old]
        if new not in current:
            Client.objects.filter(pk=client_id).update(identity=new)
            current.add(new)


def clients_resolve(*, upstream: Upstream, seen: list[tuple[ClientIdentity, Exchange]]) -> dict[str, Client]:
    """The Client row of each identity in a batch, created on first sight, with first/last seen kept."""
    times: dict[str, list] = {}
    kinds: dict[str, str] = {}
    renames: dict[str, str] = {}
    for identity, exchange in seen:
        times.setdefault(identity.identity, []).append(exchange.started_at)
        kinds[identity.identity] = identity.kind
        renames.update(dict.fromkeys(identity.previous, identity.identity))
    if renames:
        _clients_rekey(upstream=upstream, renames=renames)
    Client.objects.bulk_create(
        [
            Client(
                upstream=upstream,
                kind=kinds[identity],
                identity=identity,
                first_seen_at=min(stamps),
                last_seen_at=max(stamps),
            )
            for identity, stamps in times.items()
        ],
        ignore_conflicts=True,
    )
    clients = {
        client.identity: client for client in Client.objects.filter(upstream=upstream, identity__in=times)
    }
    for identity, stamps in times.items():
        client = clients[identity]
        if client.last_seen_at is None or client.last_seen_at < max(stamps):
            Client.objects.filter(pk=client.pk).update(last_seen_at=max(stamps))
        if client.first_seen_at is None or client.first_seen_at > min(stamps):
            Client.objects.filter(pk=client.pk).update(first_seen_at=min(stamps))
    return clients
