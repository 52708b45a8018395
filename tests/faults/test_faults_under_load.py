"""Faults under load: Redis stopped and restarted, PostgreSQL restarted, a gunicorn worker
SIGKILLed, while a second process posts a few thousand events over loopback.

The whole production stack runs for real, on its own servers: a PostgreSQL cluster and a
redis-server on spare loopback ports (tests/faults/servers.py), `flask --app app init-db`
once, then gunicorn with the repo's deploy/gunicorn.conf.py and 2 sync workers. The load
generator (tests/faults/loadgen.py, a separate process) posts honest trips of 42 users, one
request in ten a batch, and records what each event was told. Meanwhile this test injects
the faults at set points of the run. Afterwards:

* every event answered 2xx is credited exactly once, with the points it was told;
* every event that got a 5xx or no answer is credited at most once, and a retry with the
  same event_id settles it (200 with the stored result if it had been applied, 201 if not);
* no 500 at all: failures are 503 with Retry-After;
* the service recovers by itself: /readyz is 200 again and both workers are back without
  anyone touching it;
* `flask --app app verify-ledger` exits 0;
* the server's log holds no token and no JWT secret.

Bounded: about a minute. Larger: FAULTS_USERS=200 FAULTS_DAYS=20 FAULTS_RATE=150 (see
RELIABILITY.md).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.faults import loadgen
from tests.faults.figures import record
from tests.faults.servers import REPO, Gunicorn, PostgresCluster, flask_cli
from tests.redis_servers import RedisServer, standalone

pytestmark = pytest.mark.slow

USERS = int(os.environ.get("FAULTS_USERS", "42"))
DAYS = int(os.environ.get("FAULTS_DAYS", "12"))
SLOTS = 6
RATE = float(os.environ.get("FAULTS_RATE", "120"))
ROUNDS = int(os.environ.get("FAULTS_ROUNDS", "1"))
"""How many times the four faults are injected over the run (evenly spread)."""
LOAD_TIMEOUT_S = 90.0 + 3 * USERS * DAYS * SLOTS / RATE
RECOVERY_TIMEOUT_S = 120.0  # a bound for "never", not a target: a boot takes seconds on load
SECRET = "faults-secret-" + uuid.uuid4().hex
RETRY_ATTEMPTS = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """PostgreSQL + Redis + gunicorn of our own; torn down whatever happens."""
    workdir = Path(tmp_path_factory.mktemp("faults"))
    pg = PostgresCluster()
    server: Gunicorn | None = None
    try:
        pg.init()
        with standalone(workdir / "redis") as redis_server:
            env = {**os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis_server.url,
                   "JWT_SECRET": SECRET, "AUTO_INIT_DB": "0", "WEB_CONCURRENCY": "2",
                   # the repo's default threads: concurrent posts go in groups (group commit)
                   "PYTHONUNBUFFERED": "1",
                   "RATE_LIMITS": "events:user=100000/60,device=100000/60,ip=1000000/60"}
            init = flask_cli(env, "init-db")
            assert init.returncode == 0, init.stdout + init.stderr
            server = Gunicorn(env, workdir / "gunicorn.log")
            server.start()
            assert len(server.workers()) == 2
            yield {"pg": pg, "redis": redis_server, "server": server, "env": env,
                   "workdir": workdir}
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def line_count(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def ledger_state(dsn: str, run: str) -> dict[str, tuple[str, int, int, int]]:
    """event_id -> (status, event points, earn entries, earned points) for this run."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT e.event_id, e.status, e.points,"
            "       count(l.id) FILTER (WHERE l.kind = 'earn'),"
            "       coalesce(sum(l.points) FILTER (WHERE l.kind = 'earn'), 0)"
            "  FROM events e LEFT JOIN ledger_entries l ON l.event_pk = e.id"
            " WHERE e.user_id LIKE %s GROUP BY e.id, e.event_id, e.status, e.points",
            (f"{run}-%",)).fetchall()
    found: dict[str, tuple[str, int, int, int]] = {}
    for event_id, status, points, earns, earned in rows:
        assert event_id not in found, f"two event rows for {event_id}"
        found[event_id] = (status, int(points), int(earns), int(earned))
    return found


