"""Store captured exchanges: one place for every entry point (proxy, ingest, HAR)."""

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
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
from migrations_audit.diff.services import request_findings_record
from migrations_audit.models import Client, Exchange, HarImport, RecorderTotals, TrafficDay, Upstream

from . import tasks
from .recording import CapturedExchange, ClientIdentity, exchange_build

logger = logging.getLogger(__name__)
# Six parameters a row: well under SQLite's and PostgreSQL's limits on parameters per statement.
TRAFFIC_DAYS_PER_UPSERT = 1000
# The database being away (refused or reset connections, a locked SQLite file, a read-only failover):
# worth trying again later. Any other error comes from what is being stored, and trying again would
# fail the same way.
DATABASE_OUTAGE_ERRORS = (OperationalError, InterfaceError, InternalError)


@dataclass
class RecordSummary:
    stored: int = 0
    duplicates: int = 0


def exchanges_record(
    *, upstream: Upstream, captured: list[CapturedExchange], source: str, dedupe: bool = False
) -> RecordSummary:
    """Mask, identify and store a batch in one transaction, then check it against the target's rules.

    With `dedupe`, an exchange whose content hash is already stored for the upstream (or repeats one of
    the batch) is counted, not stored: ingest and HAR import may send the same traffic twice; the proxy
    records every call, since repeated calls are real traffic.
    """
    built = [exchange_build(upstream=upstream, captured=item, source=source) for item in captured]
    summary = RecordSummary()
    if dedupe:
        known = content_hashes_stored(
            upstream=upstream, hashes={exchange.content_hash for exchange, _ in built}
        )
        unique = []
        for exchange, identity in built:
            if exchange.content_hash in known:
                summary.duplicates += 1
                continue
            known.add(exchange.content_hash)
            unique.append((exchange, identity))
        built = unique
    if not built:
        return summary
    with transaction.atomic():
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
    summary.stored = len(exchanges)
    try:
        with transaction.atomic():
            request_findings_record(exchanges=exchanges)
    except Exception:
        # The exchanges are stored: raising would make a caller store them again.
        logger.exception("checking %d stored exchanges against the request rules failed", len(exchanges))
    return summary


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
    db = connections[router.db_for_read(Exchange)]
    if db.vendor != "postgresql" or not hashes:
        return set(
            Exchange.objects.filter(upstream=upstream, content_hash__in=hashes).values_list(
                "content_hash", flat=True
            )
        )
    # The hashes as one text parameter that the server splits: binding thousands of separate
    # parameters cost more than the lookup itself.
    quote = db.ops.quote_name
    upstream_column = quote(Exchange._meta.get_field("upstream").column)
    hash_column = quote(Exchange._meta.get_field("content_hash").column)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {hash_column} FROM {quote(Exchange._meta.db_table)} "  # noqa: S608
            f"WHERE {upstream_column} = %s AND {hash_column} = ANY(string_to_array(%s, ' '))",
            [upstream.pk, " ".join(hashes)],
        )
        return {content_hash for (content_hash,) in cursor.fetchall()}


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


def har_import_queue(*, upstream: Upstream, uploaded, created_by=None) -> HarImport:
    """Keep an uploaded HAR file under MEDIA_ROOT and queue its import; the page polls the job."""
    target = Path(settings.MEDIA_ROOT) / "har" / f"{uuid.uuid4().hex}.har"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    job = HarImport.objects.create(
        upstream=upstream,
        created_by=created_by,
        filename=uploaded.name[:255],
        stored_path=str(target),
        bytes_total=target.stat().st_size,
    )
    transaction.on_commit(lambda: tasks.har_import_run.delay(job.pk))
    return job


def har_import_run(*, job_id: int) -> HarImport:
    """Import a queued HAR file, updating the job's progress as it streams. Safe to run twice; the job
    always ends done or failed, and the uploaded file is deleted either way."""
    from .ingest import IngestError, har_import

    claimed = HarImport.objects.filter(pk=job_id, state=HarImport.State.QUEUED).update(
        state=HarImport.State.RUNNING
    )
    job = HarImport.objects.get(pk=job_id)
    if not claimed:
        if job.state == HarImport.State.RUNNING:
            # Delivered again while it says it is running: the worker that ran it was lost (killed, out
            # of memory). Trying the same file again could lose the next one; the job says so instead.
            _har_import_fail(job, "the import stopped: its worker was lost; nothing was imported")
            Path(job.stored_path).unlink(missing_ok=True)
            job.refresh_from_db()
        return job

    def progress(update):
        HarImport.objects.filter(pk=job_id).update(
            bytes_done=update.bytes_done,
            stored=update.summary.accepted,
            duplicates=update.summary.duplicates,
            rejected=update.summary.rejected,
            skipped=update.summary.skipped,
        )

    try:
        with open(job.stored_path, "rb") as stream:
            summary = har_import(upstream=job.upstream, stream=stream, on_progress=progress)
    except (IngestError, OSError) as error:
        _har_import_fail(job, str(error))
    except Exception as error:
        # Whatever it was, the job says it failed rather than "Importing" for ever. Only the type is
        # kept and logged: a message or a traceback's may quote the file, and the file may hold keys.
        logger.error("HAR import %d failed: %s", job_id, type(error).__name__)
        _har_import_fail(job, f"the import failed ({type(error).__name__}); nothing was imported")
    else:
        HarImport.objects.filter(pk=job_id).update(
            state=HarImport.State.DONE,
            bytes_done=job.bytes_total,
            stored=summary.accepted,
            duplicates=summary.duplicates,
            rejected=summary.rejected,
            skipped=summary.skipped,
            error="\n".join(f"entry {r['line']}: {r['reason']}" for r in summary.rejections[:50]),
            finished_at=timezone.now(),
        )
    finally:
        # Imported or failed, the upload goes: it holds the clients' raw keys.
        Path(job.stored_path).unlink(missing_ok=True)
    job.refresh_from_db()
    return job


def _har_import_fail(job: HarImport, message: str) -> None:
    HarImport.objects.filter(pk=job.pk).update(
        state=HarImport.State.FAILED, error=message, finished_at=timezone.now(), stored=0
    )
