"""The shared limiter: GCRA in Redis (one script call per request), with its failure policy.

Clock: ``now`` is Redis's ``TIME`` inside the script, never the app host's clock, so hosts
with skewed clocks share one timeline. (Scripts are replicated by their effects, so TIME is
safe on Redis >= 5.)

Atomicity and round trips. Each dimension is its own key. On a single Redis the dimensions of
one request go to ONE script call (``_SCRIPT_MANY``: read every key's TAT, decide each, and
move them only if all admit), one round trip, atomic over the request: a request refused by
its IP does not spend its user's allowance. ``check_many`` sends several requests in that
one call (the single posts a worker applies together: ingest/events.py), decided in
order as if one after another. On Redis Cluster the keys of user, device and
IP hash to different slots, so a single multi-key script cannot take them all: there each
dimension is its own EVALSHA (``_SCRIPT``, atomic per key), all in ONE non-transactional
pipeline (redis-py's cluster pipeline writes each node's share first and then reads all
replies, so the round trips to the nodes overlap); when one dimension refuses and others
admitted, the admitted ones are refunded (a second round trip, only on that refusal path).
A NOSCRIPT reply (after a Redis restart or SCRIPT FLUSH) is answered by re-sending just
those calls as EVAL, which also caches the script; no SCRIPT EXISTS before each call.

Keys: ``rl:{<dimension>:<subject>}:<route>``. The hash tag is the subject, so every per-user
key of this service (all routes, and any other per-user state hash-tagged the same way)
lives on one cluster node. Subjects outside ``[A-Za-z0-9._:@/+=-]`` or longer than 128
characters (the device header is client-chosen) are replaced by a SHA-256 digest, so no
subject can break a hash tag or grow a key.

Redis Cluster: ``REDIS_URL`` may point at any node of a cluster. On first contact the
limiter asks the node (``INFO cluster``); on a cluster it switches to ``RedisCluster`` with
the same credentials and timeouts, and with no retry back-off (the request path must not
wait seconds for a cluster to heal; the failure policy applies instead).

Failure policy (explicit, tested in tests/integration/test_redis_failure.py). When Redis
fails (connection refused, timeout after 0.5 s, cluster down, any Redis error):
  * the request is decided by a per-process GCRA limiter with the same rates (so with W
    worker processes a client may get up to W times the limit while Redis is down);
    requests never fail because of the limiter, and database caps and idempotency never
    depend on Redis;
  * ``failures`` counts the errors and ``fallback_checks`` the checks decided in-process
    (metrics); a warning is logged once when Redis goes away and once when it answers
    again, not per request;
  * for ``retry_interval_s`` (1 s) after a failure Redis is not tried, so an outage costs
    at most one timeout per process per second; then the next request tries Redis again,
    and from the first answer on, limits are shared in Redis again (``recoveries``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from carbon_credits import metrics
from carbon_credits.antifraud.ratelimit.gcra import Decision, Request, _decision
from carbon_credits.antifraud.ratelimit.local import LocalLimiter, _check_cost
from carbon_credits.antifraud.ratelimit.rates import Check

# One logger for the package: operators filter on "carbon_credits.antifraud.ratelimit".
log = logging.getLogger("carbon_credits.antifraud.ratelimit")

FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What counts as "Redis failed". RedisClusterException is not a RedisError in redis-py."""


# --- Redis -----------------------------------------------------------------------------------

# KEYS[1]: the key. ARGV: limit, period (us), cost (negative: refund that many units).
# Returns {admitted 1|0, remaining, retry after (us), until the allowance is whole (us)}.
# Times are integer microseconds (exact in Lua's doubles up to 2^53, i.e. until year 2255).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = math.floor(period / limit)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if cost < 0 then
  tat = tat + cost * interval
  if tat > now then
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
  return {1, 0, 0, 0}
end
local allow_at = tat + math.min(cost, limit) * interval - period
if now < allow_at then
  return {0, math.floor((now + period - tat) / interval), allow_at - now, tat - now}
end
local new_tat = tat + cost * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
           math.ceil((new_tat - now) / 1000))