def kill_a_worker_mid_batch(server: Gunicorn, dsn: str, events: list[dict[str, Any]],
                            user: str) -> tuple[int, list[dict[str, Any]]]:
    """Send a batch of ``events`` (several chunks of work) and SIGKILL the worker that took
    it as soon as its first chunk is committed, mid-batch: its items so far are committed,
    the rest not; the client gets no answer. (Waiting for the database instead of a fixed
    time: a batch is now fast enough to finish before any fixed delay worth waiting.)"""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=loadgen.TIMEOUT_S)
    conn.connect()
    client_port = conn.sock.getsockname()[1]
    told: list[list[dict[str, Any]]] = []

    def send() -> None:
        answer = loadgen.exchange(conn, "/v1/events/batch", {"events": events},
                                  loadgen.token(SECRET, user))
        told.append(loadgen.outcomes(user, events, answer))

    thread = threading.Thread(target=send)
    thread.start()
    try:
        victim = server.worker_serving(client_port)
        with psycopg.connect(dsn, autocommit=True) as watch:
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while not watch.execute("SELECT 1 FROM events WHERE user_id = %s LIMIT 1",
                                    (user,)).fetchone():
                assert time.monotonic() < deadline, "no chunk of the batch was committed"
                time.sleep(0.002)
        server.kill_worker(victim)  # some items committed, most not
    finally:
        thread.join(timeout=loadgen.TIMEOUT_S + 5)
        conn.close()
    assert told, "the batch sent to the killed worker never returned"
    assert told[0][0]["status"] is None, "the killed worker answered its batch"
    return victim, told[0]


