"""Flask CLI: `flask --app app init-db | token | verify-ledger | ledger-checkpoint | worker |
provider ...`."""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
import dramatiq
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.account import aggregates
from carbon_credits.antifraud import personal_data as antifraud_data
from carbon_credits.api.extensions import runtime
from carbon_credits.errors import ServiceError
from carbon_credits.ingest import operator
from carbon_credits.ingest import personal_data as ingest_data
from carbon_credits.leaderboards import rebuild as leaderboards_rebuild
from carbon_credits.ledger import chain, checkpoints, expiring, settlement
from carbon_credits.ledger.verification import Report, verify
from carbon_credits.networks.gtfs_import import import_gtfs
from carbon_credits.privacy import consents
from carbon_credits.providers import jobs, registry
from carbon_credits.reports import rollups
from carbon_credits.setup import init_db
from carbon_credits.storage import partitions, roles
from carbon_credits.storage.models import utcnow
from carbon_credits.tokens import ROLES
from carbon_credits.webhooks import delivery
from carbon_credits.webhooks import expiring as expiring_webhooks


def register(app: Flask) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(token_command)
    app.cli.add_command(verify_ledger_command)
    app.cli.add_command(ledger_checkpoint_command)
    app.cli.add_command(import_gtfs_command)
    app.cli.add_command(rebuild_rollups_command)
    app.cli.add_command(rebuild_account_command)
    app.cli.add_command(rebuild_leaderboards_command)
    app.cli.add_command(expire_unconfirmed_command)
    app.cli.add_command(expire_points_command)
    app.cli.add_command(grant_service_role_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(webhook_worker_command)
    app.cli.add_command(webhook_sweep_command)
    app.cli.add_command(provider_group)
    app.cli.add_command(partitions_group)
    app.cli.add_command(deem_consent_command)
    app.cli.add_command(reduce_trip_details_command)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create or upgrade the schema; seed default factors and the demo network."""
    rt = runtime()
    added = init_db(rt.db, rt.config.default_city)
    click.echo("schema at head; " + ("added: " + ", ".join(added) if added else "nothing to seed"))


@click.command("token")
@click.option("--sub", required=True, help="user, client or merchant id")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--city", default=None, help="home city (users) or the city a partner may see")
@click.option("--ttl", type=click.IntRange(1, 366 * 86400), default=3600, show_default=True,
              help="lifetime in seconds")
@with_appcontext
def token_command(sub: str, role: str, city: str | None, ttl: int) -> None:
    """Print a signed JWT for development and operations."""
    rt = runtime()
    if role == "partner" and not city:
        raise click.UsageError("a partner token needs --city")
    click.echo(rt.codec.encode(sub, role, city or rt.config.default_city, ttl))  # type: ignore[arg-type]


@click.command("verify-ledger")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="also check every account against this checkpoint file")
@with_appcontext
def verify_ledger_command(checkpoint: Path | None) -> None:
    """Check the keyed hash chains and every ledger invariant (and, with --checkpoint, that
    no account lost or rewrote entries since); exit 1 naming each problem. Run weekly from
    cron (deploy/crontab)."""
    rt = runtime()
    keyring = chain.Keyring(rt.config.ledger_chain_keyring())
    report = Report()
    problems = 0
    found = verify(rt.db, report, keyring=keyring, tz=rt.config.tz)
    if checkpoint is not None:
        found = itertools.chain(found, checkpoints.check(rt.db, keyring, checkpoint))
    for problem in found:
        problems += 1
        click.echo(f"FAIL {problem}", err=True)
    # Months of events out of the table (partitions detach): what was and was not checked.
    for month in report.detached:
        click.echo(f"detached month {month}")
    if report.unchecked:
        click.echo(f"NOT CROSS-CHECKED {report.unchecked} entries whose events are in "
                   "detached and dropped months (attach them from their export to check)")
    click.echo(f"checked {report.accounts} accounts, {report.entries} entries: "
               + ("OK" if not problems else f"{problems} problem(s)"))
    if problems:
        raise SystemExit(1)


@click.command("ledger-checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: instance/checkpoints/ledger-<UTC time>.jsonl)")
@with_appcontext
def ledger_checkpoint_command(out: Path | None) -> None:
    """Write every account's chain head, MACed under the chain key, to a file outside the
    database (run from cron and copy it off the database host; README "Tamper evidence")."""
    rt = runtime()
    now = utcnow()
    path = out or (rt.config.instance_path / "checkpoints"
                   / f"ledger-{now.strftime('%Y%m%dT%H%M%SZ')}.jsonl")
    written = checkpoints.write(rt.db, chain.Keyring(rt.config.ledger_chain_keyring()),
                                path, now)
    click.echo(f"checkpoint of {written.accounts} accounts under key {written.key!r}: "
               f"{written.path}")


@click.command("import-gtfs")
@click.option("--city", required=True, help="city the network serves, e.g. shenzhen")
@click.option("--version", default=None, help="network version label (default: timestamp)")
@click.option("--reason", default="network import", show_default=True,
              help="why, for the audit log")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@with_appcontext
def import_gtfs_command(city: str, version: str | None, reason: str, path: Path) -> None:
    """Load a network from a GTFS zip or folder as the city's newest version (all or nothing)."""
    try:
        summary = import_gtfs(runtime().db, city, path, version, actor="cli", reason=reason)
    except ServiceError as exc:
        # ClickException prints the message ("Error: ..."); a field's detail is added only
        # where the message does not already say it (a broken feed's detail is its message's
        # tail, which was printed twice).
        details = [f"{field}: {message}" for field, messages in exc.fields.items()
                   for message in (messages if isinstance(messages, list) else [messages])
                   if str(message) not in exc.message]
        raise click.ClickException("\n".join([exc.message, *details])) from None
    click.echo(f"imported {city} network {summary['version']} (id {summary['network_id']}): "
               f"{summary['stations']} stations, {summary['metro_stations']} metro stations, "
               f"{summary['routes']} routes, {summary['patterns']} patterns")
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@click.command("rebuild-rollups")
@click.option("--city", default=None, help="only this city (default: every city)")
@with_appcontext
def rebuild_rollups_command(city: str | None) -> None:
    """Recompute the report rollups from the ledger, in one transaction (ingests wait)."""
    started = time.perf_counter()
    with runtime().db.transaction() as session:
        done = rollups.rebuild(session, city)
    click.echo(f"rebuilt rollups of {city or 'every city'}: {done.days} city-days, "
               f"{done.events} live credited events, {done.rollup_rows} rollup rows in "
               f"{time.perf_counter() - started:.1f} s")


@click.command("rebuild-account")
@with_appcontext
def rebuild_account_command() -> None:
    """Recompute the carbon account aggregates from the events, in one transaction."""
    started = time.perf_counter()
    with runtime().db.transaction() as session:
        days, months = aggregates.rebuild(session)
    click.echo(f"rebuilt the carbon account aggregates: {days} day rows, {months} month "
               f"rows in {time.perf_counter() - started:.1f} s")
@click.command("rebuild-leaderboards")
@click.option("--city", default=None, help="only this city (default: every city with events)")
@with_appcontext
def rebuild_leaderboards_command(city: str | None) -> None:
    """Recompute the leaderboards from the ledger and swap them in (after a Redis outage,
    or to start the in-process boards of the embedded default)."""
    rt = runtime()
    for name in [city] if city else leaderboards_rebuild.cities(rt):
        started = time.perf_counter()
        done = leaderboards_rebuild.rebuild(rt, name)
        click.echo(f"rebuilt leaderboards of {name}: {done['boards']} boards, "
                   f"{done['entries']} places, {done['hidden']} hidden, "
                   f"{done['team_members']} team members in "
                   f"{time.perf_counter() - started:.1f} s")


@click.command("expire-unconfirmed")
@with_appcontext
def expire_unconfirmed_command() -> None:
    """Reject client posts no provider's record confirmed within their policy's days (run
    daily from cron: deploy/crontab)."""
    click.echo(f"rejected {operator.expire_unconfirmed(runtime())} unconfirmed posts")


@click.command("expire-points")
@click.option("--batch", type=click.IntRange(1, 10_000), default=expiring.BATCH,
              show_default=True, help="accounts per transaction")
@with_appcontext
def expire_points_command(batch: int) -> None:
    """Lapse points left unclaimed past their city's claim window ('lapse' entries), expire
    the points due today by their city's policy ('expiry' entries), then announce the
    points expiring within EXPIRY_WEBHOOK_DAYS ('points.expiring' webhooks). Run it daily
    from cron; running it again lapses, expires and announces nothing twice."""
    started = time.perf_counter()
    rt = runtime()
    lapsed = settlement.lapse_unclaimed(rt, utcnow(), batch=batch)
    run = expiring.expire_due(rt, utcnow(), batch=batch)
    told = expiring_webhooks.announce_expiring(rt, utcnow(), batch=batch)
    click.echo(f"lapsed {lapsed} unclaimed points; expired {run.expired_points} points of "
               f"{run.expired_accounts} accounts; {run.accounts} accounts folded in "
               f"{run.batches} batches; announced {told.notices} expiry dates "
               f"({told.points} points) to webhooks, {time.perf_counter() - started:.1f} s")
@click.command("deem-consent")
@click.option("--note", required=True,
              help="why consent is deemed given (kept with each row and in the audit log), "
                   "e.g. the terms existing users accepted")
@click.option("--city", default=None, help="only users of this home city (default: all)")
@with_appcontext
def deem_consent_command(note: str, city: str | None) -> None:
    """Record a deemed acceptance of the current privacy notice for every existing user with
    no consent recorded (a deployment older than the notice; README "Consent")."""
    rt = runtime()
    if len(note.strip()) < 3:
        raise click.UsageError("--note: say why, in at least 3 characters")
    count = consents.deem(rt.db, rt.config.privacy_notice_version, note.strip()[:300], "cli",
                          city)
    click.echo(f"recorded deemed consent to notice {rt.config.privacy_notice_version} for "
               f"{count} users")


@click.command("reduce-trip-details")
@click.option("--days", type=click.IntRange(1), default=None,
              help="older than this many days (default TRIP_DETAIL_RETENTION_DAYS)")
@with_appcontext
def reduce_trip_details_command(days: int | None) -> None:
    """Retention: delete the trip details (stations, line, device id, times of day) of events
    older than the retention period, keeping what the ledger, reports and MRV export need;
    in batches, each its own transaction (run daily; README "Retention")."""
    rt = runtime()
    days = days or rt.config.trip_detail_retention_days
    if days <= rt.config.backfill_days:
        raise click.UsageError(f"--days must exceed BACKFILL_DAYS ({rt.config.backfill_days})")
    cutoff = rt.clock() - timedelta(days=days)
    before = cutoff.astimezone(rt.config.tz).date()
    total = 0
    while True:
        with rt.db.transaction() as session:
            done = ingest_data.reduce_old_trips(session, before, rt.config.tz, RETENTION_BATCH)
        total += done
        if done < RETENTION_BATCH:
            break
    with rt.db.transaction() as session:
        devices = antifraud_data.forget_old_devices(session, cutoff)
        audit.record(session, actor="cli", action="retention.reduce",
                     target=f"events before {before.isoformat()}",
                     reason=f"trip detail retention: {days} days", before=None,
                     after={"events": total, "device_links": devices})
    click.echo(f"reduced {total} events of local days before {before.isoformat()}; "
               f"forgot {devices} device links")


RETENTION_BATCH = 1000
"""Events reduced per transaction: row locks held briefly, progress kept if stopped."""


@click.command("grant-service-role")
@click.argument("role")
@click.option("--print-sql", is_flag=True, help="print the statements instead of running them")
@with_appcontext
def grant_service_role_command(role: str, print_sql: bool) -> None:
    """Create and grant the role the service runs as (PostgreSQL; run as the owner, after
    each init-db): rows only, no DDL, the append-only tables insert-only."""
    try:
        statements = roles.grants_sql(role)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if print_sql:
        click.echo(";\n".join(statements) + ";")
        return
    rt = runtime()
    if rt.config.is_sqlite:
        raise click.UsageError("SQLite has no roles: the service's file permissions are its grant")
    with rt.db.engine.begin() as connection:
        roles.grant_service_role(connection, role)
    click.echo(f"role {role}: rows of every table, no DDL; "
               f"insert-only on {', '.join(roles.APPEND_ONLY)}")


@click.command("worker")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="files processed at once by this process")
@with_appcontext
def worker_command(threads: int) -> None:
    """Process queued record files (Dramatiq on REDIS_URL) until SIGTERM or SIGINT."""
    rt = runtime()
    queue = jobs.queue(rt.config)
    if queue is None:
        raise click.UsageError("REDIS_URL is not set: without Redis, record files are "
                               "processed by the web process itself")
    stop = threading.Event()
    queue.serve(jobs.perform(rt, jobs.applier(rt), stop))
    worker = dramatiq.Worker(queue.broker, queues={jobs.QUEUE_NAME}, worker_threads=threads)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    click.echo(f"worker: {threads} thread(s) on queue {jobs.QUEUE_NAME}", err=True)
    stop.wait()
    # A file being processed stops at its next chunk and is queued again (from its
    # checkpoint) for another worker.
    worker.stop(timeout=60_000)


