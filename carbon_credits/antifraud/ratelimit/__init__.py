"""Request rate limits: GCRA in Redis (one script call per request), or in-process.

One interface, ``Limiter`` (``check``/``check_many``), two backends: ``RedisLimiter``
(redis_gcra.py: shared by every process, with an explicit failure policy) and
``LocalLimiter`` (local.py). Configuration, subjects and keys: rates.py; decisions and
the GCRA arithmetic: gcra.py. ``admit`` is where a request's limits are decided: every
route that is limited (events, reports) goes through it or, for the single posts a worker
applies together, through ``Limiter.check_many`` in ingest/events.py's one admit step.
"""

from __future__ import annotations

from collections.abc import Sequence

from carbon_credits.antifraud.ratelimit.gcra import (
    Decision,
    Limiter,
    Request,
    Verdict,
    refusal,
)
from carbon_credits.antifraud.ratelimit.local import LocalLimiter
from carbon_credits.antifraud.ratelimit.rates import (
    DEFAULT_RATE_LIMITS,
    DIMENSIONS,
    MAX_SUBJECT,
    Check,
    Rate,
    RateLimits,
    check_for,
    client_ip,
    device_subject,
    parse_rate_limits,
    rate_limits_from_env,
    safe_subject,
)
from carbon_credits.antifraud.ratelimit.redis_gcra import (
    FAILURES,
    SCRIPT_MANY_SHA,
    SCRIPT_SHA,
    RedisLimiter,
)

__all__ = [
    "DEFAULT_RATE_LIMITS", "DIMENSIONS", "FAILURES", "MAX_SUBJECT", "SCRIPT_MANY_SHA",
    "SCRIPT_SHA", "Check", "Decision", "Limiter", "LocalLimiter", "Rate", "RateLimits",
    "RedisLimiter", "Request", "Verdict", "admit", "check_for", "client_ip",
    "device_subject", "parse_rate_limits", "rate_limits_from_env", "refusal", "safe_subject",
]


def admit(limiter: Limiter, route: str, checks: Sequence[Check], cost: int = 1) -> Decision:
    """Count ``cost`` units of ``route`` on every check (one call to the limiter): the
    decision, whose RateLimit-* headers the answer carries; over any limit, the 429
    (``refusal``) is raised instead and nothing is counted."""
    decision = limiter.check(checks, cost)
    if not decision.allowed:
        raise refusal(route, decision)
    return decision
