"""The production front: real nginx with deploy/nginx.conf before real gunicorn (gthread,
deploy/gunicorn.conf.py) on a SQLite database of its own.

gthread reads a request in a pool thread with a blocking socket, so served directly, each
client that sends its request slowly holds one of the threads: 48 such clients stop a
server of 2 x 16 threads from answering at all. nginx reads each request whole before it
passes it on, so the threads only ever see complete requests. Also: nginx's own errors
come in the API's JSON error shape, /metrics is not public, and an answer given before the
body was read leaves the kept-alive connection to gunicorn usable.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.nginx import Nginx
from tests.faults.servers import Gunicorn, sqlite_gunicorn

pytestmark = pytest.mark.slow

THREADS = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4", "PROXY_FIX_X_FOR": "1"}
"""gthread, one worker of 4 threads: far fewer threads than slow clients."""

SLOW_CLIENTS = 48


@contextmanager
def front(tmp_path: Path, **settings: str) -> Iterator[tuple[Gunicorn, Nginx]]:
    with sqlite_gunicorn(tmp_path, **{**THREADS, **settings}) as server:
        nginx = Nginx(f"127.0.0.1:{server.port}")
        nginx.start()
        try:
            yield server, nginx
        finally:
            nginx.stop()


def read_answer(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own (``Connection: close``): status, headers
    (lower-case names), body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n")
        try:
            conn.sendall(body)
        except OSError:
            pass  # nginx may answer and close before reading the whole body (413)
        answer = read_answer(conn)
    head_bytes, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, payload


def error_shape(payload: bytes) -> dict[str, object]:
    body = json.loads(payload)
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error.get("fields", {}), dict)
    return dict(error)


def test_the_template_is_valid_nginx(tmp_path: Path) -> None:
    nginx = Nginx("127.0.0.1:1")
    try:
        result = nginx.test_config()
    finally:
        nginx.stop()
    assert result.returncode == 0, result.stdout + result.stderr


def test_slow_clients_wait_in_nginx_while_gunicorn_answers(tmp_path: Path) -> None:
    """48 clients each send a POST's headers, then its body a byte a second; meanwhile
    every health probe through nginx is answered, and at the end each slow client, its
    body finished, gets the app's own answer (its connection was held all along)."""
    body = b'{"event_id": "slow", "padding": "' + b"x" * 40 + b'"}'
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with front(tmp_path) as (_server, nginx):
        clients = [socket.create_connection(("127.0.0.1", nginx.port), timeout=30)
                   for _ in range(SLOW_CLIENTS)]
        sent = [0] * SLOW_CLIENTS
        stop = threading.Event()
        failures: list[BaseException] = []

        def drip() -> None:
            try:
                for conn in clients:
                    conn.sendall(head)
                while not stop.is_set():
                    for n, conn in enumerate(clients):
                        if sent[n] < len(body) - 1:  # the last byte only at the end
                            conn.sendall(body[sent[n]:sent[n] + 1])
                            sent[n] += 1
                    stop.wait(1.0)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            deadline = time.monotonic() + 60
            while min(sent) < 2 and time.monotonic() < deadline and not failures:
                time.sleep(0.1)
            assert min(sent) >= 2 and not failures, failures  # every body has begun
            # 60 s: a bound for "never answered" (the failure it guards against), not a speed
            probes = [nginx.status("/healthz", timeout=60) for _ in range(10)]
            assert probes == [200] * 10
            assert not failures, failures  # no slow client was cut off meanwhile
        finally:
            stop.set()
            dripper.join(timeout=30)
        answers = []
        for n, conn in enumerate(clients):
            with conn:
                conn.sendall(body[sent[n]:])
                answers.append(read_answer(conn))
        statuses = {answer[9:12] for answer in answers}
        assert statuses == {b"401"}, statuses  # the app's answer: no token was sent
        assert all(b'"missing_token"' in answer for answer in answers)


def test_nginx_errors_are_json_in_the_api_shape(tmp_path: Path) -> None:
    with front(tmp_path) as (server, nginx):
        # Over the app's 1 MiB: refused by nginx with its own 413, before the app.
        status, headers, payload = raw_request(
            nginx.port, "POST /v1/events HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 2000000\r\n", b"x" * 2_000_000)
        assert status == 413
        assert headers["content-type"] == "application/json"
        assert error_shape(payload)["code"] == "payload_too_large"
        # The GTFS upload takes up to 64 MiB: the same body reaches the app (no token: 401).
        status, _, payload = raw_request(
            nginx.port, "POST /v1/admin/networks/shenzhen?version=v2&reason=r HTTP/1.1\r\n"
            "Host: x\r\nContent-Type: application/zip\r\nContent-Length: 2000000\r\n",
            b"x" * 2_000_000)
        assert status == 401 and error_shape(payload)["code"] == "missing_token"
        # /metrics only on the metrics listener.
        status, _, payload = raw_request(nginx.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert status == 404 and error_shape(payload)["code"] == "not_found"
        status, _, payload = raw_request(nginx.metrics_port,
                                         "GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert status == 200 and b"# TYPE" in payload
        # gunicorn gone: nginx's 502, in the same shape, with Retry-After.
        server.stop()
        status, headers, payload = raw_request(nginx.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert status == 502
        assert headers["content-type"] == "application/json"
        assert headers["retry-after"] == "5"
        assert error_shape(payload)["code"] == "bad_gateway"


@pytest.mark.parametrize(("path", "content_type", "size"), [
    ("/v1/events", "application/json", 300_000),
    # Over the app's 1 MiB but within the feed upload's 64 MiB: drained up to the route's
    # own limit, set before the token is checked.
    ("/v1/admin/networks/shenzhen?version=v2&reason=r", "application/zip", 2_000_000),
])
def test_an_answer_before_the_body_leaves_the_connection_usable(
        tmp_path: Path, path: str, content_type: str, size: int) -> None:
    """A 401 given before the body was read: gunicorn itself would drain 64 KiB of it and
    then close the connection its answer had kept open; the app reads the rest, so the
    next request on the same connection is served."""
    with sqlite_gunicorn(tmp_path, **THREADS) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            conn.request("POST", path, body=b"x" * size, headers={"Content-Type": content_type})
            first = conn.getresponse()
            assert first.status == 401
            first.read()
            sock = conn.sock
            conn.request("GET", "/healthz")
            second = conn.getresponse()
            assert second.status == 200
            second.read()
            assert conn.sock is sock  # the same connection, not a new one
        finally:
            conn.close()


def test_refused_bodies_through_nginx_are_never_a_502(tmp_path: Path) -> None:
    """The same through nginx, whose pooled connection to gunicorn would otherwise be
    closed under the next request (a 502, not retried for a POST)."""
    head = ("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 300000\r\n")
    with front(tmp_path) as (_server, nginx):
        statuses = [raw_request(nginx.port, head, b"x" * 300_000)[0] for _ in range(20)]
    assert statuses == [401] * 20
