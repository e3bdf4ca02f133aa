"""Keep secrets out of storage: keyed fingerprints of API keys, masking of everything else secret.

Every entry point (proxy, ingest, HAR import) and the replay pass what they store through here
before anything is written (`mask_message` for headers, body and stream events, `mask_query`,
`mask_text`), so that no API key or token ever reaches the database, a log or a page. Three nets:

- by name: key headers become a keyed fingerprint; other secret headers, JSON fields, query
  parameters and form fields are masked (`MIGRATION_AUDIT_SECRET_HEADERS`, `..._SECRET_FIELDS`);
- by shape: anything that looks like a known key format (`sk-ant-...`, `AKIA...`, a Bearer token...)
  is masked wherever it appears, in a body that parses or not, a query string or a header value;
- by structure, without trusting a parser: JSON with a duplicated key is written again with one
  value per key, and JSON that does not parse (truncated, a stray comma) is masked as text.
"""

import functools
import gzip
import hashlib
import hmac
import json
import logging
import re
import zlib
from dataclasses import dataclass
from urllib.parse import unquote_plus

import brotli
import zstandard
from django.conf import settings

from migrations_audit.content_encoding import body_decode, content_encoding
from migrations_audit.json_depth import json_nests_deeper, json_text_may_nest_deeper, max_json_depth

MASK = "[masked]"
_MASK_BYTES = MASK.encode()
# Stored instead of a JSON body that names a secret field and nests too deep to mask.
TOO_DEEP_BODY = b"[masked: a JSON body nested deeper than MIGRATION_AUDIT_MAX_JSON_DEPTH]"
# Headers that carry the API key itself: stored only as its fingerprint (it identifies a client).
KEY_HEADERS = ("x-api-key", "authorization", "anthropic-api-key", "x-goog-api-key", "api-key")
# A header named like these is secret whatever the settings say (x-amz-security-token, x-foo-api-key).
_SECRET_HEADER_SUFFIXES = ("-api-key", "-apikey", "-token", "-secret", "-password")
# json.dumps(value, ensure_ascii=False), without building an encoder for every body.
_JSON_TEXT = json.JSONEncoder(ensure_ascii=False)

# Known key formats, as regular expressions that each start with a literal (one per first letter):
# the search for a literal runs in C at a few bytes a nanosecond, where one expression of every
# format, or one that starts with a set of characters, tries each at every position: three to a
# hundred times slower on a 40 KB stream. A key starts where no letter or digit precedes it
# ("task-..." holds no "sk-").
_KEY_FORMATS = (
    # Anthropic; OpenAI (sk-, sk-proj-, sk-svcacct-) and the many APIs that copied it; Stripe secret
    # keys; then Stripe restricted keys and webhook secrets.
    r"sk(?:-ant-[A-Za-z0-9_-]{8,}|-[A-Za-z0-9_-]{20,}|_(?:live|test)_[A-Za-z0-9]{8,})",
    r"rk_(?:live|test)_[A-Za-z0-9]{8,}",
    r"whsec_[A-Za-z0-9]{16,}",
    # AWS access key ids (long-lived and temporary); Google API keys.
    r"A(?:KIA[A-Z0-9]{16,}|SIA[A-Z0-9]{16,}|Iza[0-9A-Za-z_-]{35,})",
    # GitHub tokens (classic and fine-grained); GitLab.
    r"g(?:h[pousr]_[A-Za-z0-9]{20,}|ithub_pat_[A-Za-z0-9_]{20,}|lpat-[A-Za-z0-9_-]{20,})",
    r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JSON Web Tokens
)
# "Bearer <token>": the token is masked (one with a digit, so that "bearer instruments" is kept).
_BEARER = r"earer ((?=[A-Za-z._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*)"


