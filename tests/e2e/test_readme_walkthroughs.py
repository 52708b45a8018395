"""The README's walkthroughs run as written against the quick start's server.

The server is the quick start's (``.venv/bin/flask --app app run``: SQLite, in-process
limiter, demo network) on the real clock, in a folder of its own that holds links to the
repo's ``.venv``, ``app.py`` and ``docs``, so the commands run there exactly as a reader
runs them from the repo root (only the port differs).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
READY_WITHIN_S = 120
"""Generous: a loaded machine may take many seconds to import and start the app."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quick_start_env(folder: Path) -> dict[str, str]:
    # Without CONSENT_REQUIRED (the suite turns the gate off, tests/conftest.py): the
    # walkthroughs run with the consent gate on, as a new deployment has it.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR",
                        "CONSENT_REQUIRED")}
    return {**env, "HOME": str(folder)}


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The quick start's server in a folder like the repo root; its base URL and folder."""
    venv = Path(sys.executable).parent.parent  # the venv the suite runs in
    (tmp_path / ".venv").symlink_to(venv)
    for name in ("app.py", "docs"):
        (tmp_path / name).symlink_to(REPO / name)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([".venv/bin/flask", "--app", "app", "run", "--port", str(port)],
                              cwd=tmp_path, env=quick_start_env(tmp_path), stdout=log,
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


def run(script: str, folder: Path, base: str) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**quick_start_env(folder), "BASE": base})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def answers(out: str) -> list[dict[str, Any]]:
    """The JSON objects printed on lines of their own (one cut short is skipped)."""
    found = []
    for line in out.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def test_the_first_event_walkthrough_runs_as_written(dev_server: tuple[str, Path]) -> None:
    base, folder = dev_server
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### First event, with curl"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    script = block.group(1).replace("http://127.0.0.1:5000", base)
    lines = answers(run("set -e\n" + script, folder, base))
    trip = next(a for a in lines if a.get("event_id") == "trip-1")
    # The answer the README shows (abridged there).
    assert (trip["status"], trip["grams"], trip["points"]) == ("credited", 376, 376)
    assert trip["explanation"]["distance_m"] == 8038
    assert trip["methodology"] == {"mode": "metro", "version": "sz-2021.1"}
    accounts = [a for a in lines if "balance" in a]
    today, that_day = accounts[0], accounts[1]
    assert today["today"]["total"]["grams"] == 0  # the trip was yesterday's
    assert that_day["day"]["usage"]["total"]["grams"] == 376
    statuses = {a["event_id"]: a["status"] for a in lines if "event_id" in a}
    assert statuses[f"steps-{that_day['day']['local_date']}-a"] == "credited"
    assert statuses["bus-1"] == "credited"
    screen = next(a for a in lines if "streak" in a)
    assert screen["lifetime"]["modes"]["metro"]["grams"] == 376
    assert screen["streak"]["days"] == 1  # yesterday's trips; today may still join
    badges = next(a for a in lines if "earned" in a)
    assert {b["code"] for b in badges["earned"]} >= {"first-metro", "first-bus"}


def test_the_operating_walkthrough_runs_as_written(dev_server: tuple[str, Path]) -> None:
    """docs/examples/operate-a-city.sh, which the README's "Operating a city" describes."""
    base, folder = dev_server
    out = run("bash docs/examples/operate-a-city.sh", folder, base)
    assert "imported lakeside network 2026-12" in out
    lines = answers(out)
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


def test_the_scenario_provider_walkthrough_runs_as_written(dev_server: tuple[str, Path]
                                                           ) -> None:
    """README "Scenario providers": the admin's CLI, the provider's signing program (saved
    as sign_request.py, as the README says), then the user's bind with the code it got."""
    base, folder = dev_server
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Scenario providers"):text.index("## Configuration")]
    blocks = re.findall(r"```(sh|python)\n(.*?)```", section, re.S)
    assert [kind for kind, _ in blocks] == ["sh", "python", "sh"]
    (_, setup), (_, program), (_, binding) = blocks
    (folder / "sign_request.py").write_text(program, encoding="utf-8")
    issued = next(a for a in answers(run("set -e\n" + setup, folder, base)) if "code" in a)
    assert issued["user_ref"] == "card-8800123"
    assert "secret" not in issued
    script = binding.replace("http://127.0.0.1:5000", base).replace("K7QXM-2PDHR",
                                                                     issued["code"])
    bound = answers(run("set -e\n" + script, folder, base))[-1]
    assert (bound["provider_id"], bound["user_ref"], bound["revoked_at"]) == (
        "sz-metro", "card-8800123", None)
