"""The fault tests' load generator: a second process posting honest trips over loopback.

    python -m tests.faults.loadgen --port P --run RUN --users 42 --days 12 --slots 6 \
        --out results.jsonl      (JWT secret in FAULTS_JWT_SECRET)

Each user rides ``slots`` trips a day over the last ``days`` days (city time): metro and bus
trips two hours apart with realistic durations, never overlapping, well under the daily cap
and the 16-trips-a-day rule, so every one is plausibly creditable. Each event has a unique
event_id. One request in ten is a batch of five of a user's events. Requests go out from
``concurrency`` threads, paced to ``rate`` events a second in all; for every event one JSON
line records what the client was told: the HTTP status (or null: no answer), the item
status within a batch, and the points. The test process injects faults meanwhile and
reconciles these lines with the ledger afterwards.

Standard library and PyJWT only: it runs beside the server, not inside it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jwt

CITY_TZ = ZoneInfo("Asia/Shanghai")
HOURS = (7, 9, 11, 13, 15, 17, 19, 21)
TRIPS = [
    # (mode, fields, minutes): durations give 10-25 km/h over the network distance.
    ("metro", {"entry_station_id": "luohu", "exit_station_id": "shaoniangong"}, 25),
    ("bus", {"line_id": "bus-1", "board_stop_id": "b-luohu", "alight_stop_id": "b-gangxia"},
     20),
    ("metro", {"entry_station_id": "shaoniangong", "exit_station_id": "luohu"}, 25),
    ("bus", {"line_id": "bus-10", "board_stop_id": "b-futiankouan",
             "alight_stop_id": "b-shaoniangong"}, 15),
]
TIMEOUT_S = 15.0


def token(secret: str, sub: str, ttl_s: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": "user", "city": "shenzhen", "iat": now,
                       "exp": now + ttl_s, "iss": "carbon-credits",
                       "aud": "carbon-credits-api"}, secret, algorithm="HS256")


def plan(run: str, users: int, days: int, slots: int) -> dict[str, list[dict[str, Any]]]:
    """user -> that user's events, oldest first."""
    today = datetime.now(CITY_TZ).date()
    events: dict[str, list[dict[str, Any]]] = {}
    for u in range(users):
        user = f"{run}-u{u:03d}"
        mine = events.setdefault(user, [])
        for d in range(days, 0, -1):
            day = today - timedelta(days=d)
            for s in range(slots):
                mode, fields, minutes = TRIPS[(u + d + s) % len(TRIPS)]
                start = datetime(day.year, day.month, day.day, HOURS[s], u % 30, tzinfo=CITY_TZ)
                mine.append({"event_id": f"{run}-{u:03d}-{d:02d}-{s}", "mode": mode,
                             "city": "shenzhen", **fields, "started_at": start.isoformat(),
                             "ended_at": (start + timedelta(minutes=minutes)).isoformat()})
    return events


def work_items(events: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(user, events): single posts, and every tenth request a batch of five; users
    interleaved round-robin so that every user's requests are spread over the run."""
    per_user: dict[str, list[list[dict[str, Any]]]] = {}
    for user, mine in events.items():
        chunks: list[list[dict[str, Any]]] = []
        i = 0
        while i < len(mine):
            size = 5 if len(chunks) % 10 == 9 else 1
            chunks.append(mine[i:i + size])
            i += size
        per_user[user] = chunks
    items: list[tuple[str, list[dict[str, Any]]]] = []
    longest = max(len(c) for c in per_user.values())
    for n in range(longest):
        for user, chunks in per_user.items():
            if n < len(chunks):
                items.append((user, chunks[n]))
    return items


@dataclass
class Answer:
    status: int | None
    body: Any
    retry_after: str | None
    error: str | None


def post(port: int, path: str, body: Any, bearer: str, timeout: float = TIMEOUT_S) -> Answer:
    """One request on a fresh connection (sync workers close after each response anyway)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return exchange(conn, path, body, bearer)
    finally:
        conn.close()


def exchange(conn: http.client.HTTPConnection, path: str, body: Any, bearer: str) -> Answer:
    """POST ``body`` as JSON on ``conn``; any failure to get an answer is "no answer"."""
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {bearer}",
                              "Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")[:200]
        return Answer(response.status, parsed, response.getheader("Retry-After"), None)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, None, None, type(exc).__name__)


def outcomes(user: str, events: list[dict[str, Any]], answer: Answer
             ) -> list[dict[str, Any]]:
    """One line per event: what the client was told about it."""
    lines = []
    batch = len(events) > 1
    for i, event in enumerate(events):
        line: dict[str, Any] = {"user": user, "event_id": event["event_id"], "batch": batch,
                                "http": answer.status, "error": answer.error,
                                "retry_after": answer.retry_after, "t": time.time()}
        status = answer.status
        result = answer.body if isinstance(answer.body, dict) else None
        if batch and answer.status == 200 and result is not None:
            item = result["results"][i]
            status, result = item["status"], item["result"] or item["error"]
        line["status"] = status
        if status in (200, 201) and isinstance(result, dict):
            line["points"] = result.get("points")
            line["event_status"] = result.get("status")
        elif isinstance(result, dict) and "error" in result:
            line["code"] = result["error"].get("code")
        lines.append(line)
    return lines


def send(port: int, user: str, events: list[dict[str, Any]], bearer: str
         ) -> tuple[Answer, list[dict[str, Any]]]:
    if len(events) > 1:
        answer = post(port, "/v1/events/batch", {"events": events}, bearer)
    else:
        answer = post(port, "/v1/events", events[0], bearer)
    return answer, outcomes(user, events, answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--run", required=True, help="prefix of user and event ids")
    parser.add_argument("--users", type=int, default=42)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--slots", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--rate", type=float, default=120.0, help="events per second, in all")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    secret = os.environ["FAULTS_JWT_SECRET"]

    events = plan(args.run, args.users, args.days, args.slots)
    tokens = {user: token(secret, user) for user in events}
    work: queue.Queue[tuple[str, list[dict[str, Any]]] | None] = queue.Queue()
    for item in work_items(events):
        work.put(item)
    for _ in range(args.concurrency):
        work.put(None)
    lock = threading.Lock()
    interval = 1.0 / args.rate
    next_slot = [time.monotonic()]

    with open(args.out, "a", encoding="utf-8") as out:
        def worker() -> None:
            while (item := work.get()) is not None:
                user, chunk = item
                with lock:  # pace the whole process, not each thread
                    wait = next_slot[0] - time.monotonic()
                    next_slot[0] = max(next_slot[0], time.monotonic()) + interval * len(chunk)
                if wait > 0:
                    time.sleep(wait)
                _, lines = send(args.port, user, chunk, tokens[user])
                with lock:
                    for line in lines:
                        out.write(json.dumps(line) + "\n")
                    out.flush()

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
