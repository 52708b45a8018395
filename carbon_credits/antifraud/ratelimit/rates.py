"""Rate limit configuration, subjects and keys.

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
is the client's address again. IPv6 clients are limited per /64 (one subscriber's usual
allocation), IPv4 per address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

DIMENSIONS = ("user", "device", "ip")
DEFAULT_RATE_LIMITS = ("events:user=120/60,device=240/60,ip=1200/60;reports:user=60/60,ip=600/60;"
                       "exports:user=5/3600,ip=60/3600")
"""Operator policy (see the module docstring for the reasoning), overridable by RATE_LIMITS.
Reports (partner reduction and verification exports) read rollups, so each is cheap, but a
script polling them in a loop is not a partner: 60 a minute per token is far above a
dashboard's use (one request per range change). A personal data export (GET /v1/me/export)
reads all of a user's rows: 5 an hour per user is more than anyone downloading their data
needs, and bounds what a stolen token can pull repeatedly."""


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
