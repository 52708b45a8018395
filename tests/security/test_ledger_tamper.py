"""Tamper evidence against someone with database access (issue 23): the keyed chain and
checkpoints (carbon_credits/ledger/chain.py, checkpoints.py). Each attack is done in plain
SQL behind the service's back, as a superuser would (triggers off), and verify-ledger must
name the row. Runs on the suite's backend (PostgreSQL by default, SQLite otherwise)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.ledger import chain
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import LedgerEntry, utcnow
from tests import factories
from tests.conftest import app_on_own_database, pinned_clock


@pytest.fixture(autouse=True)
def _restore_keyring() -> Iterator[None]:
    """Apps made here install other chain keys process-wide; the suite's come back after."""
    previous = chain.use_keyring(None)
    chain.use_keyring(previous)
    yield
    chain.use_keyring(previous)


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _tamper(rt: Runtime, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run SQL the way a superuser would: the append-only triggers do not fire."""
    with rt.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_entries_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_entries_no_delete"))
        conn.execute(text(sql), params or {})


def _earn(app: Flask, user: str, trips: int, first_hour: int = 5) -> None:
    rt: Runtime = app.extensions["carbon_credits"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {rt.codec.encode(user, 'user', 'shenzhen', 600)}"}
    for i in range(trips):
        trip = factories.metro(start=factories.today_at(first_hour + i))
        r = client.post("/v1/events", json=trip, headers=headers)
        assert r.status_code in (200, 201), r.json


def _verify(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["verify-ledger", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _entries(rt: Runtime, user: str) -> list[LedgerEntry]:
    with rt.db.transaction() as s:
        found = list(s.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user)
                               .order_by(LedgerEntry.seq)))
        s.expunge_all()
        return found


def _where(entry_id: int, user: str, seq: int) -> str:
    return f"ledger entry {entry_id} (user {user}, seq {seq})"


def _append_forged(rt: Runtime, user: str, points: int, sign: Callable[..., bytes]) -> int:
    """The attack of issue 23: INSERT an adjustment with the next seq, chained to the head
    and hashed by ``sign``, then UPDATE the account to match."""
    head = _entries(rt, user)[-1]
    row: dict[str, Any] = {
        "user_id": user, "seq": head.seq + 1, "kind": "adjustment", "points": points, "ug": 0,
        "balance_after": head.balance_after + points, "event_pk": None, "redemption_pk": None,
        "mode": None, "factor_version_id": None, "created_at": utcnow()}
    row["hash"] = sign(row, head.hash)
    _tamper(rt, "INSERT INTO ledger_entries (user_id, seq, kind, points, ug, balance_after, "
                "event_pk, redemption_pk, mode, factor_version_id, created_at, hash) VALUES "
                "(:user_id, :seq, :kind, :points, :ug, :balance_after, :event_pk, "
                ":redemption_pk, :mode, :factor_version_id, :created_at, :hash)", row)
    _tamper(rt, "UPDATE accounts SET balance_points = :b, entry_count = :n, last_hash = :h "
                "WHERE user_id = :u",
            {"b": row["balance_after"], "n": row["seq"], "h": row["hash"], "u": user})
    return _entries(rt, user)[-1].id


def test_the_forged_row_attack_is_named(isolated_app: Flask) -> None:
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 3)
    assert _verify(isolated_app)[0] == 0
    forged = _append_forged(rt, "victim", 1_000_000, chain.legacy_hash)
    code, output = _verify(isolated_app)
    assert code == 1
    where = _where(forged, "victim", 4)
    assert f"{where}: plain SHA-256 hash on an entry after keyed entries started" in output
    assert f"{where}: adjustment without a redemption of its user" in output


def test_moving_the_legacy_boundary_over_a_forged_row_is_named(isolated_app: Flask) -> None:
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 2)
    forged = _append_forged(rt, "victim", 500, chain.legacy_hash)
    _tamper(rt, "UPDATE ledger_chain_start SET legacy_last_entry_id = :id", {"id": forged})
    code, output = _verify(isolated_app)
    assert code == 1
    assert (f"ledger_chain_start: legacy_last_entry_id {forged} does not match its seal"
            in output)
    assert f"{_where(forged, 'victim', 3)}: plain SHA-256 hash" in output


def test_an_adjustment_hashed_with_the_key_is_still_named_forged(isolated_app: Flask) -> None:
    """Even someone holding the key cannot add points by a kind no code path writes."""
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 2)
    forged = _append_forged(rt, "victim", 500, chain.next_hash)
    code, output = _verify(isolated_app)
    assert code == 1
    assert (f"{_where(forged, 'victim', 3)}: adjustment without a redemption of its user "
            "(no code path writes one: forged)") in output
    assert "hash" not in output.split(_where(forged, "victim", 3))[1].split("\n")[0]


@pytest.mark.parametrize("sign", ["sha256", "wrong key"])
def test_a_rewritten_tail_is_named(isolated_app: Flask, sign: str) -> None:
    """The last two entries recomputed (points raised) with a valid-looking chain, without
    the key: plain SHA-256, or HMAC under a key the service does not hold."""
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 4)
    _earn(isolated_app, "bystander", 2)
    wrong = secrets.token_bytes(32)
    hash_of: Callable[[dict[str, Any], bytes], bytes] = (
        chain.legacy_hash if sign == "sha256"
        else lambda row, prev: chain.keyed_hash(row, prev, wrong))
    entries = _entries(rt, "victim")
    prev, balance = entries[1].hash, entries[1].balance_after
    for entry in entries[2:]:
        values = chain.entry_values(entry)
        values["balance_after"] = balance = balance + entry.points
        values["hash"] = prev = hash_of(values, prev)
        _tamper(rt, "UPDATE ledger_entries SET hash = :hash WHERE id = :id",
                {"hash": values["hash"], "id": entry.id})
    _tamper(rt, "UPDATE accounts SET last_hash = :h WHERE user_id = 'victim'", {"h": prev})
    code, output = _verify(isolated_app)
    assert code == 1
    for entry in entries[2:]:
        assert _where(entry.id, "victim", entry.seq) in output
    for entry in entries[:2]:
        assert _where(entry.id, "victim", entry.seq) not in output
    assert "bystander" not in output


def test_a_deleted_tail_is_named_against_a_checkpoint(isolated_app: Flask,
                                                      tmp_path: Path) -> None:
    """A superuser deletes an account's last entries (and their events' credit) and sets
    the account back to the new head: the remaining chain is valid, and only a copy of the
    heads kept outside the database shows what is missing."""
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 4)
    _earn(isolated_app, "bystander", 2)
    out = tmp_path / "cp.jsonl"
    result = isolated_app.test_cli_runner().invoke(args=["ledger-checkpoint", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "checkpoint of 2 accounts" in result.output
    assert _verify(isolated_app, "--checkpoint", str(out))[0] == 0
    entries = _entries(rt, "victim")
    keep = entries[1]
    gone = [e.event_pk for e in entries[2:]]
    _tamper(rt, "DELETE FROM ledger_entries WHERE user_id = 'victim' AND seq > 2")
    _tamper(rt, "UPDATE events SET status = 'rejected', credited_ug = 0, points = 0 "
                f"WHERE id IN ({', '.join(str(pk) for pk in gone)})")
    lifetime = sum(e.ug for e in entries[:2])
    lifetime_points = sum(e.points for e in entries[:2])
    _tamper(rt, "UPDATE accounts SET balance_points = :b, entry_count = 2, last_hash = :h, "
                "lifetime_ug = :ug, lifetime_points = :p WHERE user_id = 'victim'",
            {"b": keep.balance_after, "h": keep.hash, "ug": lifetime, "p": lifetime_points})
    code, output = _verify(isolated_app)
    assert code == 0, output  # a clean prefix: without the checkpoint, nothing to see
    code, output = _verify(isolated_app, "--checkpoint", str(out))
    assert code == 1
    assert "account victim, seq 4: the checkpointed entry is gone (a deleted tail)" in output
    assert "bystander" not in output


def test_a_rewritten_tail_is_named_against_a_checkpoint(isolated_app: Flask,
                                                        tmp_path: Path) -> None:
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 3)
    out = tmp_path / "cp.jsonl"
    assert isolated_app.test_cli_runner().invoke(
        args=["ledger-checkpoint", "--out", str(out)]).exit_code == 0
    last = _entries(rt, "victim")[-1]
    _tamper(rt, "UPDATE ledger_entries SET hash = :h WHERE id = :id",
            {"h": bytes(32), "id": last.id})
    code, output = _verify(isolated_app, "--checkpoint", str(out))
    assert code == 1
    assert "account victim, seq 3: the entry differs from the checkpoint" in output


def test_an_altered_checkpoint_file_is_refused(isolated_app: Flask, tmp_path: Path) -> None:
    _earn(isolated_app, "victim", 2)
    out = tmp_path / "cp.jsonl"
    assert isolated_app.test_cli_runner().invoke(
        args=["ledger-checkpoint", "--out", str(out)]).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"seq":2', '"seq":1')  # to hide a deleted tail
    out.write_text("".join(lines))
    code, output = _verify(isolated_app, "--checkpoint", str(out))
    assert code == 1
    assert "its MAC does not match its contents" in output


def test_key_rotation_keeps_old_entries_verifiable_until_their_key_is_dropped(
        make_config: Callable[..., Config], tmp_path: Path) -> None:
    k1, k2 = _key(), _key()
    with app_on_own_database(make_config, tmp_path, ledger_chain_keys=f"k1:{k1}") as first:
        _earn(first, "rider", 2)
        url = first.extensions["carbon_credits"].config.database_url

        def app_with(keys: str) -> Flask:
            made = create_app(make_config(database_url=url, ledger_chain_keys=keys))
            made.extensions["carbon_credits"].clock = pinned_clock
            return made

        rotated = app_with(f"k2:{k2},k1:{k1}")  # k2 signs from now on; k1 only verifies
        _earn(rotated, "rider", 2, first_hour=12)
        rt: Runtime = rotated.extensions["carbon_credits"]
        old, new = _entries(rt, "rider")[:2], _entries(rt, "rider")[2:]
        assert len(new) == 2
        for entry, key in [*((e, k1) for e in old), *((e, k2) for e in new)]:
            prev = _entries(rt, "rider")[entry.seq - 2].hash if entry.seq > 1 else bytes(32)
            assert entry.hash == chain.keyed_hash(chain.entry_values(entry), prev,
                                                  base64.b64decode(key))
        code, output = _verify(rotated)
        assert code == 0, output
        assert "checked 1 accounts, 4 entries: OK" in output

        dropped = app_with(f"k2:{k2}")
        code, output = _verify(dropped)
        assert code == 1
        for entry in old:
            assert _where(entry.id, "rider", entry.seq) in output
        assert _where(new[1].id, "rider", new[1].seq) not in output
        assert "ledger_chain_start" in output  # sealed under k1 when the database was made
        for made in (rotated, dropped):
            made.extensions["carbon_credits"].db.dispose()


def test_the_chain_key_is_never_stored_in_the_database(isolated_app: Flask) -> None:
    rt: Runtime = isolated_app.extensions["carbon_credits"]
    _earn(isolated_app, "victim", 1)
    key = rt.config.ledger_chain_keyring()[0][1]
    with rt.db.engine.connect() as conn:
        for table in ("ledger_chain_start", "accounts", "ledger_entries", "audit_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert key not in raw and base64.b64encode(key) not in raw


def test_a_garbled_checkpoint_file_is_named_not_a_crash(isolated_app: Flask,
                                                        tmp_path: Path) -> None:
    _earn(isolated_app, "victim", 1)
    out = tmp_path / "cp.jsonl"
    assert isolated_app.test_cli_runner().invoke(
        args=["ledger-checkpoint", "--out", str(out)]).exit_code == 0
    out.write_text(out.read_text().replace('"user"', '"u'))
    code, output = _verify(isolated_app, "--checkpoint", str(out))
    assert code == 1
    assert "line 2 is not a checkpoint record" in output
