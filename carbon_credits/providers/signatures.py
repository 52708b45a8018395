"""Who sent a provider request: HTTP Message Signatures (RFC 9421) over the request.

A provider signs ``"@method" "@target-uri" "content-digest"`` with ``created``, ``keyid``
and ``nonce`` (and, optionally, ``alg``), under one of its keys; Content-Digest (RFC 9530,
sha-256 and/or sha-512) binds the body. The signature itself is checked by the
``http-message-signatures`` library; what is policy here: which components and
parameters are required, how old a signature may be, the replay check, and one refusal
code per reason, so a provider's engineer can tell what to fix:

=========================  ==============================================================
signature_missing          no Signature / Signature-Input header
signature_malformed        the headers are not what RFC 9421 says, or hold several
signature_param_missing    ``keyid``, ``created`` or ``nonce`` is absent
component_not_covered      ``@method``, ``@target-uri`` or ``content-digest`` not covered
digest_missing             Content-Digest is covered but absent
unknown_key                no key has that id
key_revoked                the key was revoked
provider_disabled          the key's provider is disabled
signature_expired          ``created`` older than PROVIDER_SIGNATURE_MAX_AGE_S
signature_in_future        ``created`` ahead of this server's clock beyond the skew
bad_signature              the signature does not verify (wrong key, URI, method, ...)
digest_mismatch            the body is not the one Content-Digest names
nonce_reused               the nonce was seen within the age limit: a replay
=========================  ==============================================================

Every refusal is a 401 with an ``Accept-Signature`` header naming what to sign; a replay
store that cannot answer is a 503 (``nonces``). No Flask here: the request is anything
with a method, a URL and headers (Flask's request is one).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import http_sf
from http_message_signatures import (
    ContentDigest,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from carbon_credits.errors import Unauthorized
from carbon_credits.providers import nonces, registry
from carbon_credits.providers.registry import Provider
from carbon_credits.runtime import Runtime

log = logging.getLogger(__name__)

REQUIRED_COMPONENTS = ("@method", "@target-uri", "content-digest")
REQUIRED_PARAMS = ("keyid", "created", "nonce")
MAX_NONCE_CHARS = 128
ACCEPT_SIGNATURE = ('sig1=("@method" "@target-uri" "content-digest");created;keyid;nonce')
"""RFC 9421 section 5.1: what a refused client is asked to sign."""

ALGORITHM_CLASSES: dict[str, Any] = {registry.HMAC_SHA256: algorithms.HMAC_SHA256,
                                     registry.ED25519: algorithms.ED25519}


class Message(Protocol):
    """A request as the signature covers it: Flask's request is one."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> Any: ...


def refused(code: str, message: str) -> Unauthorized:
    # A 401 carries a challenge (RFC 7235 section 3.1); Accept-Signature says what to sign.
    return Unauthorized(message, code=code, headers={
        "WWW-Authenticate": 'Signature realm="carbon-credits-providers"',
        "Accept-Signature": ACCEPT_SIGNATURE})


def real_now() -> datetime:
    """Signatures are judged on the real clock: the library's age check reads it too, and
    a provider's ``created`` is its real time, not the business clock tests pin."""
    return datetime.now(UTC)


class _OneKey(HTTPSignatureKeyResolver):
    """The one key the signature named, already looked up (and unsealed)."""

    def __init__(self, key_id: str, material: bytes) -> None:
        self.key_id, self.material = key_id, material

    def resolve_public_key(self, key_id: str) -> bytes | None:
        return self.material if key_id == self.key_id else None

    def resolve_private_key(self, key_id: str) -> bytes:
        raise HTTPMessageSignaturesException("verification only")


def _header(headers: Any, name: str) -> str | None:
    values = [v for k, v in headers.items() if k.lower() == name]
    return ", ".join(values) if values else None