class _KeyScanner:
    """Finds and masks key-shaped strings in text, str or bytes alike."""

    def __init__(self, encode):
        self.formats = [re.compile(encode(source)) for source in _KEY_FORMATS]
        self.bearer = re.compile(encode(_BEARER))
        self.capitals = (encode("B"), encode("b"))
        self.mask_value = encode(MASK)

    def spans(self, text) -> list[tuple[int, int]]:
        spans = []
        for pattern in self.formats:
            first = pattern.search(text)  # most texts hold none: one search, no iterator
            if first is not None:
                spans += [
                    match.span()
                    for match in pattern.finditer(text, first.start())
                    if not text[match.start() - 1 : match.start()].isalnum()
                ]
        if self.bearer.search(text) is not None:
            spans += [
                match.span(1)
                for match in self.bearer.finditer(text)
                if text[match.start() - 1 : match.start()] in self.capitals
            ]
        return spans

    def mask(self, text):
        """The text with each key masked; the same object when it holds none."""
        spans = self.spans(text)
        if not spans:
            return text
        pieces, position = [], 0
        for start, end in sorted(spans):
            if end <= position:
                continue  # inside a key already masked
            pieces += [text[position : max(start, position)], self.mask_value]
            position = end
        pieces.append(text[position:])
        return self.mask_value[:0].join(pieces)


_KEYS_IN_TEXT = _KeyScanner(str)
_KEYS_IN_BYTES = _KeyScanner(str.encode)


