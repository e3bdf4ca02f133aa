"""Record real SDK traffic through the proxy, replay it on the emulator's versions with a real worker,
and diff: every changelog difference is found and explained, and nothing else breaks.
"""

import json
import time

import pytest

from migrations_audit.models import DifferenceSignature, Exchange, ReplayRun, RequestFinding
from migrations_audit.replay.runs import run_start
from tests.support.sdk import run_sdk

pytestmark = pytest.mark.slow

KEY = "sk-ant-end-to-end-0123456789"

LEGACY = """
import json, anthropic
client = anthropic.Client(KEY, api_url=URL)
prompt = anthropic.HUMAN_PROMPT + " Tell me a story" + anthropic.AI_PROMPT
kwargs = dict(prompt=prompt, model="claude-v1", max_tokens_to_sample=40,
              stop_sequences=[anthropic.HUMAN_PROMPT])
client.completion(**kwargs)
list(client.completion_stream(**kwargs))
print(json.dumps({"ok": True}))
"""

SAMPLING = """
import json, anthropic
client = anthropic.Anthropic(api_key=KEY, base_url=URL, max_retries=0)
messages = [{"role": "user", "content": "Summarise the order"}]
client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=30, messages=messages, temperature=0.2)
client.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=30, messages=messages, top_k=5)
print(json.dumps({"ok": True}))
"""

BLOCKS = """
import json, anthropic
client = anthropic.Anthropic(api_key=KEY, base_url=URL, max_retries=0)
document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Policy"}}
cited = {"type": "text", "text": "As cited", "citations": [{"type": "char_location", "cited_text": "P",
         "document_index": 0, "document_title": None, "start_char_index": 0, "end_char_index": 1}]}
client.messages.create(model="claude-sonnet-4-5", max_tokens=30, messages=[
    {"role": "user", "content": "Quote it"}, {"role": "assistant", "content": [document]},
    {"role": "user", "content": "Again"}])
client.messages.create(model="claude-sonnet-4-5", max_tokens=30,
                       messages=[{"role": "user", "content": [cited]}])
hello = [{"role": "user", "content": "Hi"}]
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=30, messages=hello) as s:
    s.get_final_text()
print(json.dumps({"ok": True}))
"""


def sdk(release: str, url: str, script: str) -> None:
    assert run_sdk(release, f"KEY = {KEY!r}\nURL = {url!r}\n" + script) == {"ok": True}


def wait_for(predicate, *, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def signatures(upstream, version_from, version_to, endpoint):
    return DifferenceSignature.objects.filter(
        upstream=upstream,
        version_from=version_from,
        version_to=version_to,
        endpoint=endpoint,
        exchanges__gt=0,
    ).select_related("rule")


def test_record_replay_and_diff_both_migrations(product):
    upstream = product["upstream"]
    sdk("0.2.10", product["proxy"], LEGACY)  # the default upstream, at the proxy's root path
    sdk("0.125.0", product["prefix"], SAMPLING)
    sdk("1.17.0", product["prefix"], BLOCKS)
    wait_for(lambda: Exchange.objects.filter(upstream=upstream).count() >= 7, what="7 recorded exchanges")

    # The request check (a task queued as each batch commits) found the three 2026-10-21 rejections as
    # the traffic arrived, before any replay.
    wait_for(
        lambda: RequestFinding.objects.filter(upstream=upstream).values("rule").distinct().count() >= 3,
        what="the request check's findings",
    )
    found = set(RequestFinding.objects.filter(upstream=upstream).values_list("rule__key", "field"))
    assert {key for key, _ in found} == {
        "sampling-parameters-removed",
        "assistant-document-rejected",
        "user-text-citations-rejected",
    }
    assert ("sampling-parameters-removed", "/temperature") in found
    assert ("sampling-parameters-removed", "/top_k") in found

    legacy = run_start(
        upstream=upstream,
        versions=["2023-01-01", "2023-06-01"],
        selection={"endpoint": "POST /v1/complete"},
        noise_sample_rate=1.0,
    )
    current = run_start(
        upstream=upstream,
        versions=["2023-06-01", "2026-10-21"],
        selection={"endpoint": "POST /v1/messages"},
        noise_sample_rate=1.0,
    )
    wait_for(
        lambda: not ReplayRun.objects.filter(pk__in=[legacy.pk, current.pk], status="running").exists(),
        timeout=180,
        what="both runs to finish",
    )
    assert set(ReplayRun.objects.filter(pk__in=[legacy.pk, current.pk]).values_list("status", flat=True)) == {
        "completed"
    }

    # 2023-01-01 -> 2023-06-01: the five changelog differences, each explained.
    complete = signatures(upstream, "2023-01-01", "2023-06-01", "POST /v1/complete")
    explained = {s.rule.key for s in complete if s.rule and s.classification == "breaking"}
    assert explained == {
        "complete-exception-removed",
        "complete-truncated-removed",
        "stream-named-events",
        "stream-done-removed",
        "stream-incremental-text",
    }
    # 2023-06-01 -> 2026-10-21: the three rejections, found by replay too, and explained.
    messages = signatures(upstream, "2023-06-01", "2026-10-21", "POST /v1/messages")
    assert {s.rule.key for s in messages if s.classification == "breaking"} == {
        "sampling-parameters-removed",
        "assistant-document-rejected",
        "user-text-citations-rejected",
    }
    assert all(s.kind == "outcome_changed" for s in messages if s.classification == "breaking")
    # Nothing else is reported as breaking, nothing breaking is unexplained, and varying ids are noise.
    breaking = DifferenceSignature.objects.filter(
        upstream=upstream, classification="breaking", exchanges__gt=0
    )
    unexplained = [f"{s.kind} {s.path} {s.endpoint}" for s in breaking if s.rule_id is None]
    assert unexplained == []
    noise_paths = set(
        DifferenceSignature.objects.filter(upstream=upstream, classification="noise").values_list(
            "path", flat=True
        )
    )
    assert "/id" in noise_paths or "/log_id" in noise_paths
    # The replay confirmed what the request check predicted.
    assert not RequestFinding.objects.filter(upstream=upstream, confirmed=False).exists()
    assert (
        RequestFinding.objects.filter(upstream=upstream, confirmed=True).count()
        == RequestFinding.objects.filter(upstream=upstream).count()
    )
    # No key was stored anywhere along the way.
    for exchange in Exchange.objects.filter(upstream=upstream):
        assert KEY not in json.dumps(exchange.request_headers) + bytes(exchange.request_body).decode()
