"""Flask CLI: `flask --app app init-db | token | verify-ledger`."""

from __future__ import annotations

import click
from flask import Flask

from carbon_credits.auth import ROLES
from carbon_credits.extensions import runtime
from carbon_credits.services.setup import init_db


def register(app: Flask) -> None:
    app.cli.add_command(init_db_command)
    app.cli.add_command(token_command)


@click.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the schema; seed default factors and the demo network."""
    rt = runtime()
    added = init_db(rt.db, rt.config.default_city)
    click.echo("schema at head; " + ("added: " + ", ".join(added) if added else "nothing to seed"))


@click.command("token")
@click.option("--sub", required=True, help="user or client id")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--city", default=None, help="home city (users) or the city a partner may see")
@click.option("--ttl", type=click.IntRange(1, 366 * 86400), default=3600, show_default=True,
              help="lifetime in seconds")
def token_command(sub: str, role: str, city: str | None, ttl: int) -> None:
    """Print a signed JWT for development and operations."""
    rt = runtime()
    if role == "partner" and not city:
        raise click.UsageError("a partner token needs --city")
    click.echo(rt.codec.encode(sub, role, city or rt.config.default_city, ttl))  # type: ignore[arg-type]
