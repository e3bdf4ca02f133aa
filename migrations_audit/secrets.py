"""Keep secrets out of storage: keyed fingerprints of API keys, masking of headers and JSON fields.

Every entry point (proxy, ingest, HAR import, replay) passes headers and bodies through here before
anything is written, so that no API key or token ever reaches the database, a log or a page.
"""

import hashlib
import hmac
import json

from django.conf import settings

MASK = "[masked]"
# Headers that carry the API key itself: stored only as its fingerprint.
KEY_HEADERS = ("x-api-key", "authorization")


def key_fingerprint(api_key: str) -> str:
    """HMAC-SHA256 of the key under the server's secret: stable per key, and the key can't be recovered."""
    digest = hmac.new(settings.SECRET_KEY.encode(), api_key.encode(), hashlib.sha256).hexdigest()
    return f"fp_{digest[:32]}"


def api_key_from_headers(headers: dict[str, str]) -> str | None:
    """The key a client sent, as the API reads it: `x-api-key` wins over `Authorization: Bearer`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if lowered.get("x-api-key"):
        return lowered["x-api-key"].strip()
    authorization = lowered.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Lower-cased headers with key headers fingerprinted and other secret headers masked."""
    secret_headers = {name.lower() for name in settings.MIGRATION_AUDIT_SECRET_HEADERS}
    masked = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in KEY_HEADERS:
            key = api_key_from_headers({lowered: value})
            masked[lowered] = key_fingerprint(key) if key else MASK
        elif lowered in secret_headers:
            masked[lowered] = MASK
        else:
            masked[lowered] = value
    return masked


def mask_json_fields(value):
    """A copy of a decoded JSON value with the configured secret fields masked at any depth."""
    secret_fields = {name.lower() for name in settings.MIGRATION_AUDIT_SECRET_FIELDS}
    return _mask(value, secret_fields)


def _mask(value, secret_fields):
    if isinstance(value, dict):
        return {
            key: MASK
            if key.lower() in secret_fields and value[key] not in (None, "")
            else _mask(item, secret_fields)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item, secret_fields) for item in value]
    return value


def mask_body(body: bytes) -> bytes:
    """The body with secret JSON fields masked; a body that is not JSON is kept as it is."""
    if not body or body.lstrip()[:1] not in (b"{", b"["):
        return body
    try:
        decoded = json.loads(body)
    except ValueError:
        return body
    masked = mask_json_fields(decoded)
    if masked == decoded:
        return body
    return json.dumps(masked, ensure_ascii=False).encode()