@click.command("webhook-worker")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="deliveries sent at once by this process")
@with_appcontext
def webhook_worker_command(threads: int) -> None:
    """Send queued webhook deliveries (Dramatiq on REDIS_URL) until SIGTERM or SIGINT."""
    rt = runtime()
    queue = delivery.queue(rt.config)
    if queue is None:
        raise click.UsageError("REDIS_URL is not set: without Redis, deliveries are sent "
                               "by the web process itself")
    queue.serve(rt)
    stop = threading.Event()
    worker = dramatiq.Worker(queue.broker, queues={delivery.QUEUE_NAME},
                             worker_threads=threads)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    click.echo(f"webhook worker: {threads} thread(s) on queue {delivery.QUEUE_NAME}", err=True)
    stop.wait()
    worker.stop(timeout=30_000)


@click.command("webhook-sweep")
@click.option("--older-than", "older_than_s", type=click.IntRange(0), default=60,
              show_default=True, help="seconds a delivery has been pending")
@with_appcontext
def webhook_sweep_command(older_than_s: int) -> None:
    """Queue again the webhook deliveries still pending (their queueing failed, e.g. Redis
    was down); run from cron every few minutes (deploy/crontab)."""
    click.echo(f"{delivery.sweep(runtime(), older_than_s)} deliveries queued again")


