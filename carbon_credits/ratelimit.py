"""Request rate limits: GCRA in Redis (one Lua script per key), or in-process.

Configuration. ``RATE_LIMITS`` names, per route, a rate for each dimension of a request::

    RATE_LIMITS="events:user=120/60,device=240/60,ip=1200/60;reports:user=60/60,ip=600/60"
                                                    (the default)
    RATE_LIMITS="events:user=120/60,ip=1200/60;reports:user=30/60"

Routes: ``events`` (POST /v1/events and /v1/events/batch) and ``reports`` (GET
/v1/reports/*); a route left out of RATE_LIMITS is not limited.

``N/S`` is N requests per S seconds (a batch of k events costs k). The dimensions are
``user`` (the token's ``sub``), ``device`` (the ``X-Device-Id`` header, when sent) and ``ip``
(the client address); a dimension left out is not limited. The default values are operator
policy, not a published number: an honest client posts a few trips and a step count a day
and syncs offline backlogs in batches, so 120 events a minute per user only stops scripts;
a family may share a phone, hence twice that per device; carrier-grade NAT puts many users
behind one address, so the IP limit is a coarse flood guard, ten times the user limit. The
device id is chosen by the client, so the device limit only slows naive farms; the user and
the IP limits are the ones a client cannot dodge.

Client IP. The limiter uses ``request.remote_addr`` and never reads X-Forwarded-For itself,
which any client can forge. Behind a reverse proxy or load balancer, set PROXY_FIX_X_FOR=N,
N the number of trusted proxies in front (1 behind deploy/nginx.conf): the app is then
wrapped in werkzeug's ``ProxyFix(x_for=N)`` (carbon_credits/factory.py), so ``remote_addr``
is the client's address again. IPv6 clients are
limited per /64 (one subscriber's usual allocation), IPv4 per address.

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

Clock: ``now`` is Redis's ``TIME`` inside the script, never the app host's clock, so hosts
with skewed clocks share one timeline. (Scripts are replicated by their effects, so TIME is
safe on Redis >= 5.)

Atomicity and round trips. Each dimension is its own key. On a single Redis the dimensions of
one request go to ONE script call (``_SCRIPT_MANY``: read every key's TAT, decide each, and
move them only if all admit), one round trip, atomic over the request: a request refused by
its IP does not spend its user's allowance. ``check_many`` sends several requests in that
one call (the single posts a worker applies together: services/events.py), decided in
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
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from carbon_credits import metrics
from carbon_credits.errors import RateLimited

log = logging.getLogger(__name__)

DIMENSIONS = ("user", "device", "ip")
DEFAULT_RATE_LIMITS = "events:user=120/60,device=240/60,ip=1200/60;reports:user=60/60,ip=600/60"
"""Operator policy (see the module docstring for the reasoning), overridable by RATE_LIMITS.
Reports (partner reduction and verification exports) read rollups, so each is cheap, but a
script polling them in a loop is not a partner: 60 a minute per token is far above a
dashboard's use (one request per range change)."""

FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What counts as "Redis failed". RedisClusterException is not a RedisError in redis-py."""

MAX_SUBJECT = 128
_SAFE_SUBJECT = re.compile(rf"[A-Za-z0-9._:@/+=-]{{1,{MAX_SUBJECT}}}")
_ROUTE = re.compile(r"[a-z][a-z0-9_]*")


# --- configuration ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period_s`` seconds."""

    limit: int
    period_s: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_s < 1:
            raise ValueError(f"a rate needs a positive count and period, got {self}")
        if self.limit > self.period_s * 1_000_000:
            raise ValueError(f"more than one request per microsecond: {self}")

    @property
    def period_us(self) -> int:
        return self.period_s * 1_000_000

    @property
    def interval_us(self) -> int:
        """GCRA's emission interval. Rounded down: never fewer than ``limit`` per period."""
        return self.period_us // self.limit

    def __str__(self) -> str:
        return f"{self.limit}/{self.period_s}"


@dataclass(frozen=True)
class RateLimits:
    """Route name -> dimension -> rate."""

    routes: Mapping[str, Mapping[str, Rate]]

    def for_route(self, route: str) -> Mapping[str, Rate]:
        return self.routes.get(route, {})

    def __str__(self) -> str:
        return ";".join(f"{route}:" + ",".join(f"{dim}={rate}" for dim, rate in dims.items())
                        for route, dims in self.routes.items())


def parse_rate_limits(text: str, error: type[Exception] = ValueError) -> RateLimits:
    """``"events:user=120/60,ip=1200/60;other:user=5/1"`` -> RateLimits; ``error`` if bad."""
    routes: dict[str, dict[str, Rate]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        route, sep, spec = part.partition(":")
        route = route.strip()
        if not sep or not _ROUTE.fullmatch(route) or route in routes:
            raise error(f"RATE_LIMITS: expected route:dimension=N/S,..., got {part!r}")
        dims: dict[str, Rate] = {}
        for item in filter(None, (i.strip() for i in spec.split(","))):
            dim, sep, rate = item.partition("=")
            dim = dim.strip()
            count, slash, period = rate.partition("/")
            if not sep or dim not in DIMENSIONS or dim in dims or not slash:
                raise error(f"RATE_LIMITS: expected one of {'|'.join(DIMENSIONS)}=N/S "
                            f"for route {route!r}, got {item!r}")
            try:
                dims[dim] = Rate(int(count), int(period))
            except ValueError as exc:
                raise error(f"RATE_LIMITS: {item!r}: {exc}") from None
        routes[route] = dims
    return RateLimits(routes)


def rate_limits_from_env(env: Mapping[str, str], error: type[Exception] = ValueError
                         ) -> RateLimits:
    if "RATE_LIMIT_EVENTS_PER_MINUTE" in env:
        raise error("RATE_LIMIT_EVENTS_PER_MINUTE was replaced by RATE_LIMITS, e.g. "
                    f"RATE_LIMITS={DEFAULT_RATE_LIMITS!r}")
    return parse_rate_limits(env.get("RATE_LIMITS", DEFAULT_RATE_LIMITS), error)


# --- subjects and keys -----------------------------------------------------------------------

def safe_subject(value: str) -> str:
    """The value itself when short and plain, else ``h-`` + 32 hex digits of its SHA-256."""
    if _SAFE_SUBJECT.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"h-{digest[:32]}"


def device_subject(header: str | None) -> str | None:
    """The X-Device-Id header as a key subject; None when absent or blank."""
    if header is None or not header.strip():
        return None
    return safe_subject(header.strip())


def client_ip(remote_addr: str | None) -> str | None:
    """IPv4 address, or the /64 network of an IPv6 address; None when unknown."""
    if not remote_addr:
        return None
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return safe_subject(remote_addr)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True)
class Check:
    """One dimension of one request: the key to count on and its rate."""

    dimension: str
    key: str
    rate: Rate


def check_for(route: str, dimension: str, subject: str, rate: Rate) -> Check:
    """Key ``rl:{dimension:subject}:route``: hash-tagged on the subject for Redis Cluster."""
    return Check(dimension, f"rl:{{{dimension}:{safe_subject(subject)}}}:{route}", rate)


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
