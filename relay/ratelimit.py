"""RPM and TPM limits per key and per organization: a sliding window over two minutes.

The estimate is previous-window count times the part of it still inside the last 60 s, plus
the current window's count. Checking and counting every limit of a request is one atomic
step: a Lua script in Redis (shared by all processes), or a plain function in-process.
TPM counts the prompt estimate up front and is corrected with the metered total later.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from relay.errors import rate_limited
from relay.redis_client import redis

WINDOW_MS = 60_000

_LUA = """
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local cur = math.floor(now / win)
local elapsed = (now % win) / win
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local c = tonumber(redis.call('GET', KEYS[i] .. ':' .. cur) or '0')
  local p = tonumber(redis.call('GET', KEYS[i] .. ':' .. (cur - 1)) or '0')
  if p * (1 - elapsed) + c + cost > limit then
    return {i, math.ceil((win - (now % win)) / 1000)}
  end
end
for i = 1, #KEYS do
  local k = KEYS[i] .. ':' .. cur
  redis.call('INCRBY', k, tonumber(ARGV[2 + 2 * i]))
  redis.call('PEXPIRE', k, win * 2)
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    label: str  # e.g. "requests per minute for this key"; shown to the caller
    key: str
    limit: int
    cost: int


class RateLimiter:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._script_sha: str | None = None

    def clear(self) -> None:
        self._counts.clear()

    async def acquire(self, limits: list[Limit]) -> None:
        """Count the request against every limit, or raise a 429 without counting any."""
        if not limits:
            return
        now_ms = int(time.time() * 1000)
        client = redis()
        if client is None:
            failed, retry_after = self._acquire_local(limits, now_ms)
        else:
            args: list[int] = [now_ms, WINDOW_MS]
            for lim in limits:
                args += [lim.limit, lim.cost]
            failed, retry_after = await client.eval(
                _LUA, len(limits), *[f"th:rl:{lim.key}" for lim in limits], *args
            )
        if failed:
            lim = limits[int(failed) - 1]
            raise rate_limited(
                f"Rate limit reached: {lim.limit} {lim.label}. Retry after {retry_after} s.",
                int(retry_after),
            )

    def _acquire_local(self, limits: list[Limit], now_ms: int) -> tuple[int, int]:
        cur = now_ms // WINDOW_MS
        elapsed = (now_ms % WINDOW_MS) / WINDOW_MS
        for i, lim in enumerate(limits, start=1):
            c = self._counts.get(f"{lim.key}:{cur}", 0)
            p = self._counts.get(f"{lim.key}:{cur - 1}", 0)
            if p * (1 - elapsed) + c + lim.cost > lim.limit:
                return i, math.ceil((WINDOW_MS - now_ms % WINDOW_MS) / 1000)
        if len(self._counts) > 200_000:
            self._counts = {k: v for k, v in self._counts.items() if k.endswith(f":{cur}")}
        for lim in limits:
            slot = f"{lim.key}:{cur}"
            self._counts[slot] = self._counts.get(slot, 0) + lim.cost
        return 0, 0

    async def adjust(self, key: str, delta: int) -> None:
        """Correct a TPM counter once the real token count is known."""
        if delta == 0:
            return
        slot = f"{key}:{int(time.time() * 1000) // WINDOW_MS}"
        client = redis()
        if client is None:
            self._counts[slot] = self._counts.get(slot, 0) + delta
            return
        pipe = client.pipeline(transaction=False)
        pipe.incrby(f"th:rl:{slot}", delta)
        pipe.pexpire(f"th:rl:{slot}", WINDOW_MS * 2)
        await pipe.execute()


limiter = RateLimiter()
