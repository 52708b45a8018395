"""GET /metrics through gunicorn with two workers: every scrape shows the whole server.

Each worker is its own process with its own counters; deploy/gunicorn.conf.py gives them one
multiprocess directory and /metrics merges it. Without that, a scrape would show only the
worker that happened to answer it.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import factories
from tests.faults import loadgen
from tests.faults.servers import ANSWER_TIMEOUT_S, Gunicorn, sqlite_gunicorn

EVENTS = 40
SECRET = "metrics-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    with sqlite_gunicorn(Path(tmp_path_factory.mktemp("metrics")), secret=SECRET,
                         RATE_LIMITS="events:user=100000/60,ip=1000000/60") as gunicorn:
        assert len(gunicorn.workers()) == 2
        yield gunicorn


def scrape(server: Gunicorn) -> str:
    with urllib.request.urlopen(server.base + "/metrics", timeout=ANSWER_TIMEOUT_S) as response:
        return str(response.read().decode())


def credited(server: Gunicorn) -> float:
    text = scrape(server)
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == "cc_events_total" and s.labels.get("outcome") == "credited")


def test_every_scrape_counts_the_events_of_every_worker(server: Gunicorn) -> None:
    run = uuid.uuid4().hex[:8]
    # The server runs on the real clock, not the tests' pinned one: yesterday's trips are
    # in the past at any hour (today's 00:00 + 40 min were in the future just after midnight).
    start = datetime.now(factories.SHENZHEN).replace(
        hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)

    def post(i: int) -> int | None:
        # One user per event: the posts run concurrently, so both workers take some.
        trip = factories.metro(start=start + timedelta(minutes=i))
        answer = loadgen.post(server.port, "/v1/events", trip,
                              loadgen.token(SECRET, f"{run}-{i}"))
        return answer.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(EVENTS)))
    assert statuses == [201] * EVENTS
    assert [credited(server) for _ in range(6)] == [float(EVENTS)] * 6


def test_recycled_workers_continue_their_predecessors_files(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """With max_requests, gunicorn replaces workers all the time; their metrics files must
    not pile up (one set per worker slot) and no count may be lost with a worker."""
    workdir = Path(tmp_path_factory.mktemp("recycle"))
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    recycling = ("--max-requests", "5", "--max-requests-jitter", "0")
    with sqlite_gunicorn(workdir, recycling, secret=SECRET,
                         PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as gunicorn:
        # Every worker is replaced after 5 requests, about 12 times each. While both boot
        # again a request waits in the listen backlog (seconds on a busy machine), so each
        # one waits for its answer as long as it takes (status's generous bound) and is
        # never sent twice: a retry could count one request twice.
        for _ in range(60):
            assert gunicorn.status("/healthz") == 200
        files_after_60 = sorted(p.name for p in metrics_dir.iterdir())
        for _ in range(60):
            assert gunicorn.status("/healthz") == 200
        files_after_120 = sorted(p.name for p in metrics_dir.iterdir())
        text = scrape(gunicorn)
    assert files_after_120 == files_after_60  # no new files per recycled worker
    assert len(files_after_120) <= 2 * 3  # two worker slots x (counter, histogram, spare)
    healthz = sum(s.value for family in text_string_to_metric_families(text)
                  for s in family.samples
                  if s.name == "cc_http_requests_total" and s.labels.get("route") == "/healthz")
    # readiness polls of the helper also hit /readyz, not /healthz: exactly our 120.
    assert healthz == 120
