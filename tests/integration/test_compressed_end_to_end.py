"""A real SDK through the proxy to an emulator that compresses its answers (JSON and streams), replayed
with a real worker: the findings are the same as through an emulator that does not compress, and the
recording keeps the compressed bytes as they were sent."""

import pytest

from migrations_audit import services
from migrations_audit.content_encoding import body_decode
from migrations_audit.models import DifferenceSignature, Exchange, ReplayRun, RequestFinding, Upstream
from migrations_audit.replay.runs import run_start
from tests.integration.test_end_to_end import sdk, wait_for
from tests.support.servers import free_port, running

pytestmark = pytest.mark.slow

TRAFFIC = """
import json, anthropic
client = anthropic.Anthropic(api_key=KEY, base_url=URL, max_retries=0)
messages = [{"role": "user", "content": "Summarise the order"}]
client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=messages,
                       extra_body={"temperature": 0.2})
client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=messages)
tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object",
        "properties": {"location": {"type": "string"}}, "required": ["location"]}}
client.messages.create(model="claude-sonnet-4-5", max_tokens=60, messages=messages, tools=[tool])
client.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=30, messages=messages) as s:
    s.get_final_text()
print(json.dumps({"ok": True}))
"""
EXCHANGES = 5


@pytest.fixture(scope="module")
def compressing_emulator():
    port = free_port()
    options = ["--compress", "zstd", "--compress", "br", "--compress", "gzip", "--compress-streams"]
    with running(
        ["-m", "migrations_audit.emulator", "--port", str(port), *options],
        ready_url=f"http://127.0.0.1:{port}/v1/models",
    ):
        yield f"http://127.0.0.1:{port}"


def findings(upstream) -> dict:
    """What the product found for an upstream, without what differs by nature (ids, counts)."""
    return {
        "requests": set(RequestFinding.objects.filter(upstream=upstream).values_list("rule__key", "field")),
        "signatures": set(
            DifferenceSignature.objects.filter(upstream=upstream, exchanges__gt=0).values_list(
                "endpoint", "kind", "path", "classification"
            )
        ),
    }


def record_and_replay(upstream, url: str) -> None:
    sdk("1.17.0", url, TRAFFIC)
    wait_for(lambda: Exchange.objects.filter(upstream=upstream).count() >= EXCHANGES, what="the exchanges")
    run = run_start(upstream=upstream, versions=["2023-06-01", "2026-10-21"], noise_sample_rate=1.0)
    wait_for(
        lambda: not ReplayRun.objects.filter(pk=run.pk, status="running").exists(),
        timeout=180,
        what="the run to finish",
    )
    assert ReplayRun.objects.get(pk=run.pk).status == "completed"


def test_compressed_answers_give_the_same_findings(product, compressing_emulator):
    plain = product["upstream"]
    squeezed = services.upstream_create(
        team=plain.team,
        name="Compressed",
        slug="compressed",
        base_url=compressing_emulator,
        baseline_version="2023-06-01",
        target_version="2026-10-21",
        replay_key="sk-ant-replay-secret",
    )
    Upstream.objects.filter(pk=squeezed.pk).update(rate_limit_rps=200, rate_limit_concurrency=16)
    record_and_replay(plain, product["prefix"])
    record_and_replay(squeezed, f"{product['proxy']}/proxy/{squeezed.slug}")

    # The recording keeps the bytes as the upstream sent them: compressed, JSON and stream alike.
    recorded = list(Exchange.objects.filter(upstream=squeezed))
    assert len(recorded) == EXCHANGES
    for exchange in recorded:
        headers = {name.lower(): value for name, value in exchange.response_headers.items()}
        assert headers.get("content-encoding") in ("zstd", "br", "gzip"), exchange.endpoint
        body = bytes(exchange.response_body)
        assert not body.startswith((b"{", b"event:"))
        assert body_decode(body, exchange.response_headers).body.startswith((b"{", b"event:"))
    assert not any(
        {n.lower(): v for n, v in e.response_headers.items()}.get("content-encoding")
        for e in Exchange.objects.filter(upstream=plain)
    )

    compressed, uncompressed = findings(squeezed), findings(plain)
    assert compressed["requests"] == uncompressed["requests"]
    assert ("sampling-parameters-removed", "/temperature") in compressed["requests"]
    assert compressed["signatures"] == uncompressed["signatures"]
    assert any(s[3] == "breaking" for s in compressed["signatures"])
    # Nothing is unreadable: no signature says a body could not be decoded.
    assert not [s for s in compressed["signatures"] if "decod" in s[2]]