# A body that starts like JSON (a UTF-8 byte order mark and white space allowed).
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[\[{]")
# A body shaped like name=value&name=value, for form bodies sent without their content type.
_FORM_SHAPE = re.compile(rb"[^&=\s]++=[^&\s]*+(?:&[^&=\s]++(?:=[^&\s]*+)?)*+")
# A JSON member as text, in JSON that does not parse: its name, the colon, its scalar value (a
# string cut off by the end of the body included).
_JSON_MEMBER = re.compile(
    rb'"((?:[^"\\\r\n]|\\.){1,100})"(\s*:\s*)("(?:[^"\\]++|\\.)*+(?:"|\Z)|-?[0-9][0-9.eE+-]*+)'
)
# The query string of a URL inside a header value or an error message.
_URL_QUERY = re.compile(r"\?([^\s#\"'<>]+)")


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
    """The key a client sent: `x-api-key` wins over `Authorization: Bearer`, then the other key
    headers (`anthropic-api-key`, `x-goog-api-key`, `api-key`) in that order."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if lowered.get("x-api-key", "").strip():
        return lowered["x-api-key"].strip()
    authorization = lowered.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for name in KEY_HEADERS[2:]:
        if lowered.get(name, "").strip():
            return lowered[name].strip()
    return None


# --- One message: what capture and replay store ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MaskedMessage:
    headers: dict[str, str]
    body: bytes
    events: list[dict] | None


def mask_message(*, headers: dict[str, str], body: bytes, events: list[dict] | None = None) -> MaskedMessage:
    """The headers, body and stream events of one request or response as they may be stored.

    The one masking of a message: the proxy, NDJSON ingest, HAR import and the replay of a recorded
    request all store what this returns."""
    masked_headers = mask_headers(headers)
    return MaskedMessage(
        headers=masked_headers,
        body=_mask_encoded_body(body, masked_headers),
        events=mask_events(events),
    )


def _mask_encoded_body(body: bytes, headers: dict[str, str]) -> bytes:
    """mask_body of what a compressed body says (pages and the diff show it decoded), compressed
    again the same way when a secret was masked; kept byte for byte otherwise."""
    content_type = headers.get("content-type", "")
    if not body or not content_encoding(headers):
        return mask_body(body, content_type=content_type)
    decoded = body_decode(body, headers)
    if decoded.error or decoded.truncated or not decoded.encoding:
        return mask_body(body, content_type=content_type)  # unreadable: scanned as it came
    masked = mask_body(decoded.body, content_type=content_type)
    if masked is decoded.body:
        return body
    for coding in decoded.encoding.split(", "):
        masked = _ENCODERS[coding](masked)
    return masked


_ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Lower-cased headers with key headers fingerprinted, other secret headers masked, and any key
    found in another header's value masked."""
    masked = {}
    secret_headers, secret_names = _lowered(tuple(settings.MIGRATION_AUDIT_SECRET_HEADERS)), _names()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in KEY_HEADERS:
            key = api_key_from_headers({lowered: value})
            masked[lowered] = key_fingerprint(key) if key else MASK
        elif _is_secret_header(lowered, secret_headers, secret_names):
            masked[lowered] = MASK
        else:
            masked[lowered] = value
    # The other values scanned at once (one search per key format, not one per header and format).
    values = "\n".join(value for value in masked.values() if isinstance(value, str))
    if _KEYS_IN_TEXT.spans(values) or ("?" in values and "=" in values):
        masked = {name: mask_text(value) for name, value in masked.items()}
    return masked


def is_secret_header(name: str) -> bool:
    """Whether a header (lower-cased name) carries a secret: a key header, a configured secret
    header, a secret field's name, or a name ending as tokens and keys do (`x-amz-security-token`)."""
    return name in KEY_HEADERS or _is_secret_header(
        name, _lowered(tuple(settings.MIGRATION_AUDIT_SECRET_HEADERS)), _names()
    )


def _is_secret_header(name: str, secret_headers: frozenset[str], secret_names: frozenset[str]) -> bool:
    return (
        name in secret_headers
        or name.replace("-", "_") in secret_names
        or name.endswith(_SECRET_HEADER_SUFFIXES)
    )


def is_secret_name(name: str) -> bool:
    """Whether a JSON field, query parameter or form field of this name holds a secret
    (`MIGRATION_AUDIT_SECRET_FIELDS`, compared without case, `-` and `_` alike)."""
    return name.strip().lower().replace("-", "_") in _names()


def holds_a_key(text: str) -> bool:
    """Whether the text holds a key-shaped string."""
    return bool(_KEYS_IN_TEXT.spans(text))


def mask_text(text: str) -> str:
    """Text (a header value, a path, an error message, an event's data) with every key-shaped string
    masked, and the secret parameters of a URL's query string in it."""
    text = _KEYS_IN_TEXT.mask(text)
    if "?" in text and "=" in text:
        text = _URL_QUERY.sub(lambda match: "?" + mask_query(match[1]), text)
    return text


class RequestLineMasking(logging.Filter):
    """Masks the text arguments of a log record (an HTTP server's request line) as `mask_text` does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_text(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def mask_query(query: str) -> str:
    """A query string (without `?`) with its secret parameters masked: by name, and any parameter
    whose name or value holds a key-shaped string. Kept as it is when nothing is secret."""
    if not query:
        return query
    return _mask_pairs(query)


def query_for_replay(query: str) -> str:
    """The recorded query string as a replay may send it: secret parameters (masked when recorded,
    or a key a row recorded before masking holds) are left out, never sent again."""
    if not query:
        return query
    return "&".join(
        part for part in query.split("&") if MASK not in unquote_plus(part) and mask_query(part) == part
    )


def mask_events(events: list[dict] | None) -> list[dict] | None:
    """Stream events ({"event", "data", ...}) with key-shaped strings in their data masked."""
    if not events:
        return events
    masked = events
    for index, event in enumerate(events):
        data = event.get("data")
        if isinstance(data, str):
            changed = _KEYS_IN_TEXT.mask(data)
            if changed is not data:
                if masked is events:
                    masked = list(events)
                masked[index] = {**event, "data": changed}
    return masked


def mask_body(body: bytes, *, content_type: str = "") -> bytes:
    """The body with its secrets masked: the secret fields of JSON (parsed, or as text when it does
    not parse) or of a form, then every key-shaped string in it. A body with none is kept as it is."""
    if not body:
        return body
    if _JSON_START.match(body):
        body = _mask_json(body)
    elif "x-www-form-urlencoded" in content_type.lower() or _FORM_SHAPE.fullmatch(body):
        body = _mask_form(body)
    return _KEYS_IN_BYTES.mask(body)


# --- JSON ------------------------------------------------------------------------------------------


def _mask_json(body: bytes) -> bytes:
    if not _may_name_a_secret_field(body):
        return body
    duplicated = False

    def members(pairs: list[tuple[str, object]]) -> dict:
        nonlocal duplicated
        document = dict(pairs)
        if len(document) != len(pairs):
            duplicated = True
        return document

    try:
        decoded = json.loads(body, object_pairs_hook=members)
    except RecursionError:  # nested past the parser's stack: it may hide a secret field anywhere
        return TOO_DEEP_BODY
    except ValueError:
        return _mask_json_text(body)
    limit = max_json_depth()
    if json_text_may_nest_deeper(body, limit) and json_nests_deeper(decoded, limit):
        # Real API bodies nest a few levels: past the depth, keep no part of a body that may name a
        # secret field (the walk below would cope, but what reads the body later may not).
        return TOO_DEEP_BODY
    # With a key given twice, the raw text holds a value the decoded document lost: written again
    # (as the API reads it, the last value winning), the raw text is never kept.
    if not _mask_fields(decoded) and not duplicated:
        return body
    try:
        return _JSON_TEXT.encode(decoded).encode()
    except RecursionError:
        return TOO_DEEP_BODY


def mask_json_fields(value):
    """A copy of a decoded JSON value with its secret fields (and key-shaped strings) masked."""
    copy = json.loads(_JSON_TEXT.encode(value))
    _mask_fields(copy)
    return copy


def _mask_fields(document) -> bool:
    """Mask, in place, the secret fields of a decoded JSON document at any depth (iteratively: a
    document nested deeper than the stack is no harder than a flat one). Whether anything changed.

    A secret field's string or number is masked, and the strings and numbers of a list it holds; an
    object it holds is walked like any other (a tool's input schema may have a property `key`)."""
    names = _names()

    def secret(name) -> bool:
        return isinstance(name, str) and name.strip().lower().replace("-", "_") in names

    changed = False
    stack = [document]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict | list):
            continue  # a document that is a lone string or number: no field to mask
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for name, value in items:
            if isinstance(value, dict | list):
                if isinstance(value, list) and secret(name):
                    for index, item in enumerate(value):
                        if _is_secret_scalar(item):
                            value[index] = MASK
                            changed = True
                stack.append(value)
            elif _is_secret_scalar(value) and secret(name):
                node[name] = MASK
                changed = True
            elif isinstance(value, str):
                # A key written with \u escapes, which the scan of the raw text cannot see.
                masked = _KEYS_IN_TEXT.mask(value)
                if masked is not value:
                    node[name] = masked
                    changed = True
    return changed


def _is_secret_scalar(value) -> bool:
    return (isinstance(value, str) and value not in ("", MASK)) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _mask_json_text(body: bytes) -> bytes:
    """JSON that does not parse, masked as text: each member whose name is secret gets its value
    masked, whatever surrounds it."""

    def member(match: re.Match) -> bytes:
        name = match[1].decode("utf-8", "replace")
        if match[3] in (b'""', b'"') or not is_secret_name(name):
            return match[0]
        return b'"' + match[1] + b'"' + match[2] + b'"' + _MASK_BYTES + b'"'

    return _JSON_MEMBER.sub(member, body)


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
    # Lower-cased first: a case-insensitive search of many names costs several times more.
    return pattern.search(text.lower()) is not None


@functools.cache
def _secret_key_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", name) for name in names):
        return None  # a name no simple pattern can stand for: decode every body
    if not names:
        return re.compile(r"(?!)")  # nothing to mask
    # `-` and `_` are alike in a name: "api-key" is masked as "api_key" is.
    alternatives = "|".join(re.escape(name.lower().replace("-", "_")).replace("_", "[-_]") for name in names)
    return re.compile(rf"\"(?:{alternatives})\"\s*:")


# --- Query strings and forms -----------------------------------------------------------------------


def _mask_form(body: bytes) -> bytes:
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = body.decode("latin-1"), "latin-1"
    masked = _mask_pairs(text)
    return body if masked is text else masked.encode(encoding)


def _mask_pairs(text: str) -> str:
    """name=value&... with the value of each secret parameter masked (a parameter whose very name
    is a key is masked whole). The same text object when nothing is secret."""
    parts = text.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        decoded = unquote_plus(part) if "%" in part or "+" in part else part
        if equals and value and value != MASK and is_secret_name(unquote_plus(name)):
            parts[index] = f"{name}={MASK}"
        elif _KEYS_IN_TEXT.spans(decoded):
            name_is_key = bool(_KEYS_IN_TEXT.spans(unquote_plus(name)))
            parts[index] = MASK if name_is_key or not equals else f"{name}={MASK}"
        else:
            continue
        changed = True
    return "&".join(parts) if changed else text


@functools.cache
def _lowered(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.lower() for name in names)


def _names() -> frozenset[str]:
    """The secret field names, lower-cased with `-` as `_`."""
    return _normalised(tuple(settings.MIGRATION_AUDIT_SECRET_FIELDS))


@functools.cache
def _normalised(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.strip().lower().replace("-", "_") for name in names)
