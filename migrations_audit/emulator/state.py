"""What the emulator remembers between requests: uploaded files, message batches, prompt-cache entries.

In memory, per process, bounded; lost on restart (as a test double should be).
"""

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_FILES = 1000
MAX_BATCHES = 1000
MAX_CACHE_ENTRIES = 10_000
CACHE_TTL_SECONDS = {"5m": 300, "1h": 3600}


@dataclass
class StoredFile:
    id: str
    filename: str
    mime_type: str
    content: bytes
    created_at: float


@dataclass
class Batch:
    id: str
    created_at: float
    version: str
    # One JSONL line per request, computed at creation (the answers depend only on the request).
    results: list[dict] = field(default_factory=list)
    canceled_at: float | None = None


class State:
    def __init__(self):
        self._lock = threading.Lock()
        self.files: OrderedDict[str, StoredFile] = OrderedDict()
        self.batches: OrderedDict[str, Batch] = OrderedDict()
        self._cache: OrderedDict[str, float] = OrderedDict()

    def add_file(self, stored: StoredFile) -> None:
        with self._lock:
            self.files[stored.id] = stored
            while len(self.files) > MAX_FILES:
                self.files.popitem(last=False)

    def delete_file(self, file_id: str) -> bool:
        with self._lock:
            return self.files.pop(file_id, None) is not None

    def add_batch(self, batch: Batch) -> None:
        with self._lock:
            self.batches[batch.id] = batch
            while len(self.batches) > MAX_BATCHES:
                self.batches.popitem(last=False)

    def delete_batch(self, batch_id: str) -> bool:
        with self._lock:
            return self.batches.pop(batch_id, None) is not None

    def cache_hit(self, prefix: bytes, ttl: str) -> bool:
        """Whether this prompt prefix is cached (and now it is, for `ttl`): the first call writes it."""
        key = hashlib.sha256(prefix).hexdigest()
        now = time.monotonic()
        with self._lock:
            expires = self._cache.get(key)
            hit = expires is not None and expires > now
            self._cache[key] = now + CACHE_TTL_SECONDS.get(ttl, 300)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return hit


def paginate(items: list, *, id_of, params: dict, default_limit: int = 20, max_limit: int = 1000):
    """One page of `items` (already in list order) by `limit`, `after_id`, `before_id`, as the API pages.

    Returns (page, has_more) or raises ValueError naming the bad parameter.
    """
    try:
        limit = int(params.get("limit", default_limit))
    except ValueError:
        raise ValueError("limit: Input should be a valid integer") from None
    if not 1 <= limit <= max_limit:
        raise ValueError(f"limit: Input should be between 1 and {max_limit}")
    ids = [id_of(item) for item in items]
    if params.get("before_id"):
        if params["before_id"] not in ids:
            raise ValueError(f"before_id: no object with id {params['before_id']}")
        end = ids.index(params["before_id"])
        page = items[max(0, end - limit) : end]
        return page, end - limit > 0
    start = 0
    if params.get("after_id"):
        if params["after_id"] not in ids:
            raise ValueError(f"after_id: no object with id {params['after_id']}")
        start = ids.index(params["after_id"]) + 1
    page = items[start : start + limit]
    return page, start + limit < len(items)
