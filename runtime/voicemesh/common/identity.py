"""Who a caller is, as the gateway's authentication found it, and what that lets it touch.

One ``Identity`` per call: the tenant (rate limits, documents), the user the credential speaks for,
and its scopes. A user's credential covers that user only; ``admin`` and ``service`` scopes act for
any user of their tenant (a server that speaks for its own users, the local operator).

API keys are ``vmk_<id>_<secret>``: the id finds the key's record, and only the SHA-256 of the
whole key is stored. A key is 32 random bytes, so a fast hash is enough: there is nothing to
guess a password from, only a key to look up.

Standard library only: the SDK, the gateway and a plugin host all read it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from voicemesh.common.errors import PermissionDenied

ADMIN = "admin"
SERVICE = "service"
ACTS_FOR_OTHERS = frozenset({ADMIN, SERVICE})
DEFAULT_TENANT = "default"
API_KEY_PREFIX = "vmk_"
TENANT_TAG_CHARS = 24  # a user key is at most this, a slash and the user id


def user_key(tenant: str, user_id: str) -> str:
    """The id the core keeps a user's data under (history, profile, sessions, voice print, cached
    replies): their tenant's, so two tenants' "ada" are two people. The default tenant's users keep
    their bare ids, so what a single-tenant mesh kept stays theirs. A tenant that could not be part
    of an id (too long, or with characters ids may not hold) is named by its hash."""
    if not user_id or tenant == DEFAULT_TENANT:
        return user_id
    tag = (
        tenant
        if len(tenant) <= TENANT_TAG_CHARS and tenant.replace("-", "").replace(".", "").isalnum()
        else ("t" + hashlib.sha256(tenant.encode()).hexdigest()[: TENANT_TAG_CHARS - 1])
    )
    return f"{tag}/{user_id}"


@dataclass(frozen=True)
class Identity:
    tenant: str
    user: str  # "" for a credential that speaks for no one user (an admin or service key)
    scopes: frozenset[str] = field(default_factory=frozenset)
    credential: str = ""  # the key id or token id: what the logs and per-caller caps name

    @property
    def acts_for_others(self) -> bool:
        return bool(self.scopes & ACTS_FOR_OTHERS)

    @property
    def caller(self) -> str:
        """The key of per-caller caps: one user of one tenant, or one key."""
        return f"{self.tenant}/{self.user or self.credential}"

    def user_for(self, requested: str, *, what: str = "user_id") -> str:
        """The user a request acts for: the one it names if this identity covers it (its own
        user's token fills in an empty one), else PERMISSION_DENIED."""
        if not requested:
            return "" if self.acts_for_others else self.user
        if requested == self.user or self.acts_for_others:
            return requested
        raise PermissionDenied(
            f"this credential is for user {self.user!r}; it may not act for {what} {requested!r} "
            "(a key with the admin or service scope may act for its tenant's users)"
        )

    def require(self, scopes: frozenset[str], action: str) -> None:
        if not self.scopes & scopes:
            raise PermissionDenied(
                f"{action} needs a credential with the {' or '.join(sorted(scopes))} scope"
            )


def new_api_key() -> tuple[str, str]:
    """A fresh key: (its id, the whole key to hand out once)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def api_key_id(key: str) -> str:
    """The id part of a well-formed key, or "" for anything else."""
    if not key.startswith(API_KEY_PREFIX):
        return ""
    key_id, sep, secret = key.removeprefix(API_KEY_PREFIX).partition("_")
    return key_id if sep and secret and key_id.isalnum() else ""


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(api_key_hash(key), stored_hash)
