"""KeyRecord: what is known about a key, never its secret or its hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shipyard.keys import scopes as _scopes

#: every key starts with this, then its prefix, then ``_`` and the secret
KEY_MARK = "sy_"


@dataclass(frozen=True)
class KeyRecord:
    """One API key as stored (the hash stays in the database).

    ``prefix`` is the non-secret part of the key, ``sy_<prefix>_<secret>``; :attr:`label`
    (``sy_<prefix>``) is how lists and logs name the key.
    """

    key_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def label(self) -> str:
        """``sy_<prefix>``: names the key without revealing it."""
        return KEY_MARK + self.prefix

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def is_active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and not self.is_expired(now)

    def allows(self, scope: str) -> bool:
        """Whether this key's scopes cover ``scope`` (see :func:`shipyard.keys.scopes.allows`)."""
        return _scopes.allows(self.scopes, scope)


__all__ = ["KEY_MARK", "KeyRecord"]