# ---------------------------------------------------------------- scenario providers

def _service(call: Callable[[], Any]) -> Any:
    """Run a registry use case; a refusal becomes a CLI error naming its fields."""
    try:
        return call()
    except ServiceError as exc:
        details = [f"{field}: {message}" for field, messages in exc.fields.items()
                   for message in (messages if isinstance(messages, list) else [messages])]
        raise click.ClickException("\n".join([exc.message, *details])) from None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


@click.group("provider")
def provider_group() -> None:
    """Scenario providers: register, keys, disable/enable, list (each change audited)."""


@provider_group.command("add")
@click.argument("provider_id")
@click.option("--name", required=True)
@click.option("--city", required=True)
@click.option("--mode", "modes", multiple=True, required=True,
              type=click.Choice(registry.MODES), help="a mode it may report (repeat)")
@click.option("--reason", default="provider registered", show_default=True)
@with_appcontext
def provider_add_command(provider_id: str, name: str, city: str, modes: tuple[str, ...],
                         reason: str) -> None:
    """Register a provider (enabled, no key yet)."""
    _echo_json(_service(lambda: registry.register(
        runtime(), "cli", provider_id=provider_id, name=name, city=city, modes=modes,
        reason=reason)))


@provider_group.command("key-add")
@click.argument("provider_id")
@click.option("--algorithm", type=click.Choice(registry.ALGORITHMS),
              default=registry.HMAC_SHA256, show_default=True)
