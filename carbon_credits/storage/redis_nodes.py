"""One Redis or a Redis Cluster behind REDIS_URL, for the nonces and the job queue (issue 24).

``REDIS_URL`` may name any node of a cluster, as for the rate limiter (which probes on its
own: antifraud/ratelimit/redis_gcra.py). ``resolve`` asks the node once (``INFO cluster``)
and answers a ``RedisCluster`` client seeded from it on a cluster, else the client given.
What each user needs of a cluster:

- the **nonces** (providers/nonces.py): one key per SET NX EX, so any key on any node;
- the **record-file queue** (providers/jobs.py): Dramatiq's Redis broker runs every
  operation as one Lua script given one key, its namespace, and builds the queue's other
  keys inside the script (``<namespace>:record_files``, ``...msgs``, ``__acks__...``,
  ``__heartbeats__``). A script may only touch keys of its own node, so on a cluster the
  namespace is the hash tag ``{carbon-credits}``: every key of the queue is in one slot,
  on one node (and its replica), which the cluster client routes the script to. The queue
  is not spread over the nodes (one message a file: it has no load to spread); it fails
  over with its slot. On one Redis the namespace stays ``carbon-credits``, so an upgrade
  finds the messages already queued;
- the **webhook queue** (webhooks/delivery.py): the same broker, the same rule, under its
  own hash tag ``{carbon-credits-webhooks}``.
"""

from __future__ import annotations

import threading

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection
from redis.retry import Retry

RedisClient = redis.Redis | RedisCluster
QUEUE_NAMESPACE = "carbon-credits"
CLUSTER_QUEUE_NAMESPACE = "{carbon-credits}"

_resolved: dict[int, tuple[redis.Redis, RedisClient]] = {}
"""By the id of the client asked, held with it (so the id is not reused while cached)."""
_lock = threading.Lock()


def resolve(client: redis.Redis) -> RedisClient:
    """``client``, or a cluster client seeded from its node when that node is in a cluster;
    probed once per client (a failed probe raises ``redis.RedisError`` and is asked again
    next time)."""
    known = _resolved.get(id(client))
    if known is not None:
        return known[1]
    info = client.info("cluster")
    backend: RedisClient = cluster_like(client) if info.get("cluster_enabled") else client
    with _lock:
        _resolved[id(client)] = (client, backend)
    return backend


def cluster_like(client: redis.Redis) -> RedisCluster:
    """A RedisCluster client with ``client``'s node as seed and its credentials/timeouts."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items()
              if k not in ("host", "port", "db", "retry", "path")}
    if issubclass(pool.connection_class, SSLConnection):
        kwargs["ssl"] = True
    return RedisCluster(host=pool.connection_kwargs["host"],
                        port=int(pool.connection_kwargs.get("port", 6379)),
                        retry=Retry(NoBackoff(), 1), **kwargs)
