"""Reads of reports from a streaming replica (REPORTS_DATABASE_URL), and its lag.

**Which reads.** Partner reports and the verification export (``reports.partner``), which
the dashboard draws, read the rollups through ``Database.reports``. Every write, and every
read inside a write (ingest, redemptions, caps, the rollups' own upkeep), stays on the
primary: a replica answers with what the primary had committed a moment ago, and a
decision taken on that would be wrong.

**Lag, measured on the replica in the report's own transaction** (the same snapshot the
report then reads):

- WAL received and WAL replayed are at the same position, and the WAL receiver is
  streaming: the replica holds everything the primary sent; the lag is 0. (An idle primary
  sends nothing, so ``now() - pg_last_xact_replay_timestamp()`` alone would grow without
  bound on an idle but current replica; comparing positions does not.)
- The receiver is streaming but replay is behind: the lag is
  ``now() - pg_last_xact_replay_timestamp()``, the age of the last transaction replayed.
- No WAL receiver streaming (the primary is down, unreachable, or replication is broken):
  the replica cannot know what it is missing; the lag is unknown and counts as too large.
- The server is not in recovery (REPORTS_DATABASE_URL names a primary): lag 0.

**Staleness bound.** A report served from the replica is at most ``REPORTS_MAX_LAG_S``
behind when replay lags; when it is caught up, it misses at most what is in flight on the
replication connection. A connection that breaks silently (a partition, not a closed
socket) is noticed after ``wal_receiver_timeout`` (PostgreSQL default 60 s): until then the
replica believes it is streaming. The bound is therefore ``max(REPORTS_MAX_LAG_S,
wal_receiver_timeout)``; lower ``wal_receiver_timeout`` on the replica to tighten it.

Over the bound, or the replica unreachable: ``ReportsUnavailable`` (a 503 with
Retry-After), or the primary when ``REPORTS_FALLBACK_PRIMARY=1``. Never a stale answer
beyond the bound. The replica's role needs ``pg_monitor`` (or ``pg_read_all_stats``) to see
``pg_stat_wal_receiver``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from carbon_credits.errors import RETRY_AFTER_S, Unavailable

LAG_SQL = text("""
SELECT pg_is_in_recovery() AS standby,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming,
       pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS caught_up,
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) AS replay_age_s
""")


@dataclass(frozen=True)
class Lag:
    """What the replica says of itself (``LAG_SQL``)."""

    standby: bool
    streaming: bool
    caught_up: bool | None
    replay_age_s: float | None

    @property
    def seconds(self) -> float | None:
        """How far behind the primary the replica is; None: unknown (not streaming)."""
        if not self.standby:
            return 0.0
        if not self.streaming:
            return None
        if self.caught_up:
            return 0.0
        return None if self.replay_age_s is None else max(0.0, self.replay_age_s)

    def within(self, max_lag_s: float) -> bool:
        seconds = self.seconds
        return seconds is not None and seconds <= max_lag_s


def measure(conn: Connection) -> Lag:
    row = conn.execute(LAG_SQL).one()
    return Lag(standby=bool(row.standby), streaming=bool(row.streaming),
               caught_up=None if row.caught_up is None else bool(row.caught_up),
               replay_age_s=None if row.replay_age_s is None else float(row.replay_age_s))


class ReportsUnavailable(Unavailable):
    """The reports replica is unreachable or further behind than REPORTS_MAX_LAG_S."""

    code = "reports_replica_unavailable"

    def __init__(self, why: str) -> None:
        super().__init__(f"reports are read from a replica that is {why}; retry later",
                         headers={"Retry-After": str(RETRY_AFTER_S)})
