"""Throwaway servers for the fault tests: a PostgreSQL cluster and gunicorn, on spare
loopback ports, in temporary directories.

The shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are never touched: the
fault tests restart and kill servers, so they start their own (Redis from
tests/redis_servers.py). PostgreSQL's initdb and postgres refuse to run as root: as root,
these run as the ``postgres`` OS user (which the Debian package creates) on a directory
chowned to it. A missing binary fails the test: these are real components (DESIGN.md
section 6), never skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSWER_TIMEOUT_S = 120.0
"""How long a client waits for the server: a bound for a hung server, never a speed test.
On a busy machine (2 cores, load 7-12) a gunicorn worker took 1.5-4 s to boot and a client
that gave up after 2 s saw no answer at all; a healthy server answers long before this."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def find_postgres_bin() -> Path | None:
    """The directory of the newest PostgreSQL server binaries (initdb, pg_ctl), or None.
    Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


def postgres_bin() -> Path:
    found = find_postgres_bin()
    if found is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
                    "apt-get install postgresql - the fault tests need a real server")
    return found


class PostgresCluster:
    """One PostgreSQL cluster on 127.0.0.1:port with trust auth, database ``faults``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="cc-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/faults"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/faults"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([*self.as_user, *args], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}\n{log}")

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", *args)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "faults")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c max_connections=60")
        self._pg_ctl("-o", options, "start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: open sessions are terminated, in-flight transactions
        roll back, and the server is down for a moment, as in a failover or an upgrade."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._pg_ctl("-m", "immediate", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)



def http_status(url: str, timeout: float) -> int | None:
    """The status of a GET of ``url``; None if nothing answered within ``timeout``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class Gunicorn:
    """gunicorn -c deploy/gunicorn.conf.py app:app (the repo's own config) on
    127.0.0.1:port."""

    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.args = args
        """Extra gunicorn command-line settings (they override the config file's)."""
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        # --bind on the command line only narrows the config's 0.0.0.0 to loopback.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{self.port}", *self.args, "app:app"],
            cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        if not self.wait_ready(ANSWER_TIMEOUT_S):
            raise RuntimeError(f"gunicorn did not become ready:\n{self.log()[-3000:]}")

    def status(self, path: str, timeout: float = ANSWER_TIMEOUT_S) -> int | None:
        return http_status(self.base + path, timeout)

    def wait_ready(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            if self.status("/readyz", timeout=max(0.5, deadline - time.monotonic())) == 200:
                return True
            time.sleep(0.2)
        return False

    def workers(self) -> list[int]:
        """The master's live child processes (the workers)."""
        assert self.proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] not in ("Z", "X"):
                found.append(int(stat.parent.name))
        return sorted(found)

    def worker_serving(self, client_port: int, timeout_s: float = ANSWER_TIMEOUT_S) -> int:
        """The worker that accepted the connection from 127.0.0.1:``client_port``: the
        server side of it in /proc/net/tcp, and which worker holds that socket."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sockets = set()
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                parts = line.split()
                local, remote, inode = parts[1], parts[2], parts[9]
                if (int(local.rsplit(":", 1)[1], 16) == self.port
                        and int(remote.rsplit(":", 1)[1], 16) == client_port and inode != "0"):
                    sockets.add(f"socket:[{inode}]")
            for pid in self.workers():
                try:
                    fds = list(Path(f"/proc/{pid}/fd").iterdir())
                except OSError:
                    continue
                for fd in fds:
                    try:
                        if os.readlink(fd) in sockets:
                            return pid
                    except OSError:
                        continue
            time.sleep(0.01)
        raise TimeoutError(f"no worker took the connection from port {client_port}")

    def kill_worker(self, pid: int) -> int:
        """SIGKILL a worker, as the OOM killer would: no cleanup, its request cut off."""
        os.kill(pid, signal.SIGKILL)
        return pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def flask_cli(env: dict[str, str], *args: str, timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def sqlite_gunicorn(workdir: Path, args: tuple[str, ...] = (), secret: str = "serving-secret",
                    **settings: str) -> Iterator[Gunicorn]:
    """gunicorn (the repo's config, extra ``args``; by default two sync workers) on a SQLite
    database of its own in ``workdir``, with no Redis, JWTs signed with ``secret`` and the
    environment ``settings`` over those defaults."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "CC_METRICS_DIR_MADE")}
    env.update({"DATABASE_URL": f"sqlite:///{workdir / 'server.sqlite3'}", "JWT_SECRET": secret,
                "AUTO_INIT_DB": "0", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "1",
                **settings})
    init = flask_cli(env, "init-db")
    assert init.returncode == 0, init.stdout + init.stderr
    gunicorn = Gunicorn(env, workdir / "gunicorn.log", args=args)
    gunicorn.start()
    try:
        yield gunicorn
    finally:
        gunicorn.stop()
