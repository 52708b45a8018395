"""Migration 0003 (compact events) converts rows stored by 0002: from a database at 0002
with events as the old code stored them (payload and explanation JSON), upgrading to head
keeps every event's explanation (now built on read), inputs and payload hash."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask
from sqlalchemy import select, text

from carbon_credits.config import Config
from carbon_credits.factory import create_app
from carbon_credits.ingest import events, idempotency
from carbon_credits.ledger import chain, explain, hooks, verification
from carbon_credits.schemas import load_event
from carbon_credits.setup import MIGRATIONS, init_db, seed_defaults
from carbon_credits.storage.models import Account, Event, LedgerEntry
from carbon_credits.tokens import Principal
from tests import conftest, factories


def _migrate(db: Any, revision: str) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def test_upgrade_from_0002_keeps_every_events_explanation(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    # The old rows: what the service answers today is what 0002's code stored.
    user = Principal(f"m-{uuid.uuid4().hex[:12]}", "user", "shenzhen")
    start = factories.today_at(10)
    bodies = [factories.metro(event_id="metro", start=factories.today_at(8)),
              factories.metro(event_id="overlap", start=factories.today_at(8, 5)),
              factories.metro(event_id="held", start=start,
                              ended_at=(start + timedelta(minutes=2)).isoformat()),
              factories.bus(event_id="tap-on", start=factories.today_at(12)),
              factories.bus(event_id="client", start=factories.today_at(14), distance_m=700),
              factories.steps(20_000, event_id="steps-1"),
              factories.steps(21_000, event_id="steps-2")]
    bodies[3].pop("alight_stop_id")
    answered = {b["event_id"]: events.ingest(rt, user, load_event(b)).event for b in bodies}
    assert {a["status"] for a in answered.values()} >= {"credited", "rejected", "held",
                                                        "capped"}

    with _at_0002(rt, make_config, tmp_path) as app:
        db = app.extensions["carbon_credits"].db
        with db.transaction() as session:
            seed_defaults(session, "shenzhen")
            session.execute(text("INSERT INTO users (id, city, frozen, created_at) "
                                 "VALUES (:u, 'shenzhen', false, :t)"),
                            {"u": user.sub, "t": factories.NOW})
            versions = dict(session.execute(text(
                "SELECT mode, id FROM factor_versions")).all())
            network = session.execute(text("SELECT id FROM networks")).scalar_one()
            for n, body in enumerate(bodies):
                data = load_event(body)
                payload = idempotency.canonical_payload(data)
                shown = answered[body["event_id"]]
                # The first credited metro trip is stored reversed, as a reversal left it.
                status = "reversed" if body["event_id"] == "metro" and \
                    shown["status"] == "credited" else shown["status"]
                session.execute(text(
                    "INSERT INTO events (id, user_id, event_id, mode, city, occurred_at, "
                    "ends_at, local_date, device_id, payload, payload_hash, status, reason, "
                    "avoided_ug, credited_ug, points, factor_version_id, "
                    "methodology_version, network_id, explanation, created_at) VALUES "
                    "(:id, :user_id, :event_id, :mode, 'shenzhen', :occurred_at, :ends_at, "
                    ":local_date, NULL, :payload, :payload_hash, :status, :reason, "
                    ":avoided_ug, :credited_ug, :points, :fv, :version, :network, "
                    ":explanation, :created_at)"), {
                        "id": n + 1, "user_id": user.sub, "event_id": body["event_id"],
                        "mode": body["mode"], "occurred_at": shown["occurred_at"],
                        "ends_at": data.get("ended_at"), "local_date": shown["local_date"],
                        "payload": json.dumps(payload),
                        "payload_hash": idempotency.payload_hash(payload).hex(),
                        "status": status, "reason": shown["reason"],
                        "avoided_ug": shown["explanation"]["avoided_ug"],
                        "credited_ug": shown["explanation"].get("credited_ug", 0),
                        "points": shown["points"], "fv": versions[body["mode"]],
                        "version": shown["methodology"]["version"],
                        "network": None if body["mode"] == "steps" else network,
                        "explanation": json.dumps(shown["explanation"]),
                        "created_at": shown["created_at"]})
            _old_ledger(session, user.sub, stored_credits(session))
        init_db(db, "shenzhen")  # to head: 0003 converts the rows
        runtime = app.extensions["carbon_credits"]
        with db.transaction() as session:
            stored = {e.event_id: e for e in session.scalars(select(Event))}
            assert set(stored) == set(answered)
            for event_id, event in stored.items():
                built = explain.explain(session, runtime.catalog, event)
                assert _json(built) == _json(answered[event_id]["explanation"]), event_id
                body = next(b for b in bodies if b["event_id"] == event_id)
                assert event.payload_hash == idempotency.payload_hash(
                    idempotency.canonical_payload(load_event(body)))
            assert stored["tap-on"].origin == "b-luohu" and stored["tap-on"].destination is None
            assert stored["client"].distance_m == 700
            assert stored["steps-1"].previous_quantity == 0
            assert stored["steps-2"].previous_quantity in (0, 20_000)
            assert stored["held"].notes is not None and stored["metro"].notes is not None
            assert session.get(Account, user.sub).last_hash == \
                session.scalars(select(LedgerEntry.hash).order_by(LedgerEntry.seq.desc())
                                ).first()
        # The chain, now of 32-byte hashes without prev_hash, verifies as before.
        assert list(verification.verify(db, user_ids=[user.sub])) == []


@contextmanager
def _at_0002(rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Flask]:
    """An app on a fresh database of the suite's backend, migrated to 0002 only."""
    url, drop = (conftest._fresh_postgres(rt.config.database_url)
                 if rt.config.database_url.startswith("postgresql")
                 else (f"sqlite:///{tmp_path / 'at-0002.sqlite3'}", None))
    app = create_app(make_config(database_url=url))
    app.extensions["carbon_credits"].clock = conftest.pinned_clock  # as in test_migration_0004
    db = app.extensions["carbon_credits"].db
    # Today's crediting hooks (campaigns, the webhook outbox) need 0009's tables: the
    # rows of the old shape are written without them.
    previous = hooks.install(())
    try:
        _migrate(db, "0002")
        yield app
    finally:
        hooks.install(previous)
        db.dispose()
        if drop is not None:
            drop()


