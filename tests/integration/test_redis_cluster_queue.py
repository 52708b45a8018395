"""The record-file queue, the webhook queue and the signature nonces on a real 3-node Redis
Cluster, with REDIS_URL naming one node as in production (storage/redis_nodes.py): a
SIGKILLed worker's file is finished by another exactly once, and a receiver failing twice
gets one webhook delivery id three times (the single-Redis tests, run again here); each
queue's keys all live in one slot, and nonces spread over the nodes, each claimed once.
If redis-server or redis-cli is missing these tests fail; they are never skipped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from redis.cluster import RedisCluster

from carbon_credits.providers import jobs
from carbon_credits.providers.nonces import RedisNonces
from carbon_credits.runtime import Runtime
from carbon_credits.storage import redis_nodes
from carbon_credits.webhooks import delivery
from tests import redis_servers
from tests.factories import NOW
from tests.integration.test_record_file_worker import (  # noqa: F401 (fixtures, a test)
    queued_rt,
    test_a_killed_workers_file_is_finished_by_another_exactly_once,
    worker_env,
    workers,
)
from tests.integration.test_webhooks import (  # noqa: F401 (fixtures, a test)
    queued,
    receiver,
    test_a_receiver_failing_twice_gets_one_delivery_id_three_times,
)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[redis_servers.Cluster]:
    with redis_servers.cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


@pytest.fixture
def suite_redis_url(redis_cluster: redis_servers.Cluster) -> str:
    """The imported worker test's Redis: the cluster, through one node's address."""
    return redis_cluster.url


def test_the_queue_on_a_cluster_keeps_all_its_keys_in_one_slot(
        queued_rt: Runtime, redis_cluster: redis_servers.Cluster) -> None:  # noqa: F811
    queue = jobs.queue(queued_rt.config)
    assert queue is not None
    assert isinstance(queue.broker.client, RedisCluster)
    assert queue.broker.namespace == redis_nodes.CLUSTER_QUEUE_NAMESPACE
    for n in range(5):
        queue.enqueue(f"job-{n}")
    keys = [k.decode() for node in redis_cluster.nodes for k in node.client().keys("*")]
    queue_keys = [k for k in keys if k.startswith(redis_nodes.CLUSTER_QUEUE_NAMESPACE)]
    assert f"{redis_nodes.CLUSTER_QUEUE_NAMESPACE}:{jobs.QUEUE_NAME}" in queue_keys
    holders = {redis_cluster.node_holding(k).port for k in queue_keys}
    assert len(holders) == 1
    queue.broker.flush_all()


def test_the_webhook_queue_on_a_cluster_keeps_all_its_keys_in_one_slot(
        queued: Flask, redis_cluster: redis_servers.Cluster) -> None:  # noqa: F811
    rt: Runtime = queued.extensions["carbon_credits"]
    queue = delivery.queue(rt.config)
    assert queue is not None
    assert isinstance(queue.broker.client, RedisCluster)
    assert queue.broker.namespace == delivery.CLUSTER_QUEUE_NAMESPACE
    for n in range(5):  # delayed: the fixture's worker leaves them queued
        queue.actor.send_with_options(args=(f"endpoint-{n}", f"delivery-{n}"),
                                      delay=600_000)
    # Each key with the node it was listed on: the fixture's worker empties and makes
    # queue keys meanwhile, so a key listed may be gone when asked for again.
    listed = [(node.port, k.decode()) for node in redis_cluster.nodes
              for k in node.client().keys("*")]
    queue_keys = [k for _, k in listed if k.startswith(delivery.CLUSTER_QUEUE_NAMESPACE)]
    assert f"{delivery.CLUSTER_QUEUE_NAMESPACE}:{delivery.QUEUE_NAME}.DQ.msgs" in queue_keys
    holders = {port for port, k in listed if k.startswith(delivery.CLUSTER_QUEUE_NAMESPACE)}
    assert len(holders) == 1


def test_nonces_on_a_cluster_are_spread_over_the_nodes_and_claimed_once(
        redis_cluster: redis_servers.Cluster) -> None:
    nonces = RedisNonces(redis.Redis.from_url(redis_cluster.url))
    provider = f"p-{uuid.uuid4().hex[:8]}"
    names = [f"n{i}" for i in range(30)]
    assert all(nonces.claim(provider, n, 300, NOW) for n in names)
    assert not any(nonces.claim(provider, n, 300, NOW) for n in names)
    holders = {redis_cluster.node_holding(f"cc:nonce:{provider}:{n}").port for n in names}
    assert len(holders) == len(redis_cluster.nodes)
