"""The README's "Operating a city" walkthrough (docs/examples/operate-a-city.sh) runs as
written against the quick start's server: the embedded default (SQLite, in-process limiter),
started by ``flask run`` in a folder of its own, on the real clock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "examples" / "operate-a-city.sh"
FLASK = f"{Path(sys.executable).parent / 'flask'} --app {REPO / 'app.py'}"
READY_WITHIN_S = 120
"""Generous: a loaded machine may take many seconds to import and start the app."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quick_start_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    return {**env, "HOME": str(folder)}


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([*FLASK.split(), "run", "--port", str(port)], cwd=tmp_path,
                              env=quick_start_env(tmp_path), stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=10) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the dev server did not answer /healthz"
            time.sleep(0.5)
        yield base, tmp_path
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_the_operating_walkthrough_runs_as_written(dev_server: tuple[str, Path]) -> None:
    base, folder = dev_server
    done = subprocess.run(["bash", str(SCRIPT)], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**quick_start_env(folder), "BASE": base,
                                            "FLASK": FLASK,
                                            "FEED": str(REPO / "docs/examples/lakeside-gtfs")})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "imported lakeside network 2026-12" in out
    lines = [json.loads(line) for line in out.splitlines()
             if line.startswith("{") and line.endswith("}")]  # the audit log's is cut short
    versions = [d for d in lines if d.get("version") == "ls-1"]
    assert [v["mode"] for v in versions] == ["metro", "bus"]
    trip = next(d for d in lines if d.get("event_id") == "first-trip")
    # m1-west -> hub is 2.0 km along M1's shape_dist_traveled; Lakeside's metro factor 78.4.
    assert (trip["status"], trip["grams"]) == ("credited", 156), trip
    assert trip["explanation"]["factor_g_per_pkm"] == "78.4"
    partner, admin = [d for d in lines if "participants_method" in d]
    assert [row["suppressed"] for row in partner["rows"]] == [True]
    assert admin["totals"]["grams"] == 156
    assert '"action":"factor_version.create"' in out
    assert "onboarded lakeside" in out