@click.option("--public-key", "public_key_file", type=click.File("r"), default=None,
              help="ed25519: a file with the public key (PEM or raw base64), - for stdin")
@click.option("--key-id", default=None, help="the signatures' keyid (default: generated)")
@click.option("--reason", default="key added", show_default=True)
@with_appcontext
def provider_key_add_command(provider_id: str, algorithm: str, public_key_file: Any,
                             key_id: str | None, reason: str) -> None:
    """Add a key; an hmac-sha256 secret is printed this once (store it now)."""
    public_key = public_key_file.read() if public_key_file is not None else None
    key = _service(lambda: registry.add_key(runtime(), "cli", provider_id,
                                            algorithm=algorithm, public_key=public_key,
                                            key_id=key_id, reason=reason))
    _echo_json(key)
    if "secret" in key:
        click.echo("the secret is shown this once: give it to the provider now", err=True)


@provider_group.command("key-revoke")
@click.argument("provider_id")
@click.argument("key_id")
@click.option("--reason", required=True)
@with_appcontext
def provider_key_revoke_command(provider_id: str, key_id: str, reason: str) -> None:
    """Revoke a key: signatures under it are refused from now on."""
    _echo_json(_service(lambda: registry.revoke_key(runtime(), "cli", provider_id, key_id,
                                                    reason)))


@provider_group.command("disable")
@click.argument("provider_id")
@click.option("--reason", required=True)
@with_appcontext
def provider_disable_command(provider_id: str, reason: str) -> None:
    """Disable a provider: its signed requests are refused."""
    _echo_json(_service(lambda: registry.set_enabled(runtime(), "cli", provider_id, False,
                                                     reason)))


@provider_group.command("enable")
@click.argument("provider_id")
@click.option("--reason", required=True)
@with_appcontext
def provider_enable_command(provider_id: str, reason: str) -> None:
    """Enable a provider again."""
    _echo_json(_service(lambda: registry.set_enabled(runtime(), "cli", provider_id, True,
                                                     reason)))


@provider_group.command("list")
@with_appcontext
def provider_list_command() -> None:
    """Print every provider and its keys (one JSON object a line; never a secret)."""
    for provider in registry.list_all(runtime()):
        _echo_json(provider)


