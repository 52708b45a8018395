"""Private redis-server processes on loopback ports, for failure and cluster tests.

The shared Redis on 127.0.0.1:6379 is never stopped or reconfigured: these tests start
their own servers on spare ports (6390-6489 standalone, 7100-7199 cluster, whose bus ports
are +10000), without persistence, and kill them when the fixture ends. A missing
redis-server or redis-cli binary fails the test (it is a real component, see DESIGN §6);
nothing is skipped.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

STANDALONE_PORTS = range(6390, 6490)
"""Wide enough for several runs at once: each holds one for the session, plus its own."""
CLUSTER_PORTS = range(7100, 7200)
BUS_OFFSET = 10_000
START_TIMEOUT_S = 10.0


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install redis-server (apt-get install "
                    "redis-server) - these tests need a real Redis and are never skipped")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _candidate_ports(ports: range, bus: bool) -> list[int]:
    shuffled = random.sample(list(ports), len(ports))
    return [p for p in shuffled if _port_free(p) and (not bus or _port_free(p + BUS_OFFSET))]


class RedisServer:
    """One redis-server on 127.0.0.1:port, no persistence; stop and start it at will."""

    def __init__(self, port: int, workdir: Path, *extra: str) -> None:
        self.port = port
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--logfile", str(self.workdir / f"redis-{self.port}.log"), *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                raise OSError(f"redis-server on port {self.port} exited at start "
                              f"(see {self.workdir})")
            try:
                with self.client() as c:
                    if c.ping():
                        return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, as an operator or systemd stopping Redis would (nothing saved: the
        server runs with --save "" and no AOF); then reap the process."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None


def _start_on_free_port(ports: range, workdir: Path, bus: bool, *extra: str) -> RedisServer:
    """Other test runs may race us for a port: try free-looking ports until one binds."""
    for port in _candidate_ports(ports, bus)[:8]:
        server = RedisServer(port, workdir / str(port), *extra)
        try:
            server.start()
        except OSError:
            continue
        return server
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


@contextmanager
def standalone(workdir: Path) -> Iterator[RedisServer]:
    server = _start_on_free_port(STANDALONE_PORTS, workdir, False)
    try:
        yield server
    finally:
        server.kill()


class Cluster:
    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        """Any node's address: the limiter discovers the cluster from it."""
        return self.nodes[0].url

    def node_holding(self, key: str) -> RedisServer:
        for node in self.nodes:
            with node.client() as c:
                try:
                    if c.exists(key):
                        return node
                except redis.exceptions.MovedError:
                    continue
        raise KeyError(key)


@contextmanager
def cluster(workdir: Path, size: int = 3) -> Iterator[Cluster]:
    """A ``size``-node Redis Cluster (masters only) made with redis-cli --cluster create."""
    nodes: list[RedisServer] = []
    try:
        for _ in range(size):
            nodes.append(_start_on_free_port(
                CLUSTER_PORTS, workdir, True, "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
        created = subprocess.run(
            [binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-replicas", "0",
             "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}"
                               f"{created.stderr}")
        _wait_cluster_ok(nodes)
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.kill()


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + 30
    while True:
        states = []
        for node in nodes:
            with node.client() as c:
                info = c.cluster("INFO")
                states.append(info.get("cluster_state") == "ok"
                              and int(info.get("cluster_known_nodes", 0)) == len(nodes))
        if all(states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
        time.sleep(0.1)
