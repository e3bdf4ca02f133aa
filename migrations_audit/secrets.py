"""Keep secrets out of storage: keyed fingerprints of API keys, masking of headers and JSON fields.

Every entry point (proxy, ingest, HAR import, replay) passes headers and bodies through here before
anything is written, so that no API key or token ever reaches the database, a log or a page.
"""

import functools
import hashlib
import hmac
import json
import re

from django.conf import settings

from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth

MASK = "[masked]"
# Stored instead of a JSON body that names a secret field and nests too deep to mask.
TOO_DEEP_BODY = b"[masked: a JSON body nested deeper than MIGRATION_AUDIT_MAX_JSON_DEPTH]"
# Headers that carry the API key itself: stored only as its fingerprint.
KEY_HEADERS = ("x-api-key", "authorization")


def key_fingerprint(api_key: str, *, under: str | None = None) -> str:
    """HMAC-SHA256 of the key under the current fingerprint key (or `under`): stable per key, and
    the key can't be recovered."""
    secret = under if under is not None else settings.MIGRATION_AUDIT_FINGERPRINT_KEYS[0]
    digest = hmac.new(secret.encode(), api_key.encode(), hashlib.sha256).hexdigest()
    return f"fp_{digest[:32]}"


def key_fingerprints_previous(api_key: str) -> tuple[str, ...]:
    """The key's fingerprints under the previous fingerprint keys, to recognise a client first seen
    before the current key was set."""
    return tuple(key_fingerprint(api_key, under=old) for old in settings.MIGRATION_AUDIT_FINGERPRINT_KEYS[1:])


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
    secret_headers = _lowered(tuple(settings.MIGRATION_AUDIT_SECRET_HEADERS))
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
    return _mask(value, _lowered(tuple(settings.MIGRATION_AUDIT_SECRET_FIELDS)))


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
    if not _may_name_a_secret_field(body):
        return body
    try:
        decoded = json.loads(body)
    except ValueError:
        return body
    except RecursionError:  # nested past the parser's stack: it may hide a secret field anywhere
        return TOO_DEEP_BODY
    limit = max_json_depth()
    if json_text_may_nest_deeper(body, limit) and json_nests_deeper(decoded, limit):
        # Masking walks the value recursively; past the depth, keep no part of a body that may name a
        # secret field rather than store one unmasked.
        return TOO_DEEP_BODY
    masked = mask_json_fields(decoded)
    if masked == decoded:
        return body
    return json.dumps(masked, ensure_ascii=False).encode()


def mask_truncated_body(body: bytes) -> bytes:
    """The start of a body cut at the recording limit. JSON cut short does not parse, so its secret
    fields cannot be masked: it is kept only when no key in it can be one."""
    if not body or body.lstrip()[:1] not in (b"{", b"["):
        return body
    # A cut may fall inside a UTF-8 sequence: that is not a reason to drop the body.
    probe = body[:-4] + body[-4:].decode("utf-8", "ignore").encode()
    return b"" if _may_name_a_secret_field(probe) else body


@functools.cache
def _lowered(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.lower() for name in names)


def _may_name_a_secret_field(body: bytes) -> bool:
    """False only when no key of the JSON text can be a secret field: then it need not be decoded.

    Without \\u escapes, a key appears in the text as it is, quoted and followed by a colon, and a
    case-insensitive search finds it (Unicode-aware for text that is not ASCII, since the Kelvin sign
    lowers to "k"). A body this cannot rule out is decoded and checked field by field.
    """
    pattern = _secret_key_pattern(tuple(settings.MIGRATION_AUDIT_SECRET_FIELDS))
    # A NUL byte may mean UTF-16 or UTF-32, which json.loads detects and decodes.
    if pattern is None or b"\\u" in body or b"\x00" in body:
        return True
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return pattern.search(text) is not None


@functools.cache
def _secret_key_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in names):
        return None  # a name no simple pattern can stand for: decode every body
    if not names:
        return re.compile(r"(?!)")  # nothing to mask
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"\"(?:{alternatives})\"\s*:", re.IGNORECASE)
