"""What `creds --format process` and `exec` share: a credential from the cache, or a new
lease (then cached).

The source of a credential is a parameter: the local lease service today; a broker (its
URL as the source, its client's `issue(role, ttl)` as the issuer) plugs in beside it.
`creds` in the other formats does not use the cache: it is an explicit request for a new
lease, whose id the caller may then revoke.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from keyturn.adapters.lease_cache import (
    CachedCredential,
    CacheKey,
    CacheRefusedError,
    CredentialCache,
    cache_dir,
    local_source,
)

if TYPE_CHECKING:
    from keyturn.config import LoadedSettings
    from keyturn.services.leases import IssuedCredential


def warn(line: str) -> None:
    """One line on stderr, never a secret (stdout is the credential's, when asked)."""
    sys.stderr.write(f"warning: {' '.join(line.split())}\n")


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "keyturn"


def cache_key(role: str, source: str, ttl: timedelta | None, display_name: str | None) -> CacheKey:
    """Everything that changes what is issued; the fast path (cli/fast.py) builds the same."""
    seconds = int(ttl.total_seconds()) if ttl is not None else None
    return CacheKey(role, source, {"ttl": seconds, "display_name": display_name})


def settings_source(loaded: LoadedSettings) -> str:
    settings = loaded.settings

    def value(dotted: str) -> str | None:
        section, _, name = dotted.partition(".")
        found = getattr(getattr(settings, section), name)
        return None if found is None else str(found)

    return local_source(value, os.environ)


def open_cache(loaded: LoadedSettings) -> CredentialCache:
    from keyturn.domain.errors import ConfigError
    from keyturn.domain.leases import parse_duration

    raw = loaded.settings.leases.cache_margin
    try:
        margin = parse_duration(raw, "leases.cache_margin", allow_zero=True)
    except Exception as exc:  # BadInputError: a config value, so a config error
        raise ConfigError(str(exc)) from None
    return CredentialCache(cache_dir(), margin, warn)


def from_issued(issued: IssuedCredential) -> CachedCredential:
    return CachedCredential(
        lease_id=issued.lease.lease_id,
        access_key_id=issued.access_key_id,
        secret_access_key=issued.secret_access_key,
        session_token=issued.session_token,
        expiration=issued.lease.expires,
    )


def obtain(
    cache: CredentialCache | None,
    key: CacheKey,
    issue: Callable[[], IssuedCredential],
) -> CachedCredential:
    """The cached credential for `key`, or a newly issued one (stored for next time).

    A cache that cannot be trusted is named in one line and bypassed: the credential is
    issued anyway, but nothing is read from or written to it.
    """
    if cache is not None:
        try:
            hit = cache.get(key, datetime.now(UTC))
        except CacheRefusedError as exc:
            warn(str(exc))
            cache = None
        else:
            if hit is not None:
                return hit
    issued = issue()
    for line in issued.warnings:
        warn(line)
    fresh = from_issued(issued)
    if cache is not None:
        try:
            cache.put(key, fresh)
        except (CacheRefusedError, OSError) as exc:
            warn(f"credential not cached: {exc}")
    return fresh
