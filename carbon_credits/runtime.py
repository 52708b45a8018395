"""The running service's parts, passed explicitly to every use case (no Flask here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import redis

from carbon_credits.antifraud.ratelimit import Limiter
from carbon_credits.config import Config
from carbon_credits.ingest.group_commit import GroupCommit
from carbon_credits.leaderboards.store import MemoryStore, Store
from carbon_credits.networks.catalog import Catalog
from carbon_credits.privacy.erasure import ErasedSubjects
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import utcnow
from carbon_credits.tokens import TokenCodec

if TYPE_CHECKING:
    from carbon_credits.ingest.events import Ingested, Post


@dataclass
class Runtime:
    """Everything a service needs from the running app, passed explicitly."""

    config: Config
    db: Database
    catalog: Catalog
    limiter: Limiter
    codec: TokenCodec
    redis: redis.Redis | None
    posts: GroupCommit[Post, Ingested | Exception]
    """This process's single posts, applied in groups under load (``group_commit``)."""
    leaderboards: Store = field(default_factory=MemoryStore)
    """The boards: in Redis with REDIS_URL, else in this process (leaderboards.store)."""
    clock: Callable[[], datetime] = field(default=utcnow)
    """Business time: event windows, 'today', versions in force. Tests pin it."""
    erased: ErasedSubjects = field(default_factory=ErasedSubjects)
    """Erased subjects, whose tokens are refused (``privacy.erasure``)."""
