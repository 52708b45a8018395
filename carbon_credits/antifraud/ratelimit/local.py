"""The in-process limiter: one process's GCRA, for development and as Redis's fallback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from carbon_credits.antifraud.ratelimit.gcra import Decision, Request, _gcra, _verdict
from carbon_credits.antifraud.ratelimit.rates import Check

# --- in-process ------------------------------------------------------------------------------

class LocalLimiter:
    """Per-process GCRA: for one-process development, and Redis's fallback."""

    MAX_KEYS = 100_000

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def check(self, checks: Sequence[Check], cost: int = 1) -> Decision:
        _check_cost(cost)
        if not checks:
            return Decision(True, (), "none")
        with self._lock:
            now = self._clock_ns() // 1000
            if len(self._tat) > self.MAX_KEYS:  # bound memory: forget subjects gone idle
                self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
            results = [_gcra(self._tat.get(c.key), now, c.rate, cost) for c in checks]
            allowed = all(r.allowed for r in results)
            if allowed:
                for c, r in zip(checks, results, strict=True):
                    self._tat[c.key] = r.tat_us
        return Decision(allowed, tuple(
            _verdict(c, r.allowed, r.remaining, r.retry_after_us, r.reset_us)
            for c, r in zip(checks, results, strict=True)), "local")

    def check_many(self, requests: Sequence[Request]) -> list[Decision]:
        return [self.check(checks, cost) for checks, cost in requests]


def _check_cost(cost: int) -> None:
    if cost < 1:
        raise ValueError(f"a request costs at least 1, got {cost}")
