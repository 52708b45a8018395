"""Configuration: the only place the environment is read."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carbon_credits.antifraud.plausibility import Policy
from carbon_credits.antifraud.ratelimit import (
    DEFAULT_RATE_LIMITS,
    RateLimits,
    parse_rate_limits,
    rate_limits_from_env,
)
from carbon_credits.messages import LOCALES
from carbon_credits.privacy.notices import LATEST, NOTICES

DEFAULT_DAILY_CAPS_G: Mapping[str, Decimal] = {"total": Decimal(5000)}
"""Operator policy, no published source: 5 kg CO2 per user per local day over all modes.

A heavy commuter (four 15 km metro rides) avoids about 2.8 kg a day, so honest riders stay
well below it while a farmed account is bounded. Per-mode caps may be added with
DAILY_CAP_G="total=5000,metro=4000"; the steps methodology carries its own 296 g cap.
"""


CHINESE_TIME_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking",
                                "Asia/Harbin", "Asia/Urumqi", "Asia/Kashgar", "PRC"})
"""The time zones of mainland China's cities: a city in one answers in zh_CN by default."""


class ConfigError(ValueError):
    """A setting that cannot be used; raised at start-up, not at the first request."""


def parse_caps(text: str) -> dict[str, Decimal]:
    caps: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            grams = Decimal(value)
        except InvalidOperation:
            grams = Decimal(-1)
        if not sep or grams < 0:
            raise ConfigError(f"DAILY_CAP_G: expected mode=grams, got {part!r}")
        caps[name.strip()] = grams
    return caps


