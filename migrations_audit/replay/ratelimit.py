"""The replay limits of an upstream, shared by every worker on every machine.

Requests per second: a zero-burst GCRA ("one request every 1/rps seconds"), in Redis (one atomic
Lua script) when the broker is Redis, else in a database row. Concurrency: the results leased as
running, counted inside the same lock, so no two workers exceed the limit together.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from migrations_audit.models import RateLimiterState, ReplayResult, Upstream

_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot > now then return tostring(slot - now) end
redis.call('SET', KEYS[1], tostring(now + interval), 'PX', math.ceil(interval * 1000) + 1000)
return '0'
"""


@dataclass
class Permit:
    granted: bool
    wait_seconds: float = 0.0


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


def rate_permit(*, upstream: Upstream) -> Permit:
    """May one more request to `upstream` start now? If not, how long to wait."""
    if upstream.rate_limit_rps <= 0:
        return Permit(True)
    interval = 1.0 / upstream.rate_limit_rps
    client = _redis()
    if client is not None:
        global _script
        if _script is None:
            _script = client.register_script(_GCRA)
        wait = float(_script(keys=[f"migration-audit:rate:{upstream.pk}"], args=[time.time(), interval]))
        return Permit(wait <= 0, wait)
    with transaction.atomic():
        state, _ = RateLimiterState.objects.select_for_update().get_or_create(upstream=upstream)
        now = time.time()
        if state.next_slot > now:
            return Permit(False, state.next_slot - now)
        RateLimiterState.objects.filter(pk=state.pk).update(next_slot=now + interval)
    return Permit(True)


def concurrency_available(*, upstream: Upstream, now) -> bool:
    running = ReplayResult.objects.filter(
        run__upstream=upstream, state=ReplayResult.Status.RUNNING, leased_until__gt=now
    ).count()
    return running < upstream.rate_limit_concurrency
