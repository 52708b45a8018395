"""The rate-limit contract on a real 3-node Redis Cluster started for this module.

The cluster runs on spare loopback ports (7100-7199, bus +10000), is made with
``redis-cli --cluster create`` and killed at the end. The app is configured as in
production, with REDIS_URL pointing at one node: the limiter finds the cluster itself. If
redis-server or redis-cli is missing these tests fail; they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from carbon_credits.antifraud.ratelimit import RedisLimiter
from tests import redis_servers
from tests.integration.test_ratelimit import RateLimitContract, new_user, random_ip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_servers.Cluster]:
    with redis_servers.cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


class TestClusterLimiter(RateLimitContract):
    @pytest.fixture
    def redis_url(self, cluster: redis_servers.Cluster) -> str | None:
        return cluster.url

    def check_backend(self, limiter: Any) -> None:
        assert isinstance(limiter, RedisLimiter) and limiter.is_cluster

    def test_dimensions_live_on_their_own_slots(self, limited: Any,
                                                cluster: redis_servers.Cluster) -> None:
        """One request, three keys on (usually) different nodes, each whole on one node."""
        # A key lives one emission interval after a post: 60 s here, long enough to find it.
        poster = limited("events:user=5/300,device=5/300,ip=5/300")
        holders = set()
        for _ in range(12):  # enough subjects that more than one node is involved
            user, device, ip = new_user(), f"dev-{uuid.uuid4().hex}", random_ip()
            assert poster.post(user, device=device, ip=ip).status_code == 201
            for key in (f"rl:{{user:{user}}}:events", f"rl:{{device:{device}}}:events",
                        f"rl:{{ip:{ip}}}:events"):
                holders.add(cluster.node_holding(key).port)
        assert len(holders) > 1
