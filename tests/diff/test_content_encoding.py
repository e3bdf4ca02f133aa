"""Compressed answers are read by their content, within a bound; recordings keep the bytes."""

import gzip
import json
import zlib

import brotli
import pytest
import zstandard

from migrations_audit.content_encoding import body_decode
from migrations_audit.diff import ResponseSnapshot, compare_responses
from migrations_audit.diff.services import snapshot_from_result
from migrations_audit.models import ReplayResult

ANSWER = json.dumps({"type": "message", "content": [{"type": "text", "text": "hi"}]}).encode()

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_is_decoded(coding):
    decoded = body_decode(ENCODERS[coding](ANSWER), {"Content-Encoding": coding})
    assert (decoded.body, decoded.encoding, decoded.truncated, decoded.error) == (ANSWER, coding, False, "")


def test_raw_deflate_and_stacked_codings_are_decoded():
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert body_decode(raw.compress(ANSWER) + raw.flush(), {"content-encoding": "deflate"}).body == ANSWER
    stacked = brotli.compress(gzip.compress(ANSWER))
    assert body_decode(stacked, [("content-encoding", "gzip, br")]).body == ANSWER


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_a_decompression_bomb_is_cut_off_at_the_limit(coding):
    bomb = ENCODERS[coding](b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    decoded = body_decode(bomb, {"content-encoding": coding}, limit=1024 * 1024)
    assert decoded.truncated and len(decoded.body) == 1024 * 1024


def test_bodies_that_cannot_be_decoded_are_kept_as_sent_with_the_reason():
    corrupt = body_decode(b"not gzip at all", {"content-encoding": "gzip"})
    assert corrupt.body == b"not gzip at all" and "cannot be decoded" in corrupt.error
    unknown = body_decode(b"abc", {"content-encoding": "compress"})
    assert unknown.body == b"abc" and "unknown content-encoding" in unknown.error
    assert body_decode(ANSWER, {"content-encoding": "identity"}).body == ANSWER


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_a_compressed_recording_and_a_plain_replay_do_not_differ(coding):
    compressed = ReplayResult(
        status=200,
        response_headers={"content-type": "application/json", "content-encoding": coding},
        response_body=ENCODERS[coding](ANSWER),
    )
    plain = ResponseSnapshot(status=200, headers={"content-type": "application/json"}, body=ANSWER)
    assert compare_responses(snapshot_from_result(compressed), plain) == []
