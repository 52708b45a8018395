"""Request rate limits: Redis when configured, else an in-process counter.

Fixed windows whose clock is the Redis server's (``TIME`` inside the script), so hosts with
skewed clocks agree. Keys are hash-tagged on the subject ({user:...}) so Redis Cluster keeps
each key on one node. Failure policy: if Redis errors, the request is limited by the
per-process counter instead, the failure is logged and counted; limits resume on Redis as
soon as it answers again. Ledger caps and idempotency live in the database and never depend
on Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the current window ends."""


class Limiter(Protocol):
    def hit(self, key: str, limit: int, window_s: int) -> Decision: ...


class LocalLimiter:
    """Per-process fixed windows: for one-process development and as Redis's fallback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = time.time()
        window = int(now // window_s)
        with self._lock:
            if len(self._windows) > 100_000:  # bound memory: drop windows that ended
                self._windows = {k: v for k, v in self._windows.items() if v[0] >= window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                count = 0
            count += 1
            self._windows[key] = (window, count)
        reset = max(1, int((window + 1) * window_s - now + 0.999))
        return Decision(count <= limit, limit, max(0, limit - count), reset)


# KEYS[1] key prefix; ARGV[1] window seconds. Returns {count, ms until the window ends}.
_SCRIPT = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[1]) * 1000
local window = math.floor(now_ms / window_ms)
local key = KEYS[1] .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, window_ms + 1000) end
return {count, (window + 1) * window_ms - now_ms}
"""


class RedisLimiter:
    def __init__(self, client: redis.Redis, fallback: LocalLimiter | None = None) -> None:
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._fallback = fallback or LocalLimiter()
        self.failures = 0
        """Redis errors seen (exported as a metric)."""

    def hit(self, key: str, limit: int, window_s: int) -> Decision:
        try:
            count, ms_left = self._script(keys=[f"rl:{{{key}}}"], args=[window_s])
        except RedisError as exc:
            self.failures += 1
            log.warning("rate limiter: redis unavailable (%s); using the in-process limiter",
                        type(exc).__name__)
            return self._fallback.hit(key, limit, window_s)
        count, ms_left = int(count), int(ms_left)
        return Decision(count <= limit, limit, max(0, limit - count),
                        max(1, (ms_left + 999) // 1000))
