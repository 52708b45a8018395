"""Request rate limits over HTTP: per user, per device, per client IP, batches by their size.

``RateLimitContract`` holds the behaviour every backend must show; it runs here on the
in-process limiter and on a real Redis (REDIS_URL, else a redis-server the suite starts; keys
are unique per test), and in test_ratelimit_cluster.py on a 3-node Redis Cluster.

The limiters run on the real clock (Redis's TIME), so a unit comes back every
period/limit seconds whatever the test does: the rates give 5 s or more per unit wherever
a test expects nothing to come back: a few requests take milliseconds, and even a busy
machine's stalls of a second or so stay far below that. Only the burst test waits for a unit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from carbon_credits.antifraud.plausibility import RULES, Policy
from carbon_credits.antifraud.ratelimit import (
    DEFAULT_RATE_LIMITS,
    Check,
    LocalLimiter,
    Rate,
    RedisLimiter,
    check_for,
    client_ip,
    device_subject,
    parse_rate_limits,
    safe_subject,
)
from carbon_credits.config import Config, ConfigError
from carbon_credits.leaderboards.store import MemoryStore
from tests import factories, redis_servers

LENIENT = Policy(outcomes={rule: "credit" for rule in RULES})
"""Plausibility only flags: these tests post many trips at one instant on purpose."""


def random_ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


class Poster:
    """Posts events as some user, from some address, with some device id."""

    def __init__(self, app: Flask, token: Callable[..., str]) -> None:
        self.app = app
        self.token = token

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def post(self, user: str, *, ip: str = "127.0.0.1", device: str | None = None,
             headers: dict[str, str] | None = None) -> TestResponse:
        sent = {"Authorization": f"Bearer {self.token(user)}", **(headers or {})}
        if device is not None:
            sent["X-Device-Id"] = device
        return self.client().post("/v1/events", json=factories.metro(), headers=sent,
                                  environ_base={"REMOTE_ADDR": ip})

    def batch(self, user: str, size: int, ip: str = "127.0.0.1") -> TestResponse:
        return self.client().post(
            "/v1/events/batch", json={"events": [factories.metro() for _ in range(size)]},
            headers={"Authorization": f"Bearer {self.token(user)}"},
            environ_base={"REMOTE_ADDR": ip})

    @property
    def limiter(self) -> Any:
        return self.app.extensions["carbon_credits"].limiter


def new_user() -> str:
    return f"u-{uuid.uuid4().hex[:16]}"


def assert_refused(r: TestResponse, limit: int, period_s: int) -> int:
    assert r.status_code == 429, (r.status_code, r.json)
    assert r.json["error"]["code"] == "rate_limited"
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= period_s
    assert r.headers["RateLimit-Limit"] == str(limit)
    assert r.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(r.headers["RateLimit-Reset"]) <= period_s
    return retry


class RateLimitContract:
    """What every limiter backend must do; subclasses provide ``redis_url``."""

    expect_backend = "redis"

    @pytest.fixture
    def redis_url(self) -> str | None:
        raise NotImplementedError

    @pytest.fixture
    def limited(self, app: Flask, make_app: Callable[..., Flask], token: Callable[..., str],
                redis_url: str | None) -> Iterator[Callable[[str], Poster]]:
        """``limited("events:user=3/3")`` -> a Poster on an app with those limits.

        ``app`` first: the shared database is initialised before these apps use it."""
        posters: list[Poster] = []

        def make(spec: str, **settings: Any) -> Poster:
            poster = Poster(make_app(rate_limits=parse_rate_limits(spec),
                                     redis_url=redis_url,
                                     plausibility=LENIENT, **settings), token)
            posters.append(poster)
            return poster

        yield make
        for poster in posters:
            limiter = poster.limiter
            if isinstance(limiter, RedisLimiter):  # no silent fallback hid a Redis problem
                assert limiter.failures == 0 and limiter.redis_checks > 0
            self.check_backend(limiter)

    def check_backend(self, limiter: Any) -> None:
        assert isinstance(limiter, RedisLimiter if self.expect_backend == "redis"
                          else LocalLimiter)

    def test_burst_gets_429_with_retry_after_then_passes(self, limited: Any) -> None:
        poster = limited("events:user=3/15")  # a unit back every 5 s
        user = new_user()
        statuses, remaining = [], []
        for _ in range(3):
            r = poster.post(user)
            statuses.append(r.status_code)
            remaining.append(r.headers["RateLimit-Remaining"])
            assert r.headers["RateLimit-Limit"] == "3"
        assert statuses == [201, 201, 201]
        assert remaining == ["2", "1", "0"]
        refused = [poster.post(user) for _ in range(3)]
        retry = max(assert_refused(r, 3, 15) for r in refused)
        other = poster.post(new_user())  # another user is not affected
        assert other.status_code == 201
        time.sleep(retry)
        after = poster.post(user)
        assert after.status_code == 201, after.json
        assert poster.post(user).status_code == 429  # one unit came back, not the burst

    def test_headers_report_the_tightest_dimension(self, limited: Any) -> None:
        poster = limited("events:user=5/30,device=3/30,ip=50/30")
        r = poster.post(new_user(), device=f"dev-{uuid.uuid4().hex}", ip=random_ip())
        assert r.status_code == 201
        assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == ("3", "2")
        assert "Retry-After" not in r.headers

    def test_device_dimension_spans_users(self, limited: Any) -> None:
        poster = limited("events:user=50/30,device=2/30")
        device = f"dev-{uuid.uuid4().hex}"
        a, b = new_user(), new_user()
        assert poster.post(a, device=device).status_code == 201
        assert poster.post(b, device=device).status_code == 201
        assert_refused(poster.post(b, device=device), 2, 30)
        assert poster.post(a, device=f"dev-{uuid.uuid4().hex}").status_code == 201
        assert poster.post(a).status_code == 201  # no header: no device dimension
        # An oversized or odd device id is still counted (as a digest), never a 500.
        odd = "{x}" * 200
        for _ in range(2):
            assert poster.post(new_user(), device=odd).status_code in (201, 422)
        assert poster.post(new_user(), device=odd).status_code == 429

    def test_ip_dimension_ignores_x_forwarded_for(self, limited: Any) -> None:
        poster = limited("events:user=50/30,ip=2/30")
        ip = random_ip()
        assert poster.post(new_user(), ip=ip).status_code == 201
        assert poster.post(new_user(), ip=ip).status_code == 201
        forged = {"X-Forwarded-For": random_ip(), "X-Real-IP": random_ip()}
        assert_refused(poster.post(new_user(), ip=ip, headers=forged), 2, 30)
        assert poster.post(new_user(), ip=random_ip()).status_code == 201
        # IPv6: one /64 is one subscriber.
        net = f"fd{uuid.uuid4().hex[:2]}:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}:1"
        assert poster.post(new_user(), ip=f"{net}::1").status_code == 201
        assert poster.post(new_user(), ip=f"{net}::2").status_code == 201
        assert poster.post(new_user(), ip=f"{net}:ffff::3").status_code == 429

    def test_behind_a_trusted_proxy_the_ip_is_the_one_it_forwards(self, limited: Any
                                                                   ) -> None:
        """PROXY_FIX_X_FOR=1 (deploy/nginx.conf in front): every request comes from the
        proxy's address, and the limit counts the client address the proxy appended, the
        last one of X-Forwarded-For; what a client wrote before it is not trusted."""
        poster = limited("events:user=50/3,ip=2/3", proxy_fix_x_for=1)
        proxy, client = "127.0.0.1", random_ip()
        for forged in (client, f"{random_ip()}, {client}"):
            sent = {"X-Forwarded-For": forged}
            assert poster.post(new_user(), ip=proxy, headers=sent).status_code == 201
        assert_refused(poster.post(new_user(), ip=proxy, headers={
            "X-Forwarded-For": f"{random_ip()}, {client}"}), 2, 3)
        # another client behind the same proxy has a budget of its own
        assert poster.post(new_user(), ip=proxy,
                           headers={"X-Forwarded-For": random_ip()}).status_code == 201

    def test_batch_costs_its_number_of_events(self, limited: Any) -> None:
        poster = limited("events:user=4/40")  # a unit back every 10 s
        user = new_user()
        r = poster.batch(user, 3)
        assert r.status_code == 200
        assert r.headers["RateLimit-Remaining"] == "1"
        assert [item["status"] for item in r.json["results"]] == [201, 201, 201]
        refused = poster.batch(user, 2)  # 2 do not fit in the 1 left
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 40
        assert poster.post(user).status_code == 201  # 1 does
        # A batch larger than the whole limit passes on a full allowance, then is paid back.
        big = new_user()
        assert poster.batch(big, 6).status_code == 200
        after = poster.post(big)
        assert after.status_code == 429
        assert int(after.headers["Retry-After"]) == 30  # (6 + 1 - 4) units of 10 s

    def test_a_refusal_spends_no_other_dimension(self, limited: Any) -> None:
        poster = limited("events:user=3/30,ip=1/30")
        user, ip = new_user(), random_ip()
        assert poster.post(user, ip=ip).status_code == 201
        assert poster.post(user, ip=ip).status_code == 429  # the IP refuses ...
        assert poster.post(user, ip=random_ip()).status_code == 201  # ... the user kept 2
        assert poster.post(user, ip=random_ip()).status_code == 201
        assert poster.post(user, ip=random_ip()).status_code == 429


    def test_many_requests_in_one_call_decide_as_one_after_another(self, limited: Any
                                                                    ) -> None:
        """``check_many`` (a group of posts): each request in order, all or nothing, and a
        later request sees what the earlier ones took."""
        poster = limited("events:user=2/30,ip=3/30")
        rates = parse_rate_limits("events:user=2/30,ip=3/30").for_route("events")
        a, b, ip = new_user(), new_user(), random_ip()

        def request(user: str) -> Any:
            return ([check_for("events", "user", user, rates["user"]),
                     check_for("events", "ip", ip, rates["ip"])], 1)

        decisions = poster.limiter.check_many(
            [request(a), request(a), request(a), request(b), request(b)])
        assert [d.allowed for d in decisions] == [True, True, False, True, False]
        # a's third was refused by its user and spent no IP unit, so b got one; b's
        # second met the IP's limit (a, a, b) and spent none of b's own
        assert [v.dimension for v in decisions[4].verdicts if not v.allowed] == ["ip"]
        assert poster.post(b, ip=random_ip()).status_code == 201

    def test_a_refused_body_still_counts_and_the_limit_is_told_first(self, limited: Any
                                                                     ) -> None:
        """A post refused before it can be applied (invalid, or dated in the future)
        counts against the limits as any post does; over them, the client hears 429, not
        the refusal."""
        poster = limited("events:user=2/30")
        user = new_user()
        auth = {"Authorization": f"Bearer {poster.token(user)}"}
        client = poster.client()
        assert client.post("/v1/events", json={"mode": "metro"}, headers=auth).status_code == 422
        assert poster.post(user).status_code == 201
        assert client.post("/v1/events", json={"mode": "metro"}, headers=auth).status_code == 429
        assert poster.post(user).status_code == 429


class TestLocalLimiter(RateLimitContract):
    expect_backend = "local"

    @pytest.fixture
    def redis_url(self) -> str | None:
        return None


class TestRedisLimiter(RateLimitContract):
    @pytest.fixture
    def redis_url(self, request: pytest.FixtureRequest, suite_redis_url: str) -> str | None:
        """The suite's Redis; for a test that asks for ``own_redis``, that server."""
        if "own_redis" in request.fixturenames:
            own: redis_servers.RedisServer = request.getfixturevalue("own_redis")
            return own.url
        return suite_redis_url

    @pytest.fixture
    def own_redis(self, tmp_path: Any) -> Iterator[redis_servers.RedisServer]:
        """A redis-server of the test's own, for what is server-wide (INFO commandstats,
        SCRIPT FLUSH): on a shared server other clients' scripts would be counted, and
        theirs flushed."""
        with redis_servers.standalone(tmp_path / "redis") as server:
            yield server

    def test_keys_are_hash_tagged_and_expire(self, limited: Any) -> None:
        poster = limited("events:user=3/30")
        user = new_user()
        assert poster.post(user).status_code == 201
        client = poster.app.extensions["carbon_credits"].redis
        key = f"rl:{{user:{user}}}:events"
        assert client.exists(key)
        assert 0 < client.pttl(key) <= 10_000  # GCRA keeps a key only while it matters

    def test_all_dimensions_of_a_request_are_one_script_call(
            self, limited: Any, own_redis: redis_servers.RedisServer) -> None:
        """On a single Redis the user, device and IP of a request are decided by one call
        (one script run on the server, not one per dimension)."""
        poster = limited("events:user=5/30,device=5/30,ip=5/30")
        rt = poster.app.extensions["carbon_credits"]
        client = rt.redis
        # The limiter's scripts only: the leaderboards' (another script call a credited
        # post makes, after its commit) are kept in this process for the test.
        rt.leaderboards = MemoryStore()
        user = new_user()
        assert poster.post(user, device=f"d-{user}").status_code == 201  # script cached

        def script_calls() -> int:
            stats = client.info("commandstats")
            return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                       for name in ("evalsha", "eval"))

        before = script_calls()
        assert poster.post(user, device=f"d-{user}").status_code == 201
        assert script_calls() - before == 1

    def test_many_requests_are_one_script_call(
            self, limited: Any, own_redis: redis_servers.RedisServer) -> None:
        poster = limited("events:user=5/30,ip=50/30")
        rates = poster.app.extensions["carbon_credits"].config.rate_limits.for_route("events")
        client = poster.app.extensions["carbon_credits"].redis
        users = [new_user() for _ in range(4)]
        requests = [([check_for("events", "user", u, rates["user"]),
                      check_for("events", "ip", "10.0.0.1", rates["ip"])], 1) for u in users]
        poster.limiter.check_many(requests[:1])  # the script cached

        def script_calls() -> int:
            stats = client.info("commandstats")
            return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                       for name in ("evalsha", "eval"))

        before = script_calls()
        assert all(d.allowed and d.backend == "redis"
                   for d in poster.limiter.check_many(requests))
        assert script_calls() - before == 1

    def test_a_flushed_script_is_sent_again(
            self, limited: Any, own_redis: redis_servers.RedisServer) -> None:
        """After SCRIPT FLUSH (or a Redis restart) the limiter re-sends its script and keeps
        counting: the limit still holds. (On a server of its own: SCRIPT FLUSH empties the
        whole server's script cache, a shared server's other clients' too.)"""
        poster = limited("events:user=2/30")
        client = poster.app.extensions["carbon_credits"].redis
        user = new_user()
        assert poster.post(user).status_code == 201
        client.script_flush()
        assert poster.post(user).status_code == 201
        assert poster.post(user).status_code == 429
        assert poster.app.extensions["carbon_credits"].limiter.failures == 0