def test_upgrade_stops_on_a_prev_hash_that_does_not_chain(
        rt: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    """prev_hash is dropped only if it always equals the previous entry's hash: an entry
    whose prev_hash does not (a tampered or broken chain) stops the upgrade."""
    with _at_0002(rt, make_config, tmp_path) as app:
        db = app.extensions["carbon_credits"].db
        at = factories.NOW.astimezone(UTC)
        with db.transaction() as session:
            session.execute(text("INSERT INTO users (id, city, frozen, created_at) "
                                 "VALUES ('c-user', 'shenzhen', false, :t)"), {"t": at})
            session.execute(text(
                "INSERT INTO accounts (user_id, balance_points, lifetime_points, lifetime_ug, "
                "carry_ug, entry_count, last_hash, updated_at) VALUES ('c-user', 2, 2, 0, 0, "
                "2, :h, :t)"), {"h": "2" * 64, "t": at})
            for seq, prev, digest in ((1, "0" * 64, "1" * 64), (2, "f" * 64, "2" * 64)):
                session.execute(text(
                    "INSERT INTO ledger_entries (user_id, seq, kind, points, ug, "
                    "balance_after, created_at, prev_hash, hash) VALUES ('c-user', :seq, "
                    "'adjustment', 1, 0, :seq, :t, :prev, :hash)"),
                    {"seq": seq, "t": at, "prev": prev, "hash": digest})
        with pytest.raises(RuntimeError, match="1 ledger entries do not chain"):
            init_db(db, "shenzhen")


def stored_credits(session: Any) -> list[tuple[int, str, int, int, int]]:
    return [tuple(row) for row in session.execute(text(
        "SELECT id, mode, factor_version_id, credited_ug, points FROM events "
        "WHERE credited_ug > 0 ORDER BY id")).all()]


def _old_ledger(session: Any, user_id: str, credits: list[tuple[int, str, int, int, int]]
                ) -> None:
    """Earn entries and the account as 0002's code wrote them: hex hashes, prev_hash."""
    prev, balance, ug_sum = "0" * 64, 0, 0
    at = factories.NOW.astimezone(UTC)
    stored_at = at.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else at
    session.execute(text(
        "INSERT INTO accounts (user_id, balance_points, lifetime_points, lifetime_ug, "
        "carry_ug, entry_count, last_hash, updated_at) VALUES (:u, 0, 0, 0, 0, 0, :h, :t)"),
        {"u": user_id, "h": prev, "t": stored_at})
    for seq, (event_pk, mode, version, ug, points) in enumerate(credits, start=1):
        balance += points
        ug_sum += ug
        row = {"user_id": user_id, "seq": seq, "kind": "earn", "points": points, "ug": ug,
               "balance_after": balance, "event_pk": event_pk, "redemption_pk": None,
               "mode": mode, "factor_version_id": version, "created_at": at}
        digest = chain.row_hash(row, bytes.fromhex(prev)).hex()  # the same material
        session.execute(text(
            "INSERT INTO ledger_entries (user_id, seq, kind, points, ug, balance_after, "
            "event_pk, mode, factor_version_id, created_at, prev_hash, hash) VALUES "
            "(:user_id, :seq, 'earn', :points, :ug, :balance_after, :event_pk, :mode, "
            ":factor_version_id, :created_at, :prev, :hash)"),
            {**row, "created_at": stored_at, "prev": prev, "hash": digest})
        prev = digest
    session.execute(text(
        "UPDATE accounts SET balance_points = :b, lifetime_points = :b, lifetime_ug = :ug, "
        "carry_ug = :c, entry_count = :n, last_hash = :h WHERE user_id = :u"),
        {"u": user_id, "b": balance, "ug": ug_sum, "c": ug_sum % 10**6, "n": len(credits),
         "h": prev})


def test_0003_is_not_reversible() -> None:
    from importlib import import_module
    module = import_module("migrations.versions.0003_compact_events")
    with pytest.raises(NotImplementedError):
        module.downgrade()
