"""Store captured exchanges: one place for every entry point (proxy, ingest, HAR)."""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from migrations_audit.diff.services import request_findings_record
from migrations_audit.models import Client, Exchange, HarImport, RecorderTotals, TrafficDay, Upstream

from .recording import CapturedExchange, ClientIdentity, exchange_build


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
        known = set(
            Exchange.objects.filter(
                upstream=upstream, content_hash__in={exchange.content_hash for exchange, _ in built}
            ).values_list("content_hash", flat=True)
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
            exchange.client = clients[identity.identity]
            exchanges.append(exchange)
        Exchange.objects.bulk_create(exchanges, batch_size=500)
        traffic_days_add(upstream=upstream, exchanges=exchanges)
    summary.stored = len(exchanges)
    request_findings_record(exchanges=exchanges)
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


def traffic_days_add(*, upstream: Upstream, exchanges: list[Exchange]) -> None:
    """Count a batch into the daily rollup: one UPDATE per (day, endpoint, version, client) it touches."""
    counts = Counter(
        (timezone.localdate(exchange.started_at), exchange.endpoint, exchange.api_version, exchange.client_id)
        for exchange in exchanges
    )
    for (day, endpoint, version, client_id), count in counts.items():
        key = {
            "upstream": upstream,
            "day": day,
            "endpoint": endpoint,
            "api_version": version,
            "client_id": client_id,
        }
        if not TrafficDay.objects.filter(**key).update(count=F("count") + count):
            try:
                with transaction.atomic():
                    TrafficDay.objects.create(**key, count=count)
            except IntegrityError:  # created meanwhile by another writer: add to it
                TrafficDay.objects.filter(**key).update(count=F("count") + count)


def clients_resolve(*, upstream: Upstream, seen: list[tuple[ClientIdentity, Exchange]]) -> dict[str, Client]:
    """The Client row of each identity in a batch, created on first sight, with first/last seen kept."""
    times: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for identity, exchange in seen:
        times.setdefault(identity.identity, []).append(exchange.started_at)
        kinds[identity.identity] = identity.kind
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
    from celery import current_app

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
    transaction.on_commit(
        lambda: current_app.send_task("migrations_audit.tasks.har_import_run", args=[job.pk])
    )
    return job


def har_import_run(*, job_id: int) -> HarImport:
    """Import a queued HAR file, updating the job's progress as it streams. Safe to run twice."""
    from .ingest import IngestError, har_import

    claimed = HarImport.objects.filter(pk=job_id, state=HarImport.State.QUEUED).update(
        state=HarImport.State.RUNNING
    )
    job = HarImport.objects.get(pk=job_id)
    if not claimed:
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
        HarImport.objects.filter(pk=job_id).update(
            state=HarImport.State.FAILED, error=str(error), finished_at=timezone.now(), stored=0
        )
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
    Path(job.stored_path).unlink(missing_ok=True)
    job.refresh_from_db()
    return job