# --- configuration and pieces ----------------------------------------------------------------

def test_default_rate_limits_cover_the_events_route(tmp_path: Any) -> None:
    config = Config.from_env(tmp_path, {})
    assert str(config.rate_limits) == DEFAULT_RATE_LIMITS
    assert config.rate_limits.for_route("events")["user"] == Rate(120, 60)
    custom = Config.from_env(tmp_path, {"RATE_LIMITS": "events:user=10/1; other:ip=5/60"})
    assert custom.rate_limits.for_route("other") == {"ip": Rate(5, 60)}


@pytest.mark.parametrize("spec", [
    "events", "events:user", "events:user=10", "events:user=0/60", "events:user=5/0",
    "events:user=a/60", "events:host=5/60", "events:user=1/1,user=2/2", "Events:user=1/1",
    "events:user=1/1;events:ip=1/1",
])
def test_bad_rate_limits_are_refused_at_start(tmp_path: Any, spec: str) -> None:
    with pytest.raises(ConfigError, match="RATE_LIMITS"):
        Config.from_env(tmp_path, {"RATE_LIMITS": spec})


def test_forwarded_addresses_are_trusted_only_when_configured(tmp_path: Any) -> None:
    assert Config.from_env(tmp_path, {}).proxy_fix_x_for == 0
    assert Config.from_env(tmp_path, {"PROXY_FIX_X_FOR": "1"}).proxy_fix_x_for == 1
    for bad in ("-1", "one", ""):
        with pytest.raises(ConfigError, match="PROXY_FIX_X_FOR"):
            Config.from_env(tmp_path, {"PROXY_FIX_X_FOR": bad})


