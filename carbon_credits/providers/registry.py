"""Scenario providers and their signing keys: register, add and revoke keys, disable.

Every change is one unit of work with its audit record (no secret ever goes into it).

HMAC keys: the server generates the secret and shows it once. HMAC verification needs the
very secret the provider signs with (there is no public half, unlike Ed25519), so the
server must be able to read it back: it is kept sealed with AES-GCM under a key derived
(HKDF-SHA256) from PROVIDER_KEY_SECRET, else the JWT secret, with the key id as associated
data. A database dump alone then yields no usable secret, and a sealed secret copied onto
another key id does not open. Ed25519 keys are the providers' public keys, kept as PEM.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.errors import Conflict, InvalidInput, NotFound
from carbon_credits.runtime import Runtime
from carbon_credits.schemas.providers import KEY_ID_PATTERN, PROVIDER_ID_PATTERN
from carbon_credits.storage.models import Provider as ProviderRow
from carbon_credits.storage.models import ProviderKey
from methodology import METHODOLOGIES

HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
ALGORITHMS = (HMAC_SHA256, ED25519)
MAX_ACTIVE_KEYS = 2
"""Two at once: the old and the new key during a rotation."""
SECRET_BYTES = 32
"""HMAC-SHA256 secrets: 256 bits, the hash's own size (RFC 2104 section 3)."""
MODES = tuple(METHODOLOGIES)


@dataclass(frozen=True)
class Provider:
    """A provider as the signature check and the crediting path see it."""

    id: str
    name: str
    city: str
    modes: frozenset[str]
    enabled: bool


@dataclass(frozen=True)
class VerificationKey:
    """An active key with what verifies its signatures: the HMAC secret or the PEM."""

    key_id: str
    algorithm: str
    material: bytes
    provider: Provider


def get_provider(session: Session, provider_id: str) -> Provider | None:
    row = session.get(ProviderRow, provider_id)
    return _provider(row) if row is not None else None


def _provider(row: ProviderRow) -> Provider:
    return Provider(id=row.id, name=row.name, city=row.city, modes=frozenset(row.modes),
                    enabled=row.enabled)


@dataclass(frozen=True)
class KeyLookup:
    """What a key id names: nothing, a revoked key, or an active key."""

    key: VerificationKey | None
    revoked: bool
    provider: Provider | None


def find_key(session: Session, key_id: str, key_material: str) -> KeyLookup:
    """The key a signature names, with its provider, in one query."""
    found = session.execute(
        select(ProviderKey, ProviderRow)
        .join(ProviderRow, ProviderRow.id == ProviderKey.provider_id)
        .where(ProviderKey.key_id == key_id)).one_or_none()
    if found is None:
        return KeyLookup(key=None, revoked=False, provider=None)
    key, row = found
    provider = _provider(row)
    if key.revoked_at is not None:
        return KeyLookup(key=None, revoked=True, provider=provider)
    if key.algorithm == HMAC_SHA256:
        assert key.secret_sealed is not None  # the table's check constraint
        material = unseal(key.secret_sealed, key.key_id, key_material)
    else:
        assert key.public_key is not None
        material = key.public_key.encode()
    return KeyLookup(key=VerificationKey(key.key_id, key.algorithm, material, provider),
                     revoked=False, provider=provider)


# ---------------------------------------------------------------- sealing HMAC secrets

class KeyUnusable(Exception):
    """A sealed secret that does not open under this server's PROVIDER_KEY_SECRET."""


def _sealing_key(key_material: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"carbon-credits provider hmac keys").derive(key_material.encode())


def seal(secret: bytes, key_id: str, key_material: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_sealing_key(key_material)).encrypt(nonce, secret, key_id.encode())


def unseal(sealed: bytes, key_id: str, key_material: str) -> bytes:
    try:
        return AESGCM(_sealing_key(key_material)).decrypt(sealed[:12], sealed[12:],
                                                           key_id.encode())
    except InvalidTag:
        raise KeyUnusable(key_id) from None


# ---------------------------------------------------------------- pure checks

