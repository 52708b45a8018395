"""The replay store of signature nonces, behind one small interface.

A nonce is claimed once per provider for as long as its signature could pass the age
check; a second claim within that time is a replay. Redis when REDIS_URL is set (SET NX EX:
one round trip, expiry by Redis); otherwise the database (a row per nonce, expired rows
deleted as new ones come), which is right for the embedded default and for several
processes on one database alike. A store that cannot answer is a 503 with Retry-After: a
signature whose nonce could not be checked is not accepted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

import redis
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from carbon_credits.errors import RETRY_AFTER_S, Unavailable
from carbon_credits.runtime import Runtime
from carbon_credits.storage import redis_nodes
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import ProviderNonce

log = logging.getLogger(__name__)


class NonceStore(Protocol):
    def claim(self, provider_id: str, nonce: str, ttl_s: int, now: datetime) -> bool:
        """True the first time ``nonce`` is seen for ``provider_id`` within ``ttl_s``."""


def unavailable() -> Unavailable:
    return Unavailable("the replay check is unavailable; retry shortly",
                       code="nonce_store_unavailable",
                       headers={"Retry-After": str(RETRY_AFTER_S)})


class RedisNonces:
    """One key per nonce: on a Redis Cluster (REDIS_URL naming any node) each key is on
    its slot's node (storage/redis_nodes.py)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def claim(self, provider_id: str, nonce: str, ttl_s: int, now: datetime) -> bool:
        try:
            return bool(redis_nodes.resolve(self.client).set(
                f"cc:nonce:{provider_id}:{nonce}", b"1", nx=True, ex=ttl_s))
        except redis.RedisError as exc:
            log.warning("nonce store (redis) failed: %s", exc)
            raise unavailable() from exc


class DatabaseNonces:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, provider_id: str, nonce: str, ttl_s: int, now: datetime) -> bool:
        try:
            with self.db.transaction() as session:
                session.execute(delete(ProviderNonce).where(ProviderNonce.expires_at < now))
                session.add(ProviderNonce(provider_id=provider_id, nonce=nonce,
                                          expires_at=now + timedelta(seconds=ttl_s)))
                session.flush()
        except IntegrityError:
            return False
        return True


def store_for(rt: Runtime) -> NonceStore:
    return RedisNonces(rt.redis) if rt.redis is not None else DatabaseNonces(rt.db)
