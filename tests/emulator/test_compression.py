"""The emulator compresses its answers when asked, as a real upstream may: JSON answers by default,
event streams only when asked, and only with a coding the request accepts."""

import gzip
import json
import zlib

import brotli
import httpx
import pytest
import zstandard

from tests.emulator.conftest import MESSAGE, api_headers, emulator_running

DECODE = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


def raw_post(url: str, body: dict, **headers: str) -> tuple[httpx.Response, bytes]:
    """A POST whose answer is read as the bytes sent (httpx does not decode them)."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", f"{url}/v1/messages", json=body, headers=api_headers("2023-06-01", **headers)
        ) as r,
    ):
        return r, b"".join(r.iter_raw())


@pytest.fixture(scope="module")
def compressing():
    with emulator_running("--compress", "zstd", "--compress", "gzip") as url:
        yield url


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_json_answer_is_compressed_with_the_requested_coding(emulator, coding):
    response, raw = raw_post(emulator, MESSAGE, **{"x-emulator-compress": coding, "accept-encoding": coding})
    assert response.headers["content-encoding"] == coding
    assert int(response.headers["content-length"]) == len(raw)
    assert json.loads(DECODE[coding](raw))["type"] == "message"


def test_the_server_option_follows_accept_encoding(compressing):
    response, raw = raw_post(compressing, MESSAGE, **{"accept-encoding": "gzip, deflate, br, zstd"})
    assert response.headers["content-encoding"] == "zstd"  # the emulator's first choice the client accepts
    assert json.loads(DECODE["zstd"](raw))["type"] == "message"
    response, raw = raw_post(compressing, MESSAGE, **{"accept-encoding": "gzip;q=1, zstd;q=0"})
    assert response.headers["content-encoding"] == "gzip"
    response, raw = raw_post(compressing, MESSAGE, **{"accept-encoding": "identity"})
    assert "content-encoding" not in response.headers
    assert json.loads(raw)["type"] == "message"


def test_streams_stay_plain_unless_asked(compressing):
    stream = {**MESSAGE, "stream": True}
    response, raw = raw_post(compressing, stream, **{"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert raw.startswith(b"event: message_start")
    response, raw = raw_post(
        compressing, stream, **{"accept-encoding": "gzip", "x-emulator-compress-streams": "1"}
    )
    assert response.headers["content-encoding"] == "gzip"
    text = gzip.decompress(raw).decode()
    assert text.startswith("event: message_start") and "event: message_stop" in text


def test_errors_in_json_are_compressed_too(compressing):
    response, raw = raw_post(compressing, {"model": "claude-haiku-4-5"}, **{"accept-encoding": "gzip"})
    assert response.status_code == 400
    assert json.loads(gzip.decompress(raw))["type"] == "error"
