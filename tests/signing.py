"""Signing provider requests in tests, as a provider would: with http-message-signatures."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    MappingKeyResolver,
    algorithms,
)

COVERED = ("@method", "@target-uri", "content-digest")
BASE = "http://localhost"
"""The Flask test client's scheme and host: what a request there is signed for."""


@dataclass
class Outgoing:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Key:
    """A provider's signing key: an HMAC secret or an Ed25519 private key."""

    key_id: str
    algorithm: str
    private: Any

    @classmethod
    def hmac(cls, key_id: str, secret_b64: str) -> Key:
        return cls(key_id, "hmac-sha256", base64.b64decode(secret_b64))

    @classmethod
    def ed25519(cls, key_id: str) -> tuple[Key, str]:
        """A new Ed25519 key and its public half as PEM (to register)."""
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return cls(key_id, "ed25519", private), pem


def sign(key: Key, method: str, path: str, body: bytes = b"", *, base: str = BASE,
         created: datetime | None = None, nonce: str | None = None,
         covered: Sequence[str] = COVERED, digest: str | None = None,
         include_alg: bool = True, key_id: str | None = None,
         omit_nonce: bool = False) -> dict[str, str]:
    """The headers of ``method path`` with ``body``, signed under ``key``.

    ``digest``: a Content-Digest to send instead of the body's own (signed as given).
    """
    message = Outgoing(method, base + path, {"Content-Type": "application/json"})
    if "content-digest" in covered:
        message.headers["Content-Digest"] = digest or ContentDigest.create(body)
    elif digest is not None:
        message.headers["Content-Digest"] = digest
    algorithm = (algorithms.HMAC_SHA256 if key.algorithm == "hmac-sha256"
                 else algorithms.ED25519)
    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=MappingKeyResolver(
        public_keys={}, private_keys={key_id or key.key_id: key.private}))
    signer.sign(message, key_id=key_id or key.key_id, created=created or datetime.now(UTC),
                nonce=None if omit_nonce else nonce if nonce is not None else uuid.uuid4().hex,
                covered_component_ids=tuple(covered), include_alg=include_alg,
                use_existing_digest=True, label="sig1")
    return message.headers


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()
