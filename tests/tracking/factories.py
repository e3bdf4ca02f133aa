"""Exchange rows stored the way capture stores them: lowercased headers, the key as a fingerprint."""

import hashlib
import json
from datetime import timedelta

from django.utils import timezone

from migrations_audit.capture.recording import ClientIdentity
from migrations_audit.capture.services import clients_resolve, traffic_days_add
from migrations_audit.diff.services import request_findings_record
from migrations_audit.models import Client, Exchange
from migrations_audit.secrets import api_key_from_headers, key_fingerprint, mask_headers
from migrations_audit.tracking.sdk import sdk_describe

# What each real SDK release sends (recorded from anthropic==0.2.10, 0.125.0, 1.17.0 and 2.13.0).
SDK_HEADERS = {
    "0.2.10": {
        "User-Agent": "python-requests/2.34.2",
        "Anthropic-SDK": "anthropic-python/0.2.10",
        "Anthropic-Version": "2023-01-01",
        "X-API-Key": "{key}",
        "Content-Type": "application/json",
    },
    "0.125.0": {
        "User-Agent": "Anthropic/Python 0.125.0",
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": "0.125.0",
        "X-Api-Key": "{key}",
        "anthropic-version": "2023-06-01",
        "Content-Type": "application/json",
    },
    "1.17.0": {
        "User-Agent": "Anthropic/Python 1.17.0",
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": "1.17.0",
        "X-Api-Key": "{key}",
        "anthropic-version": "2023-06-01",
        "Content-Type": "application/json",
    },
    "2": {
        "User-Agent": "Anthropic/Python 2.13.0",
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": "2.13.0",
        "Authorization": "Bearer {key}",
        "anthropic-version": "2026-10-21",
        "Content-Type": "application/json",
    },
    "js": {
        "User-Agent": "Anthropic/JS 0.30.1",
        "X-Stainless-Lang": "js",
        "X-Stainless-Package-Version": "0.30.1",
        "X-Api-Key": "{key}",
        "anthropic-version": "2023-06-01",
        "Content-Type": "application/json",
    },
}


def exchange_store(
    *,
    upstream,
    headers: dict,
    body: dict,
    path: str = "/v1/messages",
    status: int = 200,
    started_at=None,
    streamed: bool | None = None,
) -> Exchange:
    """Store one exchange as capture does: identify the client by its key's fingerprint."""
    started_at = started_at or timezone.now()
    key = api_key_from_headers(headers)
    masked = mask_headers(headers)
    raw = json.dumps(body).encode()
    version = masked.get(upstream.version_header, "")
    exchange = Exchange(
        upstream=upstream,
        started_at=started_at,
        method="POST",
        path=path,
        endpoint=f"POST {path}",
        api_version=version,
        user_agent=masked.get("user-agent", ""),
        sdk=sdk_describe(headers=masked),
        request_headers=masked,
        request_body=raw,
        status=status,
        streamed=bool(body.get("stream")) if streamed is None else streamed,
        content_hash=hashlib.sha256(raw + version.encode() + started_at.isoformat().encode()).hexdigest(),
    )
    identity = ClientIdentity(kind=Client.Kind.KEY, identity=key_fingerprint(key))
    exchange.client = clients_resolve(upstream=upstream, seen=[(identity, exchange)])[identity.identity]
    exchange.save()
    traffic_days_add(upstream=upstream, exchanges=[exchange])  # the daily rollup, as capture keeps it
    # Capture checks each request against the target version's request rules as it stores it.
    request_findings_record(exchanges=[exchange])
    return exchange


def sdk_traffic(
    *,
    upstream,
    release: str,
    key: str,
    days_ago: list[int],
    body: dict | None = None,
    status: int = 200,
    path: str = "/v1/messages",
    version: str | None = None,
    per_day: int = 1,
) -> list[Exchange]:
    """Traffic of one client (one key) running an SDK release, a few requests on each of some days."""
    headers = {name: value.format(key=key) for name, value in SDK_HEADERS[release].items()}
    if version is not None:
        headers = {name: value for name, value in headers.items() if name.lower() != "anthropic-version"}
        headers["anthropic-version"] = version
    body = body or {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    now = timezone.now()
    return [
        exchange_store(
            upstream=upstream,
            headers=headers,
            body=body,
            path=path,
            status=status,
            started_at=now - timedelta(days=days, minutes=n),
        )
        for days in days_ago
        for n in range(per_day)
    ]
