"""Turn one finished request/response into an unsaved Exchange: masked, identified, hashed.

Every entry point (proxy, ingest, HAR) builds its rows here, so that masking and client identity
work the same way whatever the source.
"""

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from migrations_audit.models import Client, Exchange, Upstream
from migrations_audit.secrets import (
    api_key_from_headers,
    key_fingerprint,
    key_fingerprints_previous,
    mask_message,
    mask_query,
    mask_text,
)
from migrations_audit.sse import parse_sse, stream_malformation
from migrations_audit.tracking.sdk import sdk_describe

CLIENT_HEADER = "x-audit-client"
# Headers of one hop only: never forwarded, never compared.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class CapturedExchange:
    """What any entry point saw of one exchange, before masking."""

    method: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    started_at: datetime
    query: str = ""
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    streamed: bool = False
    # Parsed events with their arrival times, when the entry point timed them (the proxy does).
    response_events: list[dict] | None = None
    duration_ms: float | None = None
    first_byte_ms: float | None = None
    error: str = ""
    # The exchange's idempotency key, made once by its entry point (a uuid unless it sets one): every
    # retry of its recording carries the same key, and the upstream stores each key once.
    capture_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Only the first MIGRATION_AUDIT_RECORD_MAX_BYTES of the response were kept.
    truncated: bool = False


@dataclass(frozen=True)
class ClientIdentity:
    kind: str
    identity: str
    # The same key's fingerprints under previous fingerprint keys (see secrets.key_fingerprint).
    previous: tuple[str, ...] = ()


def client_identity(headers: dict[str, str]) -> ClientIdentity:
    """X-Audit-Client if the client declares itself, else the keyed fingerprint of its API key."""
    lowered = {name.lower(): value for name, value in headers.items()}
    declared = lowered.get(CLIENT_HEADER, "").strip()
    if declared:
        return ClientIdentity(Client.Kind.DECLARED, declared[:200])
    key = api_key_from_headers(lowered)
    if key:
        return ClientIdentity(Client.Kind.KEY, key_fingerprint(key), key_fingerprints_previous(key))
    return ClientIdentity(Client.Kind.ANONYMOUS, "anonymous")


def content_hash(*, method: str, path: str, body: bytes, version: str) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), version.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def is_event_stream(headers: dict[str, str]) -> bool:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower() == "text/event-stream"


def exchange_build(
    *, upstream: Upstream, captured: CapturedExchange, source: str
) -> tuple[Exchange, ClientIdentity]:
    """An unsaved Exchange (client to be resolved by the caller) with every secret masked."""
    request = mask_message(headers=captured.request_headers, body=captured.request_body)
    request_headers = {name: value for name, value in request.headers.items() if name not in HOP_BY_HOP}
    identity = client_identity(captured.request_headers)
    request_headers.pop(CLIENT_HEADER, None)
    streamed = captured.streamed or is_event_stream(
        {name.lower(): value for name, value in captured.response_headers.items()}
    )
    events = captured.response_events
    if streamed and events is None:
        events = [event.as_dict() for event in parse_sse(captured.response_body)]
    response = mask_message(headers=captured.response_headers, body=captured.response_body, events=events)
    response_headers = {name: value for name, value in response.headers.items() if name not in HOP_BY_HOP}
    events = response.events
    version = request_headers.get(upstream.version_header, "")[:50]
    path = mask_text(captured.path)[:500]
    request_body = request.body
    exchange = _exchange_new(
        upstream=upstream,
        source=source,
        started_at=captured.started_at,
        method=captured.method.upper()[:10],
        path=path,
        query=mask_query(captured.query)[:2000],
        endpoint=f"{captured.method.upper()} {path}"[:520],
        api_version=version,
        user_agent=request_headers.get("user-agent", "")[:300],
        sdk=sdk_describe(headers=request.headers)[:100],
        request_headers=request_headers,
        request_body=request_body,
        status=captured.status,
        response_headers=response_headers,
        response_body=response.body,
        streamed=streamed,
        response_events=events or [],
        duration_ms=captured.duration_ms,
        first_byte_ms=captured.first_byte_ms,
        # A stream cut at the recording limit lacks its end: not a malformation of the upstream's.
        error=mask_text(
            captured.error
            or (stream_malformation(events or []) if streamed and not captured.truncated else "")
        )[:500],
        content_hash=content_hash(method=captured.method, path=path, body=request_body, version=version),
        capture_key=captured.capture_key[:64],
        truncated=captured.truncated,
    )
    return exchange, identity


def _exchange_new(*, upstream: Upstream, **values) -> Exchange:
    """Exchange(upstream=upstream, **values), built the way Django builds the rows it loads.

    Positional arguments in field order, and the upstream put straight into the relation's cache:
    keyword arguments and the foreign-key descriptor were half the cost of building a row, and
    ingest builds thousands a second.
    """
    values["upstream_id"] = upstream.pk
    exchange = Exchange(
        *[
            values.pop(field.attname) if field.attname in values else field.get_default()
            for field in Exchange._meta.concrete_fields
        ]
    )
    if values:
        raise TypeError(f"Exchange has no field {', '.join(values)}")
    Exchange.upstream.field.set_cached_value(exchange, upstream)
    return exchange