def inject(stack: dict[str, Any], results: Path, load: subprocess.Popen[bytes], total: int,
           big_batches: list[tuple[str, list[dict[str, Any]]]]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The four faults at set fractions of the run (ROUNDS times), each while the load is
    still in flight; returns the faults and what the killed workers' clients were told."""
    redis_server: RedisServer = stack["redis"]
    pg: PostgresCluster = stack["pg"]
    server: Gunicorn = stack["server"]
    told: list[dict[str, Any]] = []

    def kill(round_: int) -> Callable[[], int]:
        def action() -> int:
            victim, lines = kill_a_worker_mid_batch(server, pg.dsn, big_batches[round_][1],
                                                    big_batches[round_][0])
            told.extend(lines)
            return victim
        return action

    schedule: list[tuple[float, str, Callable[[], Any]]] = []
    for r in range(ROUNDS):
        base, span = r / ROUNDS, 1 / ROUNDS
        schedule += [
            (base + 0.10 * span, "redis stop", redis_server.stop),
            (base + 0.22 * span, "redis restart", redis_server.start),
            (base + 0.38 * span, "postgresql restart (pg_ctl restart -m fast)", pg.restart),
            (base + 0.58 * span, "SIGKILL the gunicorn worker in the middle of a 200-event "
                                 "batch", kill(r)),
        ]
    done: list[dict[str, Any]] = []
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    for fraction, name, action in schedule:
        while line_count(results) < fraction * total:
            assert load.poll() is None, f"the load ended before '{name}'"
            assert time.monotonic() < deadline, "the load is too slow"
            time.sleep(0.05)
        assert load.poll() is None, f"the load ended before '{name}'"
        at = line_count(results)
        started = time.monotonic()
        action()
        fault: dict[str, Any] = {"fault": name, "at_event": at}
        if name == "redis stop":
            # Not ready while a dependency is down: /readyz says so (ingest goes on).
            fault["readyz_while_down"] = server.status("/readyz")
        else:
            # Back by itself: ready again, with both workers, how long after the fault.
            assert server.wait_ready(RECOVERY_TIMEOUT_S), f"not ready again after '{name}'"
            while len(server.workers()) < 2:
                assert time.monotonic() - started < RECOVERY_TIMEOUT_S, "no worker replaced"
                time.sleep(0.05)
            fault["ready_again_after_s"] = round(time.monotonic() - started, 1)
        done.append(fault)
    return done, told


def settle(port: int, token: str, event: dict[str, Any]) -> loadgen.Answer:
    """Retry one event with the same event_id until the service gives a final answer."""
    answer = loadgen.Answer(None, None, None, "not tried")
    for _ in range(RETRY_ATTEMPTS):
        answer = loadgen.post(port, "/v1/events", event, token)
        if answer.status is not None and answer.status < 500 and answer.status != 429:
            return answer
        time.sleep(min(float(answer.retry_after or 0.5), 1.0))
    return answer


def verify_ledger(env: dict[str, str]) -> str:
    """`flask --app app verify-ledger` must pass (it crashed past 1,000 entries before BUG-4
    was fixed: tests/faults/test_verify_ledger_at_scale.py); returns its verdict line."""
    result = flask_cli(env, "verify-ledger")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_faults_under_load_lose_and_duplicate_nothing(stack: dict[str, Any]) -> None:
    started = time.monotonic()
    server: Gunicorn = stack["server"]
    pg: PostgresCluster = stack["pg"]
    run = f"f{uuid.uuid4().hex[:6]}"
    events = loadgen.plan(run, USERS, DAYS, SLOTS)
    total = sum(len(mine) for mine in events.values())
    requests_sent = len(loadgen.work_items(events)) + ROUNDS
    # Per round one more rider with 200 trips over 25 days, sent as one batch to the worker
    # that is then killed.
    big_batches = [next(iter(loadgen.plan(f"{run}-k{r}", 1, 25, 8).items()))
                   for r in range(ROUNDS)]
    events.update(big_batches)
    by_id = {e["event_id"]: (user, e) for user, mine in events.items() for e in mine}
    results = stack["workdir"] / f"results-{run}.jsonl"
    load = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.loadgen", "--port", str(server.port),
         "--run", run, "--users", str(USERS), "--days", str(DAYS), "--slots", str(SLOTS),
         "--rate", str(RATE), "--out", str(results)],
        cwd=REPO, env={**os.environ, "FAULTS_JWT_SECRET": SECRET}, stdin=subprocess.DEVNULL)
    try:
        faults, killed_told = inject(stack, results, load, total, big_batches)
        load.wait(timeout=LOAD_TIMEOUT_S)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert load.returncode == 0
    load_s = time.monotonic() - started

    # --- the service recovers by itself ------------------------------------------------------
    recovery_started = time.monotonic()
    assert server.wait_ready(RECOVERY_TIMEOUT_S), "/readyz did not come back by itself"
    while len(server.workers()) < 2 and time.monotonic() - recovery_started < RECOVERY_TIMEOUT_S:
        time.sleep(0.1)
    assert len(server.workers()) == 2, "the killed worker was not replaced"
    recovered_s = time.monotonic() - recovery_started

    # --- what each client was told -----------------------------------------------------------
    told = [json.loads(line) for line in results.read_text().splitlines()] + killed_told
    assert sorted(t["event_id"] for t in told) == sorted(by_id), "one line per event"
    statuses = Counter(str(t["status"]) for t in told)
    ok = {t["event_id"]: t for t in told if t["status"] in (200, 201)}
    unsettled = {t["event_id"]: t for t in told if t["status"] is None or t["status"] >= 500
                 or t["status"] == 429}
    refused = [t for t in told if t["event_id"] not in ok and t["event_id"] not in unsettled]
    assert refused == [], f"honest events refused: {refused[:5]}"
    assert not [t for t in told if t["status"] == 500 or t["http"] == 500], "a 500"
    assert all(t["retry_after"] for t in told if t["http"] == 503), "a 503 without Retry-After"
    assert all(t.get("event_status") == "credited" for t in ok.values()), \
        Counter(t.get("event_status") for t in ok.values())

    # --- reconcile with the ledger before any retry ---------------------------------------------
    state = ledger_state(pg.dsn, run)
    assert set(state) <= set(by_id)
    lost = [e for e in ok if e not in state or state[e][2] != 1]
    duplicated = [e for e, s in state.items() if s[2] > 1]
    wrong_points = [e for e, t in ok.items() if e in state and state[e][3] != t["points"]]
    assert (lost, duplicated, wrong_points) == ([], [], [])
    applied_unanswered = [e for e in unsettled if e in state and state[e][2] == 1]
    assert all(state[e][2] <= 1 for e in unsettled if e in state)

    # --- retries with the same event_id settle every one -----------------------------------------
    tokens = {user: loadgen.token(SECRET, user) for user in events}
    retried: Counter[str] = Counter()
    for event_id in sorted(unsettled):
        user, event = by_id[event_id]
        answer = settle(server.port, tokens[user], event)
        retried[str(answer.status)] += 1
        assert answer.status in (200, 201), (event_id, answer)
        # Applied before but unanswered: the retry is a replay (200) of the stored result.
        assert answer.status == (200 if event_id in applied_unanswered else 201), event_id
        ok[event_id] = {"points": answer.body["points"], "status": answer.status}
    final = ledger_state(pg.dsn, run)
    assert set(final) == set(by_id), "an event never settled"
    assert [e for e, s in final.items() if s[2] != 1] == [], "not credited exactly once"
    assert [e for e, t in ok.items() if final[e][3] != t["points"]] == []

    # --- the ledger's own check, and the logs ----------------------------------------------
    verified = verify_ledger(stack["env"])
    log = server.log()
    assert SECRET not in log
    assert not [u for u, t in tokens.items() if t in log or t.split(".")[2] in log]
    assert "unhandled error" not in log

    record("faults: redis stop+restart, postgresql restart, worker SIGKILL under load",
           events=len(by_id), requests=requests_sent, users=len(events),
           faults=faults,
           told_2xx=len(told) - len(unsettled), told_5xx=sum(
               1 for t in told if t["status"] is not None and t["status"] >= 500),
           no_answer=sum(1 for t in told if t["status"] is None), told_429=statuses["429"],
           applied_but_unanswered=len(applied_unanswered), retried=len(unsettled),
           retry_answers=dict(retried), lost=len(lost), duplicated=len(duplicated),
           verify_ledger=verified,
           recovered_in_s=round(recovered_s, 1), load_s=round(load_s, 1),
           total_s=round(time.monotonic() - started, 1))


