"""Headless Debian Chromium against the test app behind a real HTTP server.

Needs Debian's ``chromium`` (``apt-get install -y chromium chromium-driver``; ``.ci/run``
installs it). Without it the browser tests fail, on purpose: a skipped browser test proves
nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

BROWSER_TIMEOUT_S = 90


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed: run `apt-get install -y chromium chromium-driver` "
                "(Debian; .ci/run does it) to run the browser tests")


@contextmanager
def serve(wsgi_app: Any) -> Iterator[str]:
    """A WSGI app behind a real HTTP server on a free loopback port; its base URL."""
    httpd = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The test app behind a real HTTP server on a free port."""
    with serve(app) as url:
        yield url


def browse(url: str, tmp_path: Path, *extra: str) -> str:
    """Load ``url`` in headless Chromium (``extra`` flags, e.g. ``--dump-dom``); its stdout."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
               f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
