"""A streaming replica of a private PostgreSQL cluster (tests/faults/servers.py): taken with
``pg_basebackup -R`` and started with ``pg_ctl`` on a spare port, logging every statement so
a test can see which reads it served."""

from __future__ import annotations

import time

import psycopg

from tests.faults.servers import PostgresCluster, free_port

REPLICATION_WAIT_S = 120.0
"""A bound for a replica that never catches up, not a speed test: a healthy one replays a
small write in milliseconds."""


class Standby:
    """A hot standby of ``primary`` (same OS user and temporary root)."""

    def __init__(self, primary: PostgresCluster) -> None:
        self.primary = primary
        self.data = primary.root / "standby"
        self.log = primary.root / "standby.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/faults"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/faults"

    def create(self) -> None:
        p = self.primary
        p._run(str(p.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(p.port),
               "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream",
               "-c", "fast", "--no-sync")
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        p = self.primary
        p._run(str(p.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
               "-t", "60", *args)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.primary.root} -c listen_addresses=127.0.0.1 "
                   "-c hot_standby=on -c log_statement=all -c fsync=off "
                   "-c max_connections=60")
        self._pg_ctl("-o", options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def statements(self) -> str:
        """The standby's log so far: with log_statement=all, every statement it ran."""
        return self.log.read_text(errors="replace")

    def catch_up(self) -> None:
        """Wait until the standby has replayed all the primary has written so far."""
        with psycopg.connect(self.primary.dsn, autocommit=True) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        self.wait_for("pg_last_wal_replay_lsn() >= %s::pg_lsn", target[0] if target else None)

    def wait_for(self, condition: str, *params: object) -> None:
        deadline = time.monotonic() + REPLICATION_WAIT_S
        while True:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                row = conn.execute(f"SELECT {condition}", params).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby never met {condition}")
            time.sleep(0.05)