return {1, math.floor((now + period - new_tat) / interval), 0, new_tat - now}
"""
SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()

# Several requests at once, each with every dimension, on a single Redis (not a cluster,
# where the keys of one request live on different nodes). KEYS: every request's keys, in
# order. ARGV: the number of requests, then per request its number of keys and its cost,
# then limit and period (us) per key. Decides the requests in order, each key as _SCRIPT
# does, and moves a request's keys only if every one of them admits (a refusal spends
# nothing, so no refund); a later request sees what the earlier ones moved (one client's
# posts share its keys). Returns, per request, _SCRIPT's reply per key.
_SCRIPT_MANY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local moved, replies = {}, {}
local k, a = 1, 2
for r = 1, tonumber(ARGV[1]) do
  local n, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local decided, tats, admitted = {}, {}, true
  for i = 1, n do
    local key = KEYS[k + i - 1]
    local limit = tonumber(ARGV[a + 2 * i - 2])
    local period = tonumber(ARGV[a + 2 * i - 1])
    local interval = math.floor(period / limit)
    local tat = moved[key] or tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local allow_at = tat + math.min(cost, limit) * interval - period
    if now < allow_at then
      admitted = false
      decided[i] = {0, math.floor((now + period - tat) / interval), allow_at - now, tat - now}
    else
      tats[i] = tat + cost * interval
      decided[i] = {1, math.floor((now + period - tats[i]) / interval), 0, tats[i] - now}
    end
  end
  if admitted then
    for i = 1, n do moved[KEYS[k + i - 1]] = tats[i] end
  end
  replies[r] = decided
  k = k + n
  a = a + 2 * n
end
for key, tat in pairs(moved) do
  redis.call('SET', key, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end
return replies
"""
SCRIPT_MANY_SHA = hashlib.sha1(_SCRIPT_MANY.encode()).hexdigest()

RedisClient = redis.Redis | RedisCluster


