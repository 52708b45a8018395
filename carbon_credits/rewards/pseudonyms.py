"""How a user appears to merchants and on certificates: a keyed hash of the user id, so a
merchant can tell its customers apart without learning who they are."""

from __future__ import annotations

import hashlib
import hmac

from carbon_credits.config import Config


def pseudonym(config: Config, user_id: str) -> str:
    """HMAC-SHA256 of the user id under the service's signing secret, 20 hex digits: the
    same user always gets the same one; without the secret it cannot be reversed or
    guessed from a list of user ids."""
    key = config.signing_secret().encode()
    return "u-" + hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:20]
