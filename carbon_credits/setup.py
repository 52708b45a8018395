"""Create or upgrade the schema and seed defaults: idempotent, safe to run on every start."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.badges.catalogue import seed_demo
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import store_network
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import FactorVersion, Network
from methodology import METHODOLOGIES

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
DEFAULTS_EFFECTIVE_FROM = datetime(2021, 12, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
"""The Shenzhen methodology was published in December 2021; defaults apply from then."""


def upgrade_schema(db: Database) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def seed_defaults(session: Session, city: str) -> list[str]:
    """Default factor versions and the demo network, where missing. Returns what was added."""
    added = []
    for mode, method in METHODOLOGIES.items():
        try:
            fs = method.default_factors(city)
        except KeyError:
            continue  # no published defaults for this city: an admin creates versions
        exists = session.scalar(select(FactorVersion.id).where(
            FactorVersion.city == city, FactorVersion.mode == mode,
            FactorVersion.version == fs.version))
        if exists is None:
            session.add(FactorVersion(
                city=city, mode=mode, version=fs.version, kind=fs.kind, factors=fs.to_dict(),
                effective_from=DEFAULTS_EFFECTIVE_FROM, created_by="init-db",
                reason="default factors shipped with the methodology package"))
            added.append(f"factors {city}/{mode} {fs.version}")
    if city == demo_network.CITY and session.scalar(
            select(Network.id).where(Network.city == city).limit(1)) is None:
        store_network(session, city, demo_network.VERSION, demo_network.SOURCE,
                      demo_network.stations(), demo_network.lines())
        added.append(f"network {city} {demo_network.VERSION}")
    return added


def init_db(db: Database, city: str) -> list[str]:
    upgrade_schema(db)
    with db.transaction() as session:
        added = seed_defaults(session, city)
        badges = seed_demo(session)  # the ten ready-made badges (badges.catalogue)
        return added + ([f"{badges} demo badges"] if badges else [])
