"""API tokens and dashboard sessions as the store keeps them: scopes, secrets and their hashes.

Pure and stdlib only: the CLI (``token create``) and the service (every request) share it, and
neither should pay for more than ``hashlib`` and ``secrets``.
"""

from __future__ import annotations

import hashlib
import secrets

# Each scope allows what the ones before it allow: ``read`` looks, ``operate`` also changes
# runs and the queue, ``admin`` may do everything the service offers.
SCOPES = ("read", "operate", "admin")
# Told apart at a glance from a password or another service's key (and by secret scanners).
SECRET_PREFIX = "br_"


def scope_allows(have: str, need: str) -> bool:
    """Whether a token of scope ``have`` may do what needs ``need``; an unknown scope on
    either side allows nothing (a row written by a newer version, a typo in a route)."""
    if have not in SCOPES or need not in SCOPES:
        return False
    return SCOPES.index(have) >= SCOPES.index(need)


def new_secret() -> str:
    """A token as the user is shown it once: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps of a token or a session id (sha256, hex).

    A fast hash is right here, unlike for a password: the secret is 256 random bits, so no
    guess list nor brute force can find it from its hash, and a slow hash (bcrypt, scrypt)
    would cost every API request tens of milliseconds for nothing. Stored hashed so that a
    copy of the database (a backup, ``doctor``'s moved-aside file) grants no access.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_session_id() -> str:
    """A dashboard session's cookie value (its hash is what the store keeps), or a CSRF token."""
    return secrets.token_urlsafe(32)
