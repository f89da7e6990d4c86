"""API keys of the local backend: generated at random, stored only as hashes."""

from __future__ import annotations

import hashlib
import math
import secrets

from opennote_jupyter.contract import tier_named
from opennote_jupyter.local.store import Store

KEY_PREFIX = "onl_"


def hash_key(api_key: str) -> str:
    """Return the SHA-256 hex digest stored in place of ``api_key``.

    A plain hash is enough because keys carry 256 random bits: there is no
    dictionary to try, so a slow password hash would only slow every request.
    """
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create_key(
    store: Store,
    organization: str,
    *,
    tier: str = "developer",
    credits: float = 100.0,
    per_minute: int | None = None,
    per_day: int | None = None,
) -> str:
    """Create an API key for ``organization``, creating the organization if new.

    A new organization gets ``tier`` (``per_minute`` and ``per_day`` are required
    for ``enterprise``) and ``credits``; an existing one keeps its own. The key is
    returned once and only its hash is stored.

    Raises
    ------
    ValueError
        If the organization name is blank or the tier is unknown or incomplete.
    """
    name = organization.strip()
    if not name:
        raise ValueError("organization name is empty: pass a name such as 'my-team'")
    if not math.isfinite(credits) or credits < 0:
        raise ValueError(f"credits must be a finite number, 0 or more, got {credits!r}")
    tier_limits = tier_named(tier, per_minute=per_minute, per_day=per_day)
    org = store.ensure_organization(name, tier_limits, credits)
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.add_key(org.id, hash_key(api_key))
    return api_key