def check_modes(modes: Iterable[str]) -> list[str]:
    chosen = sorted(set(modes))
    unknown = [m for m in chosen if m not in MODES]
    if not chosen or unknown:
        raise InvalidInput("modes must be a non-empty subset of " + ", ".join(MODES),
                           fields={"modes": [f"unknown mode {m!r}" for m in unknown]
                                   or ["at least one mode"]})
    return chosen


def parse_public_key(text: str) -> str:
    """An Ed25519 public key given as PEM or as its 32 raw bytes in base64, as PEM."""
    text = text.strip()
    key: Any
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            raw = base64.b64decode(text, validate=True)
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, TypeError):
        raise InvalidInput("public_key is not an Ed25519 public key",
                           fields={"public_key": ["expected PEM or 32 bytes in base64"]}
                           ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidInput("public_key is not an Ed25519 public key",
                           fields={"public_key": ["not an Ed25519 key"]})
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def check_id(value: str, pattern: str, field: str) -> str:
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        limit = 32 if pattern == PROVIDER_ID_PATTERN else 64
        raise InvalidInput(f"invalid {field}", fields={field: [
            f"1-{limit} characters: letters, digits and . _ : @ -"]})
    return value


# ---------------------------------------------------------------- views

def for_audit(view: dict[str, Any]) -> dict[str, Any]:
    """A view as the audit log's JSON keeps it: times as ISO 8601 text."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    result: dict[str, Any] = plain(view)
    return result


def key_view(key: ProviderKey) -> dict[str, Any]:
    """A key as admins see it and the audit log records it: never its secret."""
    return {"key_id": key.key_id, "algorithm": key.algorithm, "public_key": key.public_key,
            "created_at": key.created_at, "revoked_at": key.revoked_at}


def provider_view(row: ProviderRow, keys: Sequence[ProviderKey]) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "city": row.city, "modes": list(row.modes),
            "enabled": row.enabled, "created_at": row.created_at,
            "keys": [key_view(k) for k in keys]}


def _keys(session: Session, provider_id: str) -> list[ProviderKey]:
    return list(session.scalars(select(ProviderKey).where(ProviderKey.provider_id == provider_id)
                                .order_by(ProviderKey.created_at, ProviderKey.key_id)))


def _locked(session: Session, provider_id: str) -> ProviderRow:
    """The provider's row, locked until the unit of work ends: key changes of one provider
    run one at a time, so two concurrent key additions cannot both pass the two-key check
    (SQLite: every unit of work holds the database lock)."""
    row = session.get(ProviderRow, provider_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no provider {provider_id!r}", code="unknown_provider")
    return row


# ---------------------------------------------------------------- use cases

def register(rt: Runtime, actor: str, *, provider_id: str, name: str, city: str,
             modes: Iterable[str], reason: str) -> dict[str, Any]:
    """Register a provider, enabled and without keys; audited."""
    check_id(provider_id, PROVIDER_ID_PATTERN, "id")
    chosen = check_modes(modes)
    with rt.db.transaction() as session:
        if session.get(ProviderRow, provider_id) is not None:
            raise Conflict(f"provider {provider_id!r} exists", code="provider_exists")
        row = ProviderRow(id=provider_id, name=name, city=city, modes=chosen, enabled=True,
                          created_at=rt.clock())
        session.add(row)
        session.flush()
        view = provider_view(row, [])
        audit.record(session, actor=actor, action="provider.register",
                     target=f"provider:{provider_id}", reason=reason, before=None,
                     after=for_audit(view))
        return view


def add_key(rt: Runtime, actor: str, provider_id: str, *, algorithm: str,
            public_key: str | None, key_id: str | None, reason: str) -> dict[str, Any]:
    """Add a key (409 while two are active); an HMAC key's secret is in the answer, once."""
    if algorithm not in ALGORITHMS:
        raise InvalidInput("unknown algorithm", fields={"algorithm": [f"one of {ALGORITHMS}"]})
    if algorithm == ED25519 and not public_key:
        raise InvalidInput("an ed25519 key needs its public_key",
                           fields={"public_key": ["required for ed25519"]})
    if algorithm == HMAC_SHA256 and public_key:
        raise InvalidInput("an hmac-sha256 secret is generated by the server",
                           fields={"public_key": ["not accepted for hmac-sha256"]})
    if key_id is not None:
        check_id(key_id, KEY_ID_PATTERN, "key_id")
    pem = parse_public_key(public_key) if public_key else None
    with rt.db.transaction() as session:
        row = _locked(session, provider_id)
        key_id = key_id or f"{provider_id}-{secrets.token_hex(4)}"
        if session.get(ProviderKey, key_id) is not None:
            raise Conflict(f"key id {key_id!r} is taken", code="key_exists")
        active = session.scalar(select(func.count()).select_from(ProviderKey).where(
            ProviderKey.provider_id == provider_id, ProviderKey.revoked_at.is_(None)))
        if (active or 0) >= MAX_ACTIVE_KEYS:
            raise Conflict(f"provider {provider_id!r} has {MAX_ACTIVE_KEYS} active keys: "
                           "revoke one first", code="too_many_keys")
        secret = secrets.token_bytes(SECRET_BYTES) if algorithm == HMAC_SHA256 else None
        key = ProviderKey(key_id=key_id, provider_id=row.id, algorithm=algorithm,
                          public_key=pem, created_at=rt.clock(),
                          secret_sealed=(seal(secret, key_id, rt.config.provider_key_material())
                                         if secret is not None else None))
        session.add(key)
        session.flush()
        view = key_view(key)
        audit.record(session, actor=actor, action="provider.key_add",
                     target=f"provider:{provider_id}", reason=reason, before=None,
                     after=for_audit(view))
    if secret is not None:
        view["secret"] = base64.b64encode(secret).decode()
    return view


def revoke_key(rt: Runtime, actor: str, provider_id: str, key_id: str,
               reason: str) -> dict[str, Any]:
    """Revoke a key: signatures under it are refused from now on; audited."""
    with rt.db.transaction() as session:
        _locked(session, provider_id)
        key = session.get(ProviderKey, key_id)
        if key is None or key.provider_id != provider_id:
            raise NotFound(f"provider {provider_id!r} has no key {key_id!r}",
                           code="unknown_key")
        if key.revoked_at is not None:
            raise Conflict(f"key {key_id!r} is already revoked", code="key_revoked")
        before = key_view(key)
        key.revoked_at = rt.clock()
        session.flush()
        after = key_view(key)
        audit.record(session, actor=actor, action="provider.key_revoke",
                     target=f"provider:{provider_id}", reason=reason,
                     before=for_audit(before), after=for_audit(after))
        return after


def set_enabled(rt: Runtime, actor: str, provider_id: str, enabled: bool,
                reason: str) -> dict[str, Any]:
    """Enable or disable a provider (a disabled one's signatures are refused); audited."""
    with rt.db.transaction() as session:
        row = _locked(session, provider_id)
        keys = _keys(session, provider_id)
        before = provider_view(row, keys)
        row.enabled = enabled
        after = provider_view(row, keys)
        audit.record(session, actor=actor,
                     action="provider.enable" if enabled else "provider.disable",
                     target=f"provider:{provider_id}", reason=reason,
                     before=for_audit(before), after=for_audit(after))
        return after


def show(rt: Runtime, provider_id: str) -> dict[str, Any]:
    with rt.db.transaction() as session:
        row = session.get(ProviderRow, provider_id)
        if row is None:
            raise NotFound(f"no provider {provider_id!r}", code="unknown_provider")
        return provider_view(row, _keys(session, provider_id))


def list_all(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        rows = list(session.scalars(select(ProviderRow).order_by(ProviderRow.id)))
        keys: dict[str, list[ProviderKey]] = {}
        for key in session.scalars(select(ProviderKey).order_by(ProviderKey.created_at,
                                                                 ProviderKey.key_id)):
            keys.setdefault(key.provider_id, []).append(key)
        return [provider_view(row, keys.get(row.id, [])) for row in rows]
