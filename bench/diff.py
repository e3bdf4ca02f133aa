"""How fast the diff is: ~2 KB JSON pairs/s and 50-event stream pairs/s, against deepdiff.

    .venv/bin/python bench/diff.py [--seconds 2]

Single process, single core. Each JSON pair differs the way two versions' responses do: an id that
varies, a field removed, one added, a value changed, a content block added. Targets (issue 7):
>= 20,000 JSON pairs/s and >= 5x deepdiff; >= 5,000 stream pairs/s.
"""

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdiff import DeepDiff

from migrations_audit.diff.compare import ResponseSnapshot, compare_responses
from migrations_audit.diff.json_diff import json_diff
from migrations_audit.diff.streams import stream_diff

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly zebras".split()  # noqa: SIM905


def message(rng: random.Random) -> dict:
    text = " ".join(rng.choice(WORDS) for _ in range(150))
    return {
        "id": f"msg_01{rng.getrandbits(64):016x}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": text, "citations": None},
            {
                "type": "tool_use",
                "id": f"toolu_01{rng.getrandbits(48):012x}",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius", "days": [1, 2, 3]},
            },
            {"type": "text", "text": " ".join(rng.choice(WORDS) for _ in range(100))},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": rng.randint(10, 5000),
            "output_tokens": rng.randint(10, 500),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
        "container": None,
        "metadata": {"user_id": f"user-{rng.randint(1, 99)}", "tags": ["a", "b", "c"]},
    }


def json_pairs(n: int, rng: random.Random) -> list[tuple[dict, dict]]:
    pairs = []
    for _ in range(n):
        a = message(rng)
        b = copy.deepcopy(a)
        b["id"] = f"msg_01{rng.getrandbits(64):016x}"
        del b["container"]
        b["usage"]["server_tool_use"] = {"web_search_requests": 0}
        b["stop_reason"] = "end_turn"
        b["content"].insert(0, {"type": "thinking", "thinking": "Let me think.", "signature": "sig"})
        pairs.append((a, b))
    return pairs


def stream_events(rng: random.Random, *, legacy: bool) -> list[dict]:
    """A 50-event Text Completions stream, cumulative data-only with [DONE] (legacy) or named."""
    events, text = [], ""
    for n in range(49):
        piece = " " + rng.choice(WORDS)
        text += piece
        data = {"completion": text if legacy else piece, "stop_reason": "stop_sequence" if n == 48 else None}
        data["model"] = "claude-instant-v1"
        if legacy:
            data.update(truncated=False, exception=None, log_id=f"{rng.getrandbits(128):032x}")
            events.append({"event": None, "data": json.dumps(data)})
        else:
            data = {"type": "completion", "id": "compl_01abcdefabcdef", **data}
            events.append({"event": "completion", "data": json.dumps(data)})
    events.append(
        {"event": None, "data": "[DONE]"} if legacy else {"event": "ping", "data": '{"type": "ping"}'}
    )
    return events


def rate(label: str, fn, items, seconds: float) -> float:
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for item in items:
            fn(item)
        done += len(items)
    elapsed = time.perf_counter() - started
    per_second = done / elapsed
    print(f"{label:<48} {per_second:>12,.0f} pairs/s   ({done:,} pairs in {elapsed:.2f}s)")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rng = random.Random(7)
    pairs = json_pairs(200, rng)
    raw = [(json.dumps(a).encode(), json.dumps(b).encode()) for a, b in pairs]
    size = sum(len(a) for a, _ in raw) / len(raw)
    print(f"JSON bodies: {size:,.0f} bytes on average; changes per pair: {len(json_diff(*pairs[0]))}")
    ours = rate("json_diff (parsed JSON)", lambda p: json_diff(p[0], p[1]), pairs, args.seconds)
    theirs = rate(
        "deepdiff.DeepDiff (same parsed JSON)", lambda p: DeepDiff(p[0], p[1]), pairs[:50], args.seconds
    )
    snapshots = [(ResponseSnapshot(200, {}, a), ResponseSnapshot(200, {}, b)) for a, b in raw]
    rate(
        "compare_responses (bytes: parse + diff + noise)",
        lambda p: compare_responses(*p),
        snapshots,
        args.seconds,
    )
    # The hardest pair: a legacy stream (cumulative text, so ~3x the bytes to parse) against a
    # current one; then two current streams, the everyday case of a noise sample or a new version.
    legacy = [(stream_events(rng, legacy=True), stream_events(rng, legacy=False)) for _ in range(50)]
    legacy_rate = rate(
        "stream_diff (50 events, legacy vs current)", lambda p: stream_diff(*p), legacy, args.seconds
    )
    current = [(stream_events(rng, legacy=False), stream_events(rng, legacy=False)) for _ in range(50)]
    current_rate = rate(
        "stream_diff (50 events, current vs current)", lambda p: stream_diff(*p), current, args.seconds
    )
    print()
    print(f"JSON pairs/s: {ours:,.0f} (target 20,000)  ratio to deepdiff: {ours / theirs:.1f}x (target 5x)")
    print(f"Stream pairs/s: {legacy_rate:,.0f} legacy vs current, {current_rate:,.0f} current (target 5,000)")


if __name__ == "__main__":
    main()
