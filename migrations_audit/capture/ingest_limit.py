"""The ingest API's request size, held at the ASGI door.

Django's ASGI handler reads a whole request body (to a temporary file) before any view runs, so a
view cannot refuse a body that is too large before it has been taken in. This wrapper answers 413 as
soon as the declared length, or the bytes received, pass `MIGRATION_AUDIT_MAX_INGEST_BYTES`.
"""

import json

from django.conf import settings
from django.urls import Resolver404, resolve

INGEST_URL_NAME = "api_ingest"


def ingest_size_limited(app):
    async def application(scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not _is_ingest(scope["path"]):
            await app(scope, receive, send)
            return
        limit = settings.MIGRATION_AUDIT_MAX_INGEST_BYTES
        if _declared_length(scope) > limit:
            await _send_too_large(send, limit)
            return
        received, too_large, started = 0, False, False

        async def limited_receive():
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # Django stops reading at a disconnect, without a response; we answer for it.
                too_large = True
                return {"type": "http.disconnect"}
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await app(scope, limited_receive, watched_send)
        if too_large and not started:
            await _send_too_large(send, limit)

    return application


def _is_ingest(path: str) -> bool:
    if not path.startswith("/api/"):
        return False
    try:
        return resolve(path).url_name == INGEST_URL_NAME
    except Resolver404:
        return False


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _send_too_large(send, limit: int) -> None:
    message = f"The body is larger than {limit} bytes (MIGRATION_AUDIT_MAX_INGEST_BYTES): send it in parts."
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
