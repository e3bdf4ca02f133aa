"""Reading compressed bodies: recordings keep the bytes as they came; the diff and the pages read
what they say.

SDKs ask for `gzip, deflate, br, zstd`, and a real upstream may answer with any of them. Decoding is
bounded: past `limit` bytes of output (a decompression bomb, or just a huge answer) the rest is cut
off and the result says so, so that no body can take a worker's memory.
"""

import zlib
from dataclasses import dataclass

import brotli
import zstandard
from django.conf import settings

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Decoded:
    body: bytes
    # The codings undone, outermost last as the header lists them ("gzip"), or "" when none.
    encoding: str = ""
    truncated: bool = False
    error: str = ""


def content_encoding(headers) -> str:
    """The Content-Encoding of stored headers (a dict in any case, or HAR-style pairs)."""
    if isinstance(headers, list):
        headers = dict(headers)
    for name, value in (headers or {}).items():
        if str(name).lower() == "content-encoding":
            return ", ".join(value) if isinstance(value, list) else str(value)
    return ""


def body_decode(body: bytes, headers, *, limit: int | None = None) -> Decoded:
    """The body with its Content-Encoding undone, at most `limit` bytes of it."""
    codings = [c.strip().lower() for c in content_encoding(headers).split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings or not body:
        return Decoded(body=body)
    limit = limit or settings.MIGRATION_AUDIT_DECODED_BODY_LIMIT
    decoded, truncated = body, False
    # Codings are listed in the order they were applied: undo the last first.
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            return Decoded(body=body, error=f"unknown content-encoding {coding!r}: shown as sent")
        try:
            decoded, cut = decoder(decoded, limit)
        except (zlib.error, brotli.error, zstandard.ZstdError, EOFError) as error:
            return Decoded(body=body, error=f"the {coding} body cannot be decoded ({error}): shown as sent")
        truncated = truncated or cut
    return Decoded(body=decoded, encoding=", ".join(codings), truncated=truncated)


def _zlib(body: bytes, limit: int, *, wbits: int) -> tuple[bytes, bool]:
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(body, limit + 1)
    return out[:limit], len(out) > limit


def _gzip(body: bytes, limit: int) -> tuple[bytes, bool]:
    return _zlib(body, limit, wbits=16 + zlib.MAX_WBITS)


def _deflate(body: bytes, limit: int) -> tuple[bytes, bool]:
    # HTTP's "deflate" is zlib-wrapped, but some servers send raw deflate: try both, as browsers do.
    try:
        return _zlib(body, limit, wbits=zlib.MAX_WBITS)
    except zlib.error:
        return _zlib(body, limit, wbits=-zlib.MAX_WBITS)


def _brotli(body: bytes, limit: int) -> tuple[bytes, bool]:
    decompressor = brotli.Decompressor()
    out = bytearray(decompressor.process(body, output_buffer_limit=limit + 1))
    while len(out) <= limit and not decompressor.is_finished() and not decompressor.can_accept_more_data():
        out += decompressor.process(b"", output_buffer_limit=limit + 1 - len(out))
    return bytes(out[:limit]), len(out) > limit


def _zstd(body: bytes, limit: int) -> tuple[bytes, bool]:
    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    out = bytearray()
    while len(out) <= limit:
        chunk = reader.read(min(_CHUNK, limit + 1 - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out[:limit]), len(out) > limit


_DECODERS = {"gzip": _gzip, "x-gzip": _gzip, "deflate": _deflate, "br": _brotli, "zstd": _zstd}