def parse_signature_input(value: str) -> tuple[list[tuple[str, dict[str, Any]]],
                                                dict[str, Any]]:
    """The covered components and parameters of the request's one signature (pure)."""
    try:
        parsed: Any = http_sf.parse(value.encode(), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise refused("signature_malformed",
                      "Signature-Input is not a structured dictionary") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise refused("signature_malformed", "send exactly one signature")
    member: Any = next(iter(parsed.values()))
    members, params = member
    if not isinstance(members, list):
        raise refused("signature_malformed", "Signature-Input's member must be an inner list")
    return [(str(v), dict(p)) for v, p in members], dict(params)


def check_coverage(components: Iterable[tuple[str, dict[str, Any]]],
                   params: dict[str, Any]) -> None:
    """Refuse a signature that leaves out a required component or parameter (pure)."""
    missing_params = [p for p in REQUIRED_PARAMS if p not in params]
    if missing_params:
        raise refused("signature_param_missing",
                      "the signature lacks the parameter(s): " + ", ".join(missing_params))
    bad_types = [p for p in ("keyid", "nonce") if not isinstance(params[p], str)]
    if bad_types or type(params["created"]) is not int:
        raise refused("signature_malformed",
                      "keyid and nonce must be strings, created an integer")
    if not 0 < len(params["nonce"]) <= MAX_NONCE_CHARS:
        raise refused("signature_malformed", f"nonce must be 1-{MAX_NONCE_CHARS} characters")
    covered = {name for name, p in components if not p or set(p) <= {"sf"}}
    not_covered = [c for c in REQUIRED_COMPONENTS if c not in covered]
    if not_covered:
        raise refused("component_not_covered",
                      "the signature must cover: " + ", ".join(f'"{c}"' for c in not_covered))


def check_created(created: int, now: datetime, max_age_s: int, skew_s: int) -> None:
    """Refuse a signature made too long ago or too far ahead of ``now`` (pure)."""
    made = now.timestamp() - created
    if made > max_age_s:
        raise refused("signature_expired",
                      f"the signature was created {int(made)} s ago; at most {max_age_s} s "
                      "are accepted: sign each request when sending it")
    if -made > skew_s:
        raise refused("signature_in_future",
                      f"the signature's created is {int(-made)} s ahead of this server's "
                      f"clock (at most {skew_s} s): check the signer's clock")


def authenticate(rt: Runtime, message: Message, body: bytes,
                 now: Callable[[], datetime] = real_now) -> Provider:
    """The provider that signed ``message`` (with ``body``), or a 401 naming the reason."""
    provider, results = _signed_by(rt, message, now)
    try:
        for result in results:
            if not ContentDigest.verify_components(result.covered_components, body):
                raise InvalidSignature("no content digest covered")
    except (InvalidSignature, HTTPMessageSignaturesException):
        raise refused("digest_mismatch",
                      "the body does not match its Content-Digest") from None
    _claim_nonce(rt, provider, message, now)
    return provider


class StreamDigest:
    """The signed Content-Digest of a body read in blocks (a record file of gigabytes is
    never held whole): ``update`` with each block, then ``check`` (a 401
    ``digest_mismatch`` when the body is not the one signed)."""

    def __init__(self, expected: dict[str, bytes]) -> None:
        self._expected = expected
        self._hashers = {alg: DIGESTS[alg]() for alg in expected}

    def update(self, block: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(block)

    def check(self) -> None:
        for alg, digest in self._expected.items():
            if not hmac.compare_digest(digest, self._hashers[alg].digest()):
                raise refused("digest_mismatch", "the body does not match its Content-Digest")


DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def authenticate_stream(rt: Runtime, message: Message,
                        now: Callable[[], datetime] = real_now
                        ) -> tuple[Provider, StreamDigest]:
    """``authenticate`` for a body to be read after it: the provider, and the digest the
    body must then match (its ``check`` is the caller's, before anything is kept)."""
    provider, results = _signed_by(rt, message, now)
    expected: dict[str, bytes] = {}
    for result in results:
        for identifier, value in result.covered_components.items():
            if identifier.strip('"').lower() != "content-digest":
                continue
            try:
                members = http_sf.parse(value.encode("ascii"), tltype="dictionary")
            except (ValueError, TypeError, UnicodeEncodeError):
                raise refused("digest_mismatch", "the Content-Digest is malformed") from None
            if not isinstance(members, dict):
                raise refused("digest_mismatch", "the Content-Digest is malformed")
            for alg, member in members.items():
                if alg in DIGESTS and isinstance(member, tuple) and isinstance(member[0],
                                                                               bytes):
                    expected[alg] = member[0]
    if not expected:
        raise refused("digest_missing", "send the body's Content-Digest (sha-256 or sha-512)")
    _claim_nonce(rt, provider, message, now)
    return provider, StreamDigest(expected)


def _signed_by(rt: Runtime, message: Message, now: Callable[[], datetime]
               ) -> tuple[Provider, Any]:
    """Who signed ``message``, with the library's verify results (the covered
    components), checked for everything but the body."""
    headers = message.headers
    signature_input = _header(headers, "signature-input")
    if signature_input is None or _header(headers, "signature") is None:
        raise refused("signature_missing",
                      "provider routes need an HTTP message signature (RFC 9421)")
    components, params = parse_signature_input(signature_input)
    check_coverage(components, params)
    if _header(headers, "content-digest") is None:
        raise refused("digest_missing", "send the body's Content-Digest (RFC 9530)")
    config = rt.config
    with rt.db.transaction() as session:
        try:
            found = registry.find_key(session, params["keyid"], config.provider_key_material())
        except registry.KeyUnusable:
            log.error("provider key %s does not open under PROVIDER_KEY_SECRET",
                      params["keyid"])
            raise refused("unknown_key", "this key cannot be used: ask for a new one"
                          ) from None
    if found.revoked:
        raise refused("key_revoked", f"key {params['keyid']!r} was revoked")
    key = found.key
    if key is None:
        raise refused("unknown_key", f"no key {params['keyid']!r}")
    check_created(params["created"], now(), config.provider_signature_max_age_s,
                  config.provider_signature_skew_s)
    verifier = HTTPMessageVerifier(signature_algorithm=ALGORITHM_CLASSES[key.algorithm],
                                   key_resolver=_OneKey(key.key_id, key.material))
    # The library checks the age too, on its own clock: with the same bounds it agrees
    # with check_created above, which gave the precise reason.
    verifier.max_clock_skew = timedelta(seconds=config.provider_signature_skew_s)
    try:
        results = verifier.verify(
            message, max_age=timedelta(seconds=config.provider_signature_max_age_s),
            require_components=REQUIRED_COMPONENTS)
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise refused("bad_signature", f"the signature does not verify: {exc}") from None
    # Told only to whoever holds the key: a disabled provider's state is not for anyone
    # who knows a key id.
    if not key.provider.enabled:
        raise refused("provider_disabled", f"provider {key.provider.id!r} is disabled")
    return key.provider, results


def _claim_nonce(rt: Runtime, provider: Provider, message: Message,
                 now: Callable[[], datetime]) -> None:
    """Once the request is known genuine: its nonce, never seen before within the age
    limit (else a replay)."""
    config = rt.config
    _, params = parse_signature_input(_header(message.headers, "signature-input") or "")
    ttl = config.provider_signature_max_age_s + config.provider_signature_skew_s
    if not nonces.store_for(rt).claim(provider.id, params["nonce"], ttl, now()):
        raise refused("nonce_reused", "this nonce was used already: a replayed request")
