"""Decisions and their arithmetic: the limiter interface, and GCRA for every backend.

Algorithm: GCRA (the generic cell rate algorithm, a leaky bucket kept as one timestamp). Per
key Redis stores the "theoretical arrival time" (TAT) in microseconds. A rate of N per S
seconds has an emission interval T = S/N; a request of cost c is admitted when
``now >= TAT + min(c, N)*T - S`` and then moves TAT to ``max(TAT, now) + c*T``. In other
words: a bucket of N units that refills one unit every T. At most N requests pass at once,
and at most N + t/T in any t seconds (so up to about 2N in one S-second span for a client
that starts with a full bucket and then keeps going, and exactly N/S in the long run).
Chosen over
  * fixed windows (the previous implementation, and ``limits``' default): 2N can pass in
    an instant (N just before a window ends, N just after), and Retry-After is "until the
    window ends", up to S seconds, even when the client only needs one more unit;
  * a sliding log (``limits``' moving window): the strictest (never more than N in any S
    seconds), but O(N) memory per key (a list of N timestamps) and, in ``limits``,
    timestamps from the app host's clock;
  * a sliding-window counter: two keys per limit, and an approximation.
GCRA bounds bursts to N, comes back smoothly (Retry-After is the time until one unit is
free, T for a client that keeps hammering, not the rest of a window), keeps one key of a
few bytes per subject, and is O(1) per check. A batch larger than N is admitted only when
the whole allowance is free and then overdraws it (TAT moves c*T ahead), so the long-run
rate still holds while a 500-event offline sync is not refused forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from carbon_credits import metrics
from carbon_credits.antifraud.ratelimit.rates import Check, Rate
from carbon_credits.errors import RateLimited

# --- decisions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What one dimension said. Times are whole seconds, rounded up."""

    dimension: str
    rate: Rate
    allowed: bool
    remaining: int
    reset_s: int
    """Until the whole allowance is free again."""
    retry_after_s: int
    """Until this request would be admitted; 0 when it was."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    verdicts: tuple[Verdict, ...]
    backend: str
    """"redis", "local" (in-process: no Redis configured, or the fallback) or "none"."""

    @property
    def decisive(self) -> Verdict | None:
        """Refused: the refusing dimension that frees last (it decides Retry-After).
        Admitted: the dimension with the fewest remaining (the headers report it)."""
        if not self.verdicts:
            return None
        if not self.allowed:
            return max((v for v in self.verdicts if not v.allowed),
                       key=lambda v: v.retry_after_s)
        return min(self.verdicts, key=lambda v: (v.remaining, -v.reset_s))

    def headers(self) -> dict[str, str]:
        """RateLimit-* (draft-ietf-httpapi-ratelimit-headers) and, when refused, Retry-After."""
        v = self.decisive
        if v is None:
            return {}
        headers = {"RateLimit-Limit": str(v.rate.limit),
                   "RateLimit-Remaining": str(v.remaining),
                   "RateLimit-Reset": str(v.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(v.retry_after_s)
        return headers


Request = tuple[Sequence[Check], int]
"""One request's checks (a dimension each) and its cost."""


class Limiter(Protocol):
    def check(self, checks: Sequence[Check], cost: int = 1) -> Decision:
        """Admit ``cost`` units on every check, or none: refused if any dimension refuses."""
        ...

    def check_many(self, requests: Sequence[Request]) -> list[Decision]:
        """``check`` for each request, in order, as one call: a decision per request, as
        if each were checked after the ones before it."""
        ...


def refusal(route: str, decision: Decision) -> RateLimited:
    """The 429 of a refused decision (counted in the metrics), Retry-After from the
    refusing dimension that frees last."""
    v = decision.decisive
    assert v is not None and not decision.allowed
    metrics.RATE_LIMITED.labels(route, v.dimension).inc()
    return RateLimited(f"more than {v.rate.limit} requests per {v.rate.period_s} s for this "
                       f"{v.dimension} on {route}; retry after {v.retry_after_s} s",
                       headers=decision.headers())


def _ceil_s(us: int) -> int:
    return max(0, -(-us // 1_000_000))


@dataclass(frozen=True)
class _Gcra:
    allowed: bool
    tat_us: int
    remaining: int
    retry_after_us: int
    reset_us: int


def _gcra(stored_tat_us: int | None, now_us: int, rate: Rate, cost: int) -> _Gcra:
    """The same arithmetic as ``_SCRIPT``, for the in-process limiter."""
    interval, period = rate.interval_us, rate.period_us
    tat = max(stored_tat_us if stored_tat_us is not None else now_us, now_us)
    allow_at = tat + min(cost, rate.limit) * interval - period
    if now_us < allow_at:
        return _Gcra(False, tat, (now_us + period - tat) // interval, allow_at - now_us,
                     tat - now_us)
    new_tat = tat + cost * interval
    return _Gcra(True, new_tat, (now_us + period - new_tat) // interval, 0, new_tat - now_us)


def _verdict(check: Check, allowed: bool, remaining: int, retry_after_us: int,
             reset_us: int) -> Verdict:
    retry = max(1, _ceil_s(retry_after_us)) if not allowed else 0
    return Verdict(check.dimension, check.rate, allowed, max(0, remaining), _ceil_s(reset_us),
                   retry)


def _decision(checks: Sequence[Check], replies: Sequence[Any], backend: str) -> Decision:
    """A request's decision from ``_SCRIPT``'s reply per check."""
    verdicts = tuple(_verdict(c, bool(r[0]), int(r[1]), int(r[2]), int(r[3]))
                     for c, r in zip(checks, replies, strict=True))
    return Decision(all(v.allowed for v in verdicts), verdicts, backend)
