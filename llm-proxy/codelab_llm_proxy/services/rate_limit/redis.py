"""The Redis counter store: buckets shared by every proxy process that points at the same Redis.

Each bucket is a hash `{start, used}` under `<prefix>:<bucket key>`, expiring with its window. Admission is one
Lua script (one round trip, atomic: it sees and charges every bucket of a request together) and uses Redis's
own clock, so processes on different hosts agree on when a window ends. Settlement is a second script, run
after the answer, that only touches a bucket whose window is still the one the reservation went into.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from codelab_llm_proxy.services.rate_limit.backend import Admission, BucketState, Charge, Settlement

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local starts, used = {}, {}
local wait = 0
for i = 1, #KEYS do
  local limit, amount = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', KEYS[i], 'start', 'used')
  local start, u = tonumber(v[1]), tonumber(v[2]) or 0
  if start == nil or now - start >= window then start, u = now, 0 end
  if u + amount > limit then wait = math.max(wait, start + window - now) end
  starts[i], used[i] = start, u
end
local out = {wait == 0 and 1 or 0, wait, now}
for i = 1, #KEYS do
  if wait == 0 then
    used[i] = used[i] + tonumber(ARGV[2 * i + 1])
    redis.call('HSET', KEYS[i], 'start', starts[i], 'used', used[i])
    redis.call('PEXPIREAT', KEYS[i], starts[i] + window)
  end
  out[#out + 1] = starts[i]
  out[#out + 1] = used[i]
end
return out
"""

_SETTLE = """
for i = 1, #KEYS do
  local start = redis.call('HGET', KEYS[i], 'start')
  if start and tonumber(start) == tonumber(ARGV[2 * i - 1]) then
    local u = redis.call('HINCRBY', KEYS[i], 'used', ARGV[2 * i])
    if u < 0 then redis.call('HSET', KEYS[i], 'used', 0) end
  end
end
return 0
"""


class RedisBackend:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Redis = Redis.from_url(url, decode_responses=False)
        self._prefix = prefix.rstrip(":") + ":"
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._settle = self._redis.register_script(_SETTLE)

    async def acquire(self, charges: Sequence[Charge], window_ms: int) -> Admission:
        keys = [self._prefix + c.key for c in charges]
        args: list[Any] = [window_ms]
        for charge in charges:
            args += (charge.limit, charge.amount)
        reply = await self._acquire(keys=keys, args=args)
        allowed, wait, now = int(reply[0]), int(reply[1]), int(reply[2])
        buckets = []
        for i, charge in enumerate(charges):
            start, used = int(reply[3 + 2 * i]), int(reply[4 + 2 * i])
            buckets.append(BucketState(charge.key, charge.limit, used, start, start + window_ms - now))
        return Admission(bool(allowed), wait, tuple(buckets))

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        args: list[Any] = []
        for item in settlements:
            args += (item.window_start_ms, item.delta)
        await self._settle(keys=[self._prefix + s.key for s in settlements], args=args)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