def test_the_replaced_setting_is_refused_not_ignored(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="RATE_LIMITS"):
        Config.from_env(tmp_path, {"RATE_LIMIT_EVENTS_PER_MINUTE": "120"})


def test_subjects_cannot_break_keys() -> None:
    assert safe_subject("u-123") == "u-123"
    for raw in ("a}b", "{x}", "x" * 129, "ü", "a b", ""):
        assert safe_subject(raw).startswith("h-") and len(safe_subject(raw)) == 34
    assert device_subject(None) is None and device_subject("  ") is None
    assert client_ip("::ffff:10.1.2.3") == "10.1.2.3"
    assert client_ip("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_ip(None) is None
    check = check_for("events", "device", "a}b", Rate(1, 1))
    assert check.key.count("{") == 1 and check.key.count("}") == 1


def test_gcra_bounds_bursts_to_the_limit() -> None:
    """A fixed window admits 2N across a boundary in an instant; GCRA admits N at once, then
    one per emission interval (S/N), and never more than N + t/interval in any t."""
    now = [0]
    limiter = LocalLimiter(clock_ns=lambda: now[0])
    check = [Check("user", "k", Rate(10, 10))]  # 10 per 10 s: one unit a second
    admitted: list[int] = []
    for t_ms in range(0, 30_000, 50):  # a client hammering every 50 ms for 30 s
        now[0] = t_ms * 1_000_000
        if limiter.check(check).allowed:
            admitted.append(t_ms)
    assert admitted[:10] == [50 * i for i in range(10)]  # the burst
    assert admitted[10:] == [1000 * s for s in range(1, 30)]  # then one a second
    for span_ms in (100, 1000, 5000, 10_000):
        worst = max(sum(1 for t in admitted if start <= t < start + span_ms)
                    for start in admitted)
        assert worst <= 10 + span_ms // 1000 + 1
    # Two bursts 100 ms apart (where a fixed window may reset): N in all, not 2N.
    fresh = LocalLimiter(clock_ns=lambda: now[0])
    now[0] = 9_950_000_000
    first = sum(fresh.check(check).allowed for _ in range(10))
    now[0] += 100_000_000
    second = sum(fresh.check(check).allowed for _ in range(10))
    assert (first, second) == (10, 0)


def test_cost_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LocalLimiter().check([Check("user", "k", Rate(1, 1))], cost=0)
