"""The replay limits of an upstream, shared by every worker on every machine.

Requests per second: one request every 1/rps seconds, with no burst. A worker reserves the start
times of a batch at once, in Redis (one atomic Lua script) when the broker is Redis, else in a
database row, and sends each request at its time. Concurrency: the results leased as
running, counted by the claim (`services._claim`) under the upstream's limiter row, so no two
workers exceed the limit together.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from migrations_audit.models import RateLimiterState, Upstream

# Reserves `count` consecutive slots, one every `interval`, starting at the first free one, unless
# that is more than `max_wait` away. Returns {granted, seconds until the first slot}.
_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
if slot - now > max_wait then return {0, tostring(slot - now)} end
local after = slot + interval * count
redis.call('SET', KEYS[1], tostring(after), 'PX', math.ceil((after - now) * 1000) + 1000)
return {1, tostring(slot - now)}
"""


@dataclass
class Reservation:
    """Slots for `count` requests: the first in `wait_seconds`, then one every `interval`."""

    granted: bool
    wait_seconds: float = 0.0
    interval: float = 0.0

    def start_after(self, index: int) -> float:
        return self.wait_seconds + index * self.interval


def _redis():
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis"):
        return None
    import redis

    global _client
    if _client is None:
        _client = redis.Redis.from_url(broker)
    return _client


_client = None
_script = None


def batch_size(*, upstream: Upstream, max_wait: float) -> int:
    """How many requests one reservation may cover: no more than the limit allows in `max_wait`, so
    a worker holding slots never starves the others for long."""
    if upstream.rate_limit_rps <= 0:
        return 1_000_000
    return max(1, int(upstream.rate_limit_rps * max_wait))


def rate_reserve(*, upstream: Upstream, count: int, max_wait: float) -> Reservation:
    """Reserve start times for `count` requests to `upstream`, if the first is at most `max_wait`
    away; if not, say how long until it is."""
    if upstream.rate_limit_rps <= 0:
        return Reservation(True)
    interval = 1.0 / upstream.rate_limit_rps
    client = _redis()
    if client is not None:
        global _script
        if _script is None:
            _script = client.register_script(_RESERVE)
        granted, wait = _script(
            keys=[f"migration-audit:rate:{upstream.pk}"], args=[time.time(), interval, count, max_wait]
        )
        return Reservation(bool(int(granted)), float(wait), interval)
    with transaction.atomic():
        state, _ = RateLimiterState.objects.select_for_update().get_or_create(upstream=upstream)
        now = time.time()
        slot = max(now, state.next_slot)
        if slot - now > max_wait:
            return Reservation(False, slot - now, interval)
        RateLimiterState.objects.filter(pk=state.pk).update(next_slot=slot + interval * count)
    return Reservation(True, slot - now, interval)
