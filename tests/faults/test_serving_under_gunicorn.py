"""The repo's gunicorn config (deploy/gunicorn.conf.py) with gunicorn's own workers:
gthread when threads are configured (sync with one), a stalled client holding one thread
but not the others, a graceful stop, recycled workers. What a stalled client does to a
server with every thread so held, and how nginx in front keeps them away, is in
test_nginx_front.py."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tests.faults.servers import ANSWER_TIMEOUT_S, Gunicorn, sqlite_gunicorn

pytestmark = pytest.mark.slow

THREADED = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
"""One worker of two threads: what a stalled connection takes is easy to count."""


def stalled(server: Gunicorn) -> socket.socket:
    """A connection whose request line has come and whose headers never end."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return conn


def answer(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_threaded_server_is_gunicorns_gthread(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, **THREADED) as server:
        assert server.status("/healthz") == 200
    assert "Using worker: gthread" in server.log()


def test_one_thread_serves_as_sync(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, GUNICORN_THREADS="1", WEB_CONCURRENCY="1") as server:
        assert server.status("/healthz") == 200
    assert "Using worker: sync" in server.log()


def test_one_thread_stalled_the_other_serves(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, **THREADED) as server:
        conn = stalled(server)
        try:
            for _ in range(20):
                assert server.status("/healthz") == 200
        finally:
            conn.close()


def test_sigterm_lets_the_request_in_progress_finish(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, **THREADED) as server:
        [pid] = server.workers()
        conn = stalled(server)
        assert server.worker_serving(conn.getsockname()[1]) == pid  # a thread reads it
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.sendall(b"\r\n")  # the headers end: the request is served, then the worker stops
        reply = answer(conn)
        conn.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        server.proc.wait(timeout=ANSWER_TIMEOUT_S)
        assert server.status("/healthz", timeout=1) is None  # the server is gone
    assert f"Worker exiting (pid: {pid})" in server.log()


def test_workers_recycled_by_max_requests_keep_serving(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, ("--max-requests", "5", "--max-requests-jitter", "0"),
                         **THREADED) as server:
        first = server.workers()
        statuses = [server.status("/healthz") for _ in range(40)]
        assert statuses == [200] * 40
        assert server.workers() != first  # replaced along the way