@click.group("partitions")
def partitions_group() -> None:
    """Monthly partitions of events on PostgreSQL: create ahead, detach, export, re-attach
    (README "History by month"). Run as the tables' owner (DDL), like init-db."""


@contextmanager
def _months_session() -> Iterator[Session]:
    rt = runtime()
    if rt.db.engine.dialect.name != "postgresql":
        raise click.ClickException("events are partitioned on PostgreSQL only")
    with rt.db.transaction() as session:
        if not partitions.is_partitioned(session.connection()):
            raise click.ClickException("events is not partitioned: run init-db")
        yield session


def _month(value: str) -> date:
    try:
        return partitions.parse_month(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@partitions_group.command("list")
@with_appcontext
def partitions_list_command() -> None:
    """Each month's table, attached or detached, and its rows."""
    with _months_session() as session:
        conn = session.connection()
        tables = [(m, n, "attached") for m, n in partitions.attached(conn).items()]
        tables += [(m, n, "detached") for m, n in partitions.detached(conn).items()]
        maker = "pg_partman" if partitions.uses_partman(conn) else "flask partitions maintain"
        click.echo(f"months created ahead by {maker}")
        for month, name, state in sorted(tables):
            rows = conn.scalar(text(f"SELECT count(*) FROM {name}"))
            click.echo(f"{month:%Y-%m} {name} {state} {rows} events")


@partitions_group.command("maintain")
@with_appcontext
def partitions_maintain_command() -> None:
    """Create the months ahead (pg_partman's run_maintenance where it maintains events);
    run daily from cron."""
    with _months_session() as session:
        rt = runtime()
        today = rt.clock().astimezone(rt.config.tz).date()
        made = partitions.maintain(session.connection(), today)
        click.echo(f"created {len(made)} partition(s): {', '.join(made) or '-'}")


@partitions_group.command("detach")
@click.argument("month")
@click.option("--reason", required=True, help="why, for the audit log")
@with_appcontext
def partitions_detach_command(month: str, reason: str) -> None:
    """Detach a month (YYYY-MM): its events leave the service's reads, kept in their table."""
    when = _month(month)
    with _months_session() as session:
        try:
            name = partitions.detach(session.connection(), when)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(session, actor="cli", action="partition.detach", target=name,
                     reason=reason, before={"attached": True}, after={"attached": False})
        click.echo(f"detached {name}")


EXPORT_ROWS_PER_S = 10_000
"""The export's default pace (policy, no source gives one: an archive is not urgent, ingest
is). Unthrottled, a month's export took ingest down to 0.63 of its rate on the 2-core
bench host; at this pace ingest kept its rate (BENCHMARKS.md figure 17b''); a 10 M-event
month takes about 17 minutes, Shenzhen's ~450 M about 12.5 hours (``--rows-per-second``
raises it, 0 lifts it)."""


@partitions_group.command("export")
@click.argument("month")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="directory for <table>.csv and <table>.manifest.json")
@click.option("--rows-per-second", "rows_per_s", type=click.IntRange(min=0),
              default=EXPORT_ROWS_PER_S, show_default=True,
              help="throttle: at most this many rows a second (0: as fast as it goes)")
@with_appcontext
def partitions_export_command(month: str, out: Path, rows_per_s: int) -> None:
    """Write a month's events as CSV, with a manifest of its MRV totals and checksum."""
    when = _month(month)
    with _months_session() as session:
        try:
            done = partitions.export(session.connection(), when, out, rows_per_s or None)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"exported {done.manifest['rows']} events to {done.csv_path}; "
                   f"manifest {done.manifest_path}")


@partitions_group.command("attach")
@click.argument("month")
@click.option("--from-csv", "from_csv", type=click.Path(dir_okay=False, exists=True,
              path_type=Path), default=None,
              help="an export to load first, when the month's table was dropped")
@click.option("--reason", required=True, help="why, for the audit log")
@with_appcontext
def partitions_attach_command(month: str, from_csv: Path | None, reason: str) -> None:
    """Attach a detached month (YYYY-MM) again, or load it from its export and attach it."""
    when = _month(month)
    with _months_session() as session:
        conn = session.connection()
        try:
            if from_csv is not None:
                partitions.restore(conn, when, from_csv)
            name = partitions.attach(conn, when)
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(session, actor="cli", action="partition.attach", target=name,
                     reason=reason, before={"attached": False},
                     after={"attached": True, "from_csv": str(from_csv) if from_csv else None})
        click.echo(f"attached {name}")
