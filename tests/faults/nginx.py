"""deploy/nginx.conf run by a real nginx (Debian's, /usr/sbin/nginx) for the tests and the
bench: the template filled with an upstream and two spare loopback ports, inside a minimal
main config of its own (no daemon, pid, logs and temp files in a temporary directory), so
no system nginx or its files are touched. A missing nginx fails the test (the suite's
prerequisites name it): it is the documented production front, never skipped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.servers import REPO, free_port, http_status

TEMPLATE = REPO / "deploy" / "nginx.conf"
PLACEHOLDERS = ("CC_UPSTREAM", "CC_LISTEN", "CC_METRICS_LISTEN")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                      else None)
    if found is None:
        pytest.fail("nginx is not installed: apt-get install nginx - deploy/nginx.conf is "
                    "the production front and is tested with the real server")
    return found


def fill(template: str, values: dict[str, str]) -> str:
    """The template with each ``${NAME}`` of PLACEHOLDERS replaced, as
    ``envsubst '${CC_UPSTREAM} ...'`` does; nginx's own ``$variables`` are left alone."""
    for name in PLACEHOLDERS:
        template = template.replace("${" + name + "}", values[name])
    assert "${" not in template, "a placeholder of deploy/nginx.conf was left unfilled"
    return template


class Nginx:
    """nginx with deploy/nginx.conf in front of ``upstream`` (host:port), listening on
    127.0.0.1:port (and the metrics server on 127.0.0.1:metrics_port)."""

    def __init__(self, upstream: str, worker_processes: str = "1") -> None:
        self.upstream = upstream
        self.worker_processes = worker_processes
        """nginx's worker_processes: 1 in the tests; the bench gives "auto" (one per core,
        Debian's default)."""
        self.port = free_port()
        self.metrics_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cc-nginx-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        server = self.root / "carbon-credits.conf"
        server.write_text(fill(TEMPLATE.read_text(), {
            "CC_UPSTREAM": self.upstream, "CC_LISTEN": f"127.0.0.1:{self.port}",
            "CC_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}"}))
        temp = "\n".join(f"    {kind}_temp_path {self.root / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, the workers would run as nobody and could not reach the temporary
        # directory (mode 0700); they run as root here, in a test only.
        user = "user root;\n" if os.geteuid() == 0 else ""
        main = self.root / "nginx.conf"
        main.write_text(
            f"{user}daemon off;\nworker_processes {self.worker_processes};\n"
            f"pid {self.root / 'nginx.pid'};\n"
            f"error_log {self.root / 'error.log'} info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {self.root / 'access.log'};\n{temp}\n"
            f"    include {server};\n"
            "}\n")
        return main

    def test_config(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the filled config."""
        main = self.write_config()
        return subprocess.run([nginx_binary(), "-t", "-p", str(self.root), "-c", str(main),
                               "-e", str(self.root / "error.log")],
                              capture_output=True, text=True, timeout=30, check=False)

    def start(self) -> None:
        main = self.write_config()
        self.proc = subprocess.Popen(
            [nginx_binary(), "-p", str(self.root), "-c", str(main),
             "-e", str(self.root / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.error_log()[-3000:]}")
            if self.status("/healthz") is not None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer:\n{self.error_log()[-3000:]}")

    def status(self, path: str, timeout: float = 2.0) -> int | None:
        return http_status(self.base + path, timeout)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
