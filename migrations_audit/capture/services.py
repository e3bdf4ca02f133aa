"""Store captured exchanges: one place for every entry point (proxy, ingest, HAR)."""

from dataclasses import dataclass

from django.db import transaction

from migrations_audit.diff.services import request_findings_record
from migrations_audit.models import Client, Exchange, Upstream

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
    summary.stored = len(exchanges)
    request_findings_record(exchanges=exchanges)
    return summary


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
