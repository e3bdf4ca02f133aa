"""Compressed answers, as a real upstream (or a CDN in front of it) may send them.

Off by default. With `--compress gzip` (repeatable, in order of preference) a JSON answer is compressed
with the first coding of the list the request's `Accept-Encoding` accepts; event streams only with
`--compress-streams` (each event flushed, so a client reads them as they come). A request may ask for
it with the header `x-emulator-compress: gzip` (and `x-emulator-compress-streams: 1`).
"""

import zlib

import brotli
import zstandard

CODINGS = ("gzip", "deflate", "br", "zstd")


def accepted(accept_encoding: str) -> dict[str, float]:
    """Each coding of an Accept-Encoding header with its q-value (`*` included)."""
    weights = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if not name:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[name.strip().lower()] = quality
    return weights


def coding_for(preferred: tuple[str, ...], accept_encoding: str) -> str | None:
    """The first of the emulator's codings the client accepts, or None (then the answer is identity)."""
    weights = accepted(accept_encoding)
    for coding in preferred:
        if weights.get(coding, weights.get("*", 0.0)) > 0:
            return coding
    return None


class Encoder:
    """Compresses one body, whole or in flushed pieces (for a stream)."""

    def __init__(self, coding: str):
        self.coding = coding
        if coding == "gzip":
            self._zlib = zlib.compressobj(wbits=31)
        elif coding == "deflate":
            self._zlib = zlib.compressobj(wbits=15)
        elif coding == "br":
            self._brotli = brotli.Compressor()
        else:
            self._zstd = zstandard.ZstdCompressor().compressobj()

    def piece(self, data: bytes) -> bytes:
        """`data` compressed and flushed, so the receiver can decode it before the body ends."""
        if self.coding in ("gzip", "deflate"):
            return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self.coding == "br":
            return self._brotli.process(data) + self._brotli.flush()
        return self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        if self.coding in ("gzip", "deflate"):
            return self._zlib.flush()
        if self.coding == "br":
            return self._brotli.finish()
        return self._zstd.flush()

    def whole(self, data: bytes) -> bytes:
        return self.piece(data) + self.finish()
