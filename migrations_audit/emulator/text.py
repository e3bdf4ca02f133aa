"""Deterministic generated text: the same request and seed give the same words under every version."""

import hashlib
import random

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "curious",
    "engineers",
    "watch",
    "streams",
    "of",
    "tokens",
    "arrive",
    "one",
    "by",
    "one",
    "and",
    "a",
    "careful",
    "reviewer",
    "compares",
    "each",
    "version",
    "of",
    "the",
    "answer",
    "to",
    "find",
    "what",
    "changed",
    "between",
    "releases",
    "so",
    "that",
    "nothing",
    "breaks",
    "in",
    "production",
    "when",
    "clients",
    "upgrade",
    "their",
    "libraries",
    "on",
    "a",
    "quiet",
    "afternoon",
    "after",
    "lunch",
    "with",
    "coffee",
]


def request_rng(canonical_request: bytes, *, seed: int, vary: bool) -> random.Random:
    digest = hashlib.sha256(seed.to_bytes(8, "big", signed=True) + canonical_request).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    if vary:
        rng = random.Random(rng.random() + random.random())
    return rng


def generate_pieces(rng: random.Random, *, max_tokens: int) -> tuple[list[str], bool]:
    """Word pieces (each with its leading space) and whether max_tokens cut the answer short."""
    wanted = rng.randint(8, 32)
    count = min(wanted, max(max_tokens, 0))
    pieces = [" " + rng.choice(_WORDS) for _ in range(count)]
    if pieces:
        pieces[0] = " " + pieces[0][1:].capitalize()
        if count == wanted:
            pieces[-1] += "."
    return pieces, count < wanted


def rough_token_count(text: str) -> int:
    return max(1, len(text.split()) + len(text) // 40)
