"""The repo's gunicorn server (carbon_credits/serving.py): threads that accept their own
connections, how they end a stalled request, how the worker stops, and when gthread
serves instead."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tests.faults.servers import Gunicorn, sqlite_gunicorn

pytestmark = pytest.mark.slow

THREADED = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
"""One worker of two threads: what a stalled connection takes is easy to count."""


def stalled(server: Gunicorn) -> socket.socket:
    """A connection whose request line has come and whose headers never end."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return conn


def answer(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_threaded_server_is_the_accepting_worker(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, **THREADED) as server:
        assert server.status("/healthz") == 200
    assert "Using worker: carbon_credits.serving.AcceptThreadsWorker" in server.log()


def test_keep_alive_selects_gthread(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, GUNICORN_KEEPALIVE="5", **THREADED) as server:
        assert server.status("/healthz") == 200
    assert "Using worker: gthread" in server.log()


def test_one_thread_stalled_the_other_serves(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, **THREADED) as server:
        conn = stalled(server)
        try:
            for _ in range(20):
                assert server.status("/healthz") == 200
        finally:
            conn.close()


def test_a_stalled_request_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    """Every thread held by a client that never finishes its headers: after gunicorn's
    ``timeout`` each is closed, and the worker serves again (it is not killed: the same
    pid answers)."""
    with sqlite_gunicorn(tmp_path, ("--timeout", "2"), **THREADED) as server:
        [pid] = server.workers()
        conns = [stalled(server), stalled(server)]
        started = time.monotonic()
        try:
            for conn in conns:
                answer(conn)  # the server closes it: no answer at all, or a 400
            waited = time.monotonic() - started
            assert server.status("/healthz") == 200
        finally:
            for conn in conns:
                conn.close()
        assert 1.5 <= waited < 10
        assert server.workers() == [pid]


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
        server.proc.wait(timeout=20)
        assert server.status("/healthz", timeout=1) is None  # the server is gone
    assert f"Worker exiting (pid: {pid})" in server.log()


def test_workers_recycled_by_max_requests_keep_serving(tmp_path: Path) -> None:
    with sqlite_gunicorn(tmp_path, ("--max-requests", "5", "--max-requests-jitter", "0"),
                         **THREADED) as server:
        first = server.workers()
        statuses = [server.status("/healthz") for _ in range(40)]
        assert statuses == [200] * 40
        assert server.workers() != first  # replaced along the way


def test_connections_go_to_the_longest_idle_thread_of_any_worker(tmp_path: Path) -> None:
    """One connection at a time, each to a thread that has waited longer than the last
    one's: both workers take turns. (With the listener left registered in each thread's
    epoll set, the set registered first took every connection its threads could: one
    worker at 88 % CPU, the other idle.)"""
    with sqlite_gunicorn(tmp_path, WEB_CONCURRENCY="2", GUNICORN_THREADS="2") as server:
        served = []
        for _ in range(8):
            conn = stalled(server)
            served.append(server.worker_serving(conn.getsockname()[1]))
            conn.close()
            time.sleep(0.2)  # its thread sees the close and waits again, last in line
        assert set(served) == set(server.workers())
        assert len(set(served)) == 2