def raw_request(port: int, headers: dict[str, str], body: bytes | None = None,
                chunked: bytes | None = None) -> tuple[int | None, bytes]:
    """POST /v1/events on a raw connection; returns (status, body), (None, b"") if cut off."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # a bound, not a speed
    try:
        conn.putrequest("POST", "/v1/events")
        for name, value in headers.items():
            conn.putheader(name, value)
        if chunked is not None:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            if chunked is not None:
                for i in range(0, len(chunked), 64 << 10):
                    part = chunked[i:i + (64 << 10)]
                    conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                conn.send(b"0\r\n\r\n")
            elif body is not None:
                conn.send(body)
        except OSError:
            pass  # the server answered early and closed: read its answer below
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        conn.close()


def test_the_real_server_refuses_oversized_requests_cleanly(stack: dict[str, Any]) -> None:
    """Through gunicorn, not the test client: body limits with and without Content-Length,
    and header limits; the server stays ready. (A chunked body over the limit was 400 before
    BUG-3 was fixed: tests/security/test_hostile_input.py.)"""
    server: Gunicorn = stack["server"]
    bearer = {"Authorization": f"Bearer {loadgen.token(SECRET, 'big-body')}",
              "Content-Type": "application/json"}
    big = json.dumps({"padding": "x" * (2 << 20)}).encode()
    status, body = raw_request(server.port, bearer, body=big)
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    status, body = raw_request(server.port, bearer, chunked=big)
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    chunked_status = status
    # Headers: one of 16 KiB, and 200 of them (gunicorn: 8190 bytes and 100 fields).
    status, _ = raw_request(server.port, {**bearer, "X-Big": "h" * (16 << 10)}, body=b"{}")
    assert status in (400, 431, None)
    many = {**bearer, **{f"X-H{i}": "v" for i in range(200)}}
    status, _ = raw_request(server.port, many, body=b"{}")
    assert status in (400, 431, None)
    assert server.wait_ready(RECOVERY_TIMEOUT_S)
    assert "unhandled error" not in server.log() and SECRET not in server.log()
    record("faults: oversized requests through gunicorn",
           content_length_2mib=413, chunked_2mib=chunked_status,
           header_16kib="refused", headers_200="refused")