class RedisLimiter:
    """GCRA in Redis or Redis Cluster, with the failure policy of the module docstring."""

    def __init__(self, client: RedisClient, fallback: LocalLimiter | None = None,
                 retry_interval_s: float = 1.0) -> None:
        self._client = client
        self._cluster: RedisCluster | None = client if isinstance(client, RedisCluster) else None
        self._probed = self._cluster is not None
        self.fallback = fallback or LocalLimiter()
        self.retry_interval_s = retry_interval_s
        self._lock = threading.Lock()
        self._healthy = True
        self._skip_until = 0.0
        self.failures = 0
        """Redis errors seen (a metric)."""
        self.fallback_checks = 0
        """Checks decided in-process because Redis had failed (a metric)."""
        self.redis_checks = 0
        """Checks decided by Redis."""
        self.recoveries = 0
        """Times Redis answered again after failing."""

    @property
    def degraded(self) -> bool:
        return not self._healthy

    @property
    def is_cluster(self) -> bool:
        return self._cluster is not None

    def check(self, checks: Sequence[Check], cost: int = 1) -> Decision:
        return self.check_many([(checks, cost)])[0]

    def check_many(self, requests: Sequence[Request]) -> list[Decision]:
        for _checks, cost in requests:
            _check_cost(cost)
        asked = [(checks, cost) for checks, cost in requests if checks]
        if not asked:
            return [Decision(True, (), "none") for _ in requests]
        now = time.monotonic()
        if now < self._skip_until:
            return self._local_many(requests)
        if not self._healthy:  # one probe per interval; concurrent requests stay local
            self._skip_until = now + self.retry_interval_s
        try:
            backend = self._backend()
            if isinstance(backend, RedisCluster):
                decided = [self._check_cluster(backend, checks, cost) for checks, cost in asked]
            else:
                decided = [_decision(checks, replies, "redis") for (checks, _), replies
                           in zip(asked, self._run_many(backend, asked),
                                  strict=True)]
        except FAILURES as exc:
            self._failed(exc)
            return self._local_many(requests)
        self._answered(len(asked))
        answers = iter(decided)
        return [next(answers) if checks else Decision(True, (), "none")
                for checks, _cost in requests]

    def _check_cluster(self, cluster: RedisCluster, checks: Sequence[Check], cost: int
                       ) -> Decision:
        """One request on a cluster: one EVALSHA per key, in one pipeline; when a dimension
        refuses, what the others took is given back."""
        decision = _decision(checks, self._run(cluster, [(c, cost) for c in checks]), "redis")
        if not decision.allowed:
            admitted = [(c, -cost) for c, v in zip(checks, decision.verdicts, strict=True)
                        if v.allowed]
            if admitted:
                try:
                    self._run(cluster, admitted)
                except FAILURES as exc:  # the refusal stands; the refund is lost
                    self._failed(exc)
        return decision

    @staticmethod
    def _run_many(client: redis.Redis, requests: Sequence[Request]) -> list[Any]:
        """A single Redis: every request, every dimension, in one script call
        (``_SCRIPT_MANY``), one round trip, and nothing to refund on a refusal. In-process,
        one request of 3 dimensions: 126 us of CPU as one pipelined call per dimension,
        101 us as one call (BENCHMARKS.md, "Ingest", fifth round). Its reply, per request,
        is ``_SCRIPT``'s per check."""
        args: list[Any] = [sum(len(checks) for checks, _ in requests),
                           *(c.key for checks, _ in requests for c in checks), len(requests)]
        for checks, cost in requests:
            args += [len(checks), cost]
            args += [n for c in checks for n in (c.rate.limit, c.rate.period_us)]
        run: Any = client.execute_command  # untyped in redis-py
        try:
            replies: list[Any] = run("EVALSHA", SCRIPT_MANY_SHA, *args)
        except NoScriptError:  # after a restart or SCRIPT FLUSH; EVAL caches it again
            replies = run("EVAL", _SCRIPT_MANY, *args)
        return replies

    def _local_many(self, requests: Sequence[Request]) -> list[Decision]:
        return [self._local(checks, cost) if checks else Decision(True, (), "none")
                for checks, cost in requests]

    def _local(self, checks: Sequence[Check], cost: int) -> Decision:
        with self._lock:
            self.fallback_checks += 1
            metrics.LIMITER_FALLBACK_CHECKS.inc()
        return self.fallback.check(checks, cost)

    def _backend(self) -> RedisClient:
        if self._cluster is not None:
            return self._cluster
        if not self._probed:
            assert isinstance(self._client, redis.Redis)
            info: dict[str, Any] = self._client.info("cluster")
            if info.get("cluster_enabled"):
                cluster = _cluster_like(self._client)
                with self._lock:
                    self._cluster = cluster
                log.info("rate limiter: %s is a Redis Cluster node; using the cluster",
                         _address(self._client))
                self._probed = True
                return cluster
            self._probed = True
        return self._client

    @staticmethod
    def _run(backend: RedisClient, calls: Sequence[tuple[Check, int]]) -> list[Any]:
        """One pipelined EVALSHA per call (``cost`` < 0 refunds); EVAL where NOSCRIPT."""
        def queue(pipe: Any, command: str, script: str, check: Check, cost: int) -> None:
            options: dict[str, Any] = {}
            if isinstance(backend, RedisCluster):
                # Route by our one key, computed here: left to itself, redis-py's cluster
                # pipeline asks the server (COMMAND GETKEYS, a round trip) for a script's
                # keys. (And its evalsha() method is blocked in pipelines, hence
                # execute_command.)
                node = backend.get_node_from_key(check.key)  # type: ignore[no-untyped-call]
                options["target_nodes"] = node
            pipe.execute_command(command, script, 1, check.key, check.rate.limit,
                                 check.rate.period_us, cost, **options)

        pipe = backend.pipeline(transaction=False)
        for check, cost in calls:
            queue(pipe, "EVALSHA", SCRIPT_SHA, check, cost)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            pipe = backend.pipeline(transaction=False)
            for i in missing:
                queue(pipe, "EVAL", _SCRIPT, *calls[i])
            for i, reply in zip(missing, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self.failures += 1
            metrics.LIMITER_REDIS_FAILURES.inc()
            self._skip_until = time.monotonic() + self.retry_interval_s
            was_healthy, self._healthy = self._healthy, False
        if was_healthy:
            log.warning("rate limiter: Redis unavailable (%s: %s); limiting per process "
                        "until it answers again", type(exc).__name__, exc)

    def _answered(self, checks: int) -> None:
        if self._healthy:
            with self._lock:
                self.redis_checks += checks
            return
        with self._lock:
            self.redis_checks += checks
            recovered, self._healthy = not self._healthy, True
            if recovered:
                self.recoveries += 1
                self._skip_until = 0.0
            failures = self.failures
        if recovered:
            log.warning("rate limiter: Redis answers again (%d failures so far); limits are "
                        "shared in Redis again", failures)


def _address(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def _cluster_like(client: redis.Redis) -> RedisCluster:
    """A RedisCluster client with ``client``'s node as seed and its credentials/timeouts."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items()
              if k not in ("host", "port", "db", "retry", "path")}
    if issubclass(pool.connection_class, SSLConnection):
        kwargs["ssl"] = True
    return RedisCluster(host=pool.connection_kwargs["host"],
                        port=int(pool.connection_kwargs.get("port", 6379)),
                        retry=Retry(NoBackoff(), 1), **kwargs)