@dataclass
class Config:
    """Settings of one app instance. Tests build it directly or via ``from_env``."""

    instance_path: Path
    database_url: str = ""
    db_lock_timeout_ms: int = 5000
    """How long a statement may wait for a lock (policy): PostgreSQL's ``lock_timeout`` (a
    row or table lock), SQLite's busy timeout (the database lock). A statement that waits
    longer fails, and its request is a 503 with Retry-After. Ingest
    holds a lock for well under a second; without a bound, a stuck lock holder would park
    every thread of a threaded worker, which gunicorn's timeout does not catch."""
    redis_url: str | None = None
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    """The identity provider's JWK Set (JWT_JWKS_URL): tokens are verified with the key
    their ``kid`` names, fetched and cached (PyJWT's PyJWKClient), so the provider can
    rotate keys without a redeploy. Takes the place of JWT_PUBLIC_KEY; this instance then
    only verifies tokens."""
    jwt_jwks_cache_s: int = 300
    """How long a fetched JWK Set is used before it is fetched again (JWT_JWKS_CACHE_S); an
    unknown ``kid`` fetches it at once, at most once per ``jwt_jwks_cooldown_s``."""
    jwt_jwks_cooldown_s: int = 30
    """The least time between two fetches of the JWK Set for unknown ``kid`` values
    (JWT_JWKS_COOLDOWN_S; PyJWT's default): a client sending made-up key ids cannot turn
    this service against the identity provider; a newly rotated key may wait that long."""
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "carbon-credits"
    jwt_audience: str = "carbon-credits-api"
    city_timezone: str = "Asia/Shanghai"
    default_city: str = "shenzhen"
    default_locale: str | None = None
    """The language of answers to a request with no Accept-Language header, or none this
    service speaks (DEFAULT_LOCALE: zh_CN or en). None: the city's, by its time zone:
    zh_CN for a city in China (the default, Shenzhen), en elsewhere."""
    auto_init_db: bool = False
    daily_caps_g: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_DAILY_CAPS_G))
    annual_cap_g: Decimal | None = None
    """Grams a user may be credited in a local calendar year, all modes (ANNUAL_CAP_G; none
    by default). A policy value with no published source: Shenzhen's scheme caps by day,
    and the daily total cap already bounds a year at 365 of it."""
    rate_limits: RateLimits = field(
        default_factory=lambda: parse_rate_limits(DEFAULT_RATE_LIMITS))
    """Request rate limits per route and dimension (RATE_LIMITS; policy, see ratelimit)."""
    clock_skew_s: int = 300
    """How far in the future an event may claim to be (client clocks drift); policy."""
    backfill_days: int = 30
    """How old an event may be when it arrives (offline clients sync late); policy. Beijing
    MaaS credits must be claimed within 7 days; 30 leaves room for operator back-office
    imports."""
    max_content_length: int = 1 << 20
    """The largest request body (413 beyond it); deploy/nginx.conf's client_max_body_size
    is the same 1 MiB, so a larger body is refused before it reaches a gunicorn thread."""
    proxy_fix_x_for: int = 0
    """How many proxies in front of the app set X-Forwarded-For (PROXY_FIX_X_FOR; 1 behind
    deploy/nginx.conf). The client's address, which the rate limits count by, is then taken
    from that header (werkzeug's ProxyFix), as the proxy nearest the app wrote it. 0, the
    default: the header is ignored and the address is the socket's, since without a proxy
    any client could write the header and pick a new address, and a new rate limit budget,
    per request."""
    proxy_fix_x_proto: int = 0
    """How many proxies in front of the app set X-Forwarded-Proto (PROXY_FIX_X_PROTO; 1
    behind deploy/nginx.conf). A scenario provider signs the URI it sent (RFC 9421
    ``@target-uri``: scheme, host, port, path, query); behind a proxy that terminates TLS
    the app would otherwise see http:// and refuse every signature. 0: the header is
    ignored, as any client could write it."""
    proxy_fix_x_host: int = 0
    """How many proxies set X-Forwarded-Host (PROXY_FIX_X_HOST; 1 behind deploy/nginx.conf,
    which forwards the Host the client sent, port included, there): ``@target-uri``'s
    authority as the provider signed it."""
    provider_signature_max_age_s: int = 300
    """How old a provider's signature (its ``created``) may be (PROVIDER_SIGNATURE_MAX_AGE_S);
    also how long its nonce is remembered, so a replay is refused for as long as the
    signature would otherwise pass."""
    provider_signature_skew_s: int = 30
    """How far ahead of this server's clock a signature's ``created`` may be
    (PROVIDER_SIGNATURE_SKEW_S): the providers' clocks drift a little; policy."""
    provider_key_secret: str | None = None
    """PROVIDER_KEY_SECRET: what the HMAC keys of providers are encrypted under in the
    database (see providers.registry); default: the JWT secret (``signing_secret``)."""
    binding_code_ttl_s: int = 600
    """How long a provider's one-time binding code may be used (BINDING_CODE_TTL_S)."""
    report_min_participants: int = 10
    """k: partner report cells with fewer distinct participants are suppressed; policy."""
    reward_cancel_days: int = 7
    """How long after redeeming a user may cancel an unused voucher or an unshipped good
    and get the points back (REWARD_CANCEL_DAYS); policy, after China's 7-day no-reason
    return rule for goods bought at a distance."""
    expiry_notice_days: int = 30
    """How far ahead ``GET /v1/me/account`` lists points that will expire
    (EXPIRY_NOTICE_DAYS)."""
    expiry_webhook_days: int = 30
    """How many days before points expire a ``points.expiring`` webhook announces them
    (EXPIRY_WEBHOOK_DAYS; 0: not announced). Policy: no source gives a notice period for
    carbon-inclusion points; 30 days matches the account's ``expiring_soon``."""
    settlement_days: Mapping[str, int] = field(default_factory=dict)
    """Per city, days a credit stays pending (shown, not spendable) before it settles
    (SETTLEMENT_DAYS, e.g. ``beijing=2``, after Beijing MaaS); a city left out: none."""
    claim_days: Mapping[str, int] = field(default_factory=dict)
    """Per city, days after settling within which the user must claim points, or they
    lapse (CLAIM_DAYS, e.g. ``beijing=7``); a city left out: no claim needed."""
    plausibility: Policy = field(default_factory=Policy)
    """Fraud rule thresholds and outcomes (see carbon_credits.antifraud.plausibility)."""
    upload_dir: Path | None = None
    """Where record files are kept, named by their SHA-256 (UPLOAD_DIR; None: instance/
    uploads, see ``uploads``). Workers read them there: a shared volume with several hosts."""
    upload_max_bytes: int = 4 << 30
    """The largest record file accepted (UPLOAD_MAX_BYTES, 4 GiB: some 15 M records)."""
    record_chunk_rows: int = 1000
    """Rows of a record file applied, counted and checkpointed together (RECORD_CHUNK_ROWS):
    a worker killed mid-file re-applies at most this many (as replays)."""
    record_applier: str = "carbon_credits.providers.crediting:make_apply_chunk"
    """``module:factory`` of the crediting of record files (RECORD_APPLIER): called with the
    Runtime, it returns ``providers.jobs.ApplyChunk``."""
    worker_heartbeat_timeout_ms: int = 60_000
    """A worker silent this long is dead, and its file goes to another worker
    (WORKER_HEARTBEAT_TIMEOUT_MS; Dramatiq's Redis broker heartbeat timeout)."""
    queue_maintenance_chance: int = 1000
    """Per million queue commands, how many look for dead workers' messages
    (QUEUE_MAINTENANCE_CHANCE; Dramatiq's default 1000)."""
    webhook_timeout_s: float = 10.0
    """How long a webhook delivery waits for the client platform (WEBHOOK_TIMEOUT_S)."""
    webhook_max_attempts: int = 10
    """Attempts of one delivery before it is marked failed (WEBHOOK_MAX_ATTEMPTS)."""
    webhook_min_backoff_ms: int = 5_000
    """The first retry's delay; each retry doubles it, with jitter, up to
    WEBHOOK_MAX_BACKOFF_MS (WEBHOOK_MIN_BACKOFF_MS)."""
    webhook_max_backoff_ms: int = 3_600_000
    """The longest delay between two attempts (WEBHOOK_MAX_BACKOFF_MS, one hour)."""
    ledger_chain_keys: str | None = None
    """The ledger chain keys (LEDGER_CHAIN_KEYS), "name:base64,...": the first signs new
    entries and checkpoints, the others only verify (kept after a rotation, since entries are
    never rewritten). Each at least 16 bytes. Unset: a random key kept in instance/ (for
    development and the embedded default, like the JWT secret): production sets it from a
    secret store, never in the database (ledger/chain.py)."""
    reports_database_url: str | None = None
    """A streaming replica reports and the dashboard read from (REPORTS_DATABASE_URL); None:
    the primary. Writes, and reads inside writes, always use DATABASE_URL."""
    reports_max_lag_s: int = 30
    """The most a report read from the replica may be behind the primary
    (REPORTS_MAX_LAG_S; policy: a partner dashboard of daily figures tolerates half a
    minute). 0: only a replica that has replayed all it received. See storage.replica."""
    reports_fallback_primary: bool = False
    """Beyond the lag bound, or the replica unreachable: read from the primary
    (REPORTS_FALLBACK_PRIMARY=1) instead of answering 503 with Retry-After."""
    consent_required: str = "all"
    """Where events need the user's consent to the privacy notice (CONSENT_REQUIRED): "all"
    cities (the default, so a new deployment asks for it), "none", or a comma-separated
    list of cities (an event's ``city``). An existing deployment's users have no consent
    recorded: see the README's "Consent" for how they migrate."""
    privacy_notice_version: str = LATEST
    """The privacy notice version events require consent to (PRIVACY_NOTICE_VERSION;
    default the newest in carbon_credits/privacy/notices.py): a user whose latest consent
    is to an older version is asked again."""
    trip_detail_retention_days: int = 180
    """Trip details (stations, line, device id, times of day) of events older than this many
    days are deleted by ``flask reduce-trip-details`` (TRIP_DETAIL_RETENTION_DAYS; run it
    daily): what the ledger, reports and MRV export need is kept (README "Retention").
    Policy, no published source: half a year covers the backfill window, provider
    confirmation and a fraud review with room; it must exceed BACKFILL_DAYS, so a client's
    late retry of an event is refused by the window, never met by a reduced row."""
    leaderboard_hidden_as: str = "anonymous"
    """How a user who opted out of leaderboards (PUT /v1/me/privacy) appears to others
    (LEADERBOARD_HIDDEN_AS): ``anonymous`` (in their place, rank and grams shown, no id)
    or ``omitted`` (left out of the list; the ranks of others stay their true standing, so
    a gap shows that someone is there, not who). The user always sees themself."""
    leaderboard_keep_days: int = 0
    """How long a day, week or month board is kept after its period ends
    (LEADERBOARD_KEEP_DAYS; policy): longer than the backfill window, so no event can be
    credited into a board already dropped; 0 (the default): BACKFILL_DAYS + 10, i.e. 40
    days with the default window. All-time boards are kept for ever."""
    testing: bool = False

    def consent_required_in(self, city: str) -> bool:
        """Whether an event in ``city`` needs the user's consent (``consent_required``)."""
        if self.consent_required == "all":
            return True
        if self.consent_required == "none":
            return False
        return city in {c.strip() for c in self.consent_required.split(",")}

    def __post_init__(self) -> None:
        if not self.leaderboard_keep_days:
            self.leaderboard_keep_days = self.backfill_days + 10
        if not self.database_url:
            self.database_url = f"sqlite:///{self.instance_path / 'carbon_credits.sqlite3'}"
            # With no configuration at all, a new user gets a ready database on start.
            self.auto_init_db = True
        try:
            ZoneInfo(self.city_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"CITY_TIMEZONE: unknown time zone {self.city_timezone!r}") from exc
        if self.ledger_chain_keys:
            parse_chain_keys(self.ledger_chain_keys)
        if self.default_locale is None:
            self.default_locale = ("zh_CN" if self.city_timezone in CHINESE_TIME_ZONES
                                   else "en")
        if self.default_locale not in LOCALES:
            raise ConfigError(f"DEFAULT_LOCALE: expected one of {', '.join(LOCALES)}, "
                              f"got {self.default_locale!r}")
        if self.reports_database_url is not None and not (
                self.reports_database_url.startswith("postgresql")):
            raise ConfigError("REPORTS_DATABASE_URL: expected a postgresql:// URL of a "
                              f"streaming replica, got {self.reports_database_url[:40]!r}")
        if not self.consent_required.strip() or any(
                not c.strip() for c in self.consent_required.split(",")):
            raise ConfigError("CONSENT_REQUIRED: expected all, none or a list of cities, got "
                              f"{self.consent_required!r}")
        if self.trip_detail_retention_days <= self.backfill_days:
            raise ConfigError("TRIP_DETAIL_RETENTION_DAYS: must exceed BACKFILL_DAYS "
                              f"({self.backfill_days}), got {self.trip_detail_retention_days}")
        if self.privacy_notice_version not in NOTICES:
            raise ConfigError("PRIVACY_NOTICE_VERSION: expected one of "
                              f"{', '.join(sorted(NOTICES))}, got "
                              f"{self.privacy_notice_version!r}")
        if self.leaderboard_hidden_as not in ("anonymous", "omitted"):
            raise ConfigError("LEADERBOARD_HIDDEN_AS: expected anonymous or omitted, got "
                              f"{self.leaderboard_hidden_as!r}")
        if self.leaderboard_keep_days <= self.backfill_days:
            raise ConfigError("LEADERBOARD_KEEP_DAYS must exceed BACKFILL_DAYS "
                              f"({self.backfill_days}): an event may be credited that late")
        if self.jwt_public_key and self.jwt_jwks_url:
            raise ConfigError("set one of JWT_PUBLIC_KEY and JWT_JWKS_URL, not both")
        if self.jwt_public_key or self.jwt_jwks_url:
            if self.jwt_algorithm == "HS256":
                self.jwt_algorithm = "RS256"
        elif self.jwt_algorithm != "HS256":
            raise ConfigError("JWT_ALGORITHM other than HS256 needs JWT_PUBLIC_KEY or "
                              "JWT_JWKS_URL")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.city_timezone)

    @property
    def uploads(self) -> Path:
        """The folder of record files (``upload_dir``)."""
        return self.upload_dir or self.instance_path / "uploads"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_secret(self) -> str:
        """The HS256 secret: configured, or a random one kept in instance/ for development."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.instance_path / "jwt-secret"
        self.instance_path.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two workers starting at once agree on one secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        return path.read_text().strip()

    def provider_key_material(self) -> str:
        """What providers' HMAC secrets are encrypted under: PROVIDER_KEY_SECRET, else the
        JWT secret. Changing it makes the stored HMAC keys unusable (add new keys)."""
        return self.provider_key_secret or self.signing_secret()

    def ledger_chain_keyring(self) -> tuple[tuple[str, bytes], ...]:
        """The ledger chain keys, the signing key first: configured, or one random key kept
        in instance/ledger-chain-key for development (named "instance")."""
        if self.ledger_chain_keys:
            return parse_chain_keys(self.ledger_chain_keys)
        path = self.instance_path / "ledger-chain-key"
        self.instance_path.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two workers starting at once agree on one key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return (("instance", base64.b64decode(path.read_text().strip())),)

    @classmethod
    def from_env(cls, instance_path: Path, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        caps = parse_caps(env["DAILY_CAP_G"]) if env.get("DAILY_CAP_G") else None
        annual = env.get("ANNUAL_CAP_G")
        try:
            annual_cap = Decimal(annual) if annual else None
        except ArithmeticError:
            raise ConfigError(f"ANNUAL_CAP_G: expected grams, got {annual!r}") from None
        if annual_cap is not None and not (annual_cap.is_finite() and annual_cap > 0):
            raise ConfigError(f"ANNUAL_CAP_G: expected positive grams, got {annual!r}")
        auto = env.get("AUTO_INIT_DB")
        cfg = cls(
            instance_path=instance_path,
            database_url=env.get("DATABASE_URL", ""),
            db_lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", 5000),
            redis_url=env.get("REDIS_URL") or None,
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_public_key=env.get("JWT_PUBLIC_KEY") or None,
            jwt_jwks_url=env.get("JWT_JWKS_URL") or None,
            jwt_jwks_cache_s=int(env.get("JWT_JWKS_CACHE_S", "300")),
            jwt_jwks_cooldown_s=int(env.get("JWT_JWKS_COOLDOWN_S", "30")),
            jwt_algorithm=env.get("JWT_ALGORITHM", "HS256"),
            jwt_issuer=env.get("JWT_ISSUER", "carbon-credits"),
            jwt_audience=env.get("JWT_AUDIENCE", "carbon-credits-api"),
            city_timezone=env.get("CITY_TIMEZONE", "Asia/Shanghai"),
            default_city=env.get("DEFAULT_CITY", "shenzhen"),
            default_locale=env.get("DEFAULT_LOCALE") or None,
            rate_limits=rate_limits_from_env(env, ConfigError),
            clock_skew_s=_int(env, "CLOCK_SKEW_SECONDS", 300),
            backfill_days=_int(env, "BACKFILL_DAYS", 30),
            report_min_participants=_int(env, "REPORT_MIN_PARTICIPANTS", 10),
            proxy_fix_x_for=_int(env, "PROXY_FIX_X_FOR", 0, minimum=0),
            upload_dir=Path(env["UPLOAD_DIR"]) if env.get("UPLOAD_DIR") else None,
            upload_max_bytes=_int(env, "UPLOAD_MAX_BYTES", 4 << 30),
            record_chunk_rows=_int(env, "RECORD_CHUNK_ROWS", 1000),
            record_applier=env.get("RECORD_APPLIER",
                                   "carbon_credits.providers.crediting:make_apply_chunk"),
            worker_heartbeat_timeout_ms=_int(env, "WORKER_HEARTBEAT_TIMEOUT_MS", 60_000),
            queue_maintenance_chance=_int(env, "QUEUE_MAINTENANCE_CHANCE", 1000),
            webhook_timeout_s=float(_int(env, "WEBHOOK_TIMEOUT_S", 10)),
            webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", 10),
            webhook_min_backoff_ms=_int(env, "WEBHOOK_MIN_BACKOFF_MS", 5_000),
            webhook_max_backoff_ms=_int(env, "WEBHOOK_MAX_BACKOFF_MS", 3_600_000),
            reward_cancel_days=_int(env, "REWARD_CANCEL_DAYS", 7, minimum=0),
            expiry_notice_days=_int(env, "EXPIRY_NOTICE_DAYS", 30, minimum=0),
            expiry_webhook_days=_int(env, "EXPIRY_WEBHOOK_DAYS", 30, minimum=0),
            reports_database_url=env.get("REPORTS_DATABASE_URL") or None,
            reports_max_lag_s=_int(env, "REPORTS_MAX_LAG_S", 30, minimum=0),
            reports_fallback_primary=env.get("REPORTS_FALLBACK_PRIMARY", "").lower()
            in ("1", "true", "yes"),
            proxy_fix_x_proto=_int(env, "PROXY_FIX_X_PROTO", 0, minimum=0),
            proxy_fix_x_host=_int(env, "PROXY_FIX_X_HOST", 0, minimum=0),
            provider_signature_max_age_s=_int(env, "PROVIDER_SIGNATURE_MAX_AGE_S", 300),
            provider_signature_skew_s=_int(env, "PROVIDER_SIGNATURE_SKEW_S", 30, minimum=0),
            provider_key_secret=env.get("PROVIDER_KEY_SECRET") or None,
            binding_code_ttl_s=_int(env, "BINDING_CODE_TTL_S", 600),
            ledger_chain_keys=env.get("LEDGER_CHAIN_KEYS") or None,
            consent_required=env.get("CONSENT_REQUIRED", "all").strip().lower() or "all",
            privacy_notice_version=env.get("PRIVACY_NOTICE_VERSION") or LATEST,
            trip_detail_retention_days=_int(env, "TRIP_DETAIL_RETENTION_DAYS", 180),
            leaderboard_hidden_as=env.get("LEADERBOARD_HIDDEN_AS", "anonymous"),
            leaderboard_keep_days=_int(env, "LEADERBOARD_KEEP_DAYS", 0, minimum=0),
        )
        if caps is not None:
            cfg.daily_caps_g = caps
        cfg.settlement_days = _city_days(env, "SETTLEMENT_DAYS")
        cfg.claim_days = _city_days(env, "CLAIM_DAYS")
        cfg.annual_cap_g = annual_cap
        try:
            cfg.plausibility = Policy.from_settings(
                _pairs(env.get("PLAUSIBILITY_LIMITS", "")),
                _pairs(env.get("PLAUSIBILITY_OUTCOMES", "")))
        except ValueError as exc:
            raise ConfigError(f"PLAUSIBILITY_*: {exc}") from None
        if auto is not None:
            cfg.auto_init_db = auto.lower() in ("1", "true", "yes")
        return cfg


def parse_chain_keys(text: str) -> tuple[tuple[str, bytes], ...]:
    """LEDGER_CHAIN_KEYS: "k2:base64,k1:base64" -> ((name, key), ...), in that order."""
    keys: list[tuple[str, bytes]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, encoded = part.partition(":")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not sep or not name.strip() or len(key) < 16:
            raise ConfigError(f"LEDGER_CHAIN_KEYS: expected name:base64 of at least 16 bytes, "
                              f"got {name.strip() or part!r}")
        if any(name.strip() == seen for seen, _ in keys):
            raise ConfigError(f"LEDGER_CHAIN_KEYS: key {name.strip()!r} named twice")
        keys.append((name.strip(), key))
    if not keys:
        raise ConfigError("LEDGER_CHAIN_KEYS: no key")
    return tuple(keys)


def _pairs(text: str) -> dict[str, str]:
    """"a=1,b=hold" -> {"a": "1", "b": "hold"}."""
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"expected name=value, got {part!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _city_days(env: Mapping[str, str], name: str) -> dict[str, int]:
    """``city=days,...``: days 1 to 365 per city."""
    try:
        pairs = _pairs(env.get(name, ""))
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    days = {}
    for city, raw in pairs.items():
        if not raw.isdigit() or not 1 <= int(raw) <= 365:
            raise ConfigError(f"{name}: {city}: expected days from 1 to 365, got {raw!r}")
        days[city] = int(raw)
    return days


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be positive" if minimum == 1
                          else f"{name}: must be at least {minimum}")
    return value
