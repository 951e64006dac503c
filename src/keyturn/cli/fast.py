"""The cached `keyturn creds ROLE --format process` path, before typer, boto3 or pydantic.

An SDK runs its credential_process at every start, so this is keyturn's hottest path.
When the command line is exactly that (global -c/--profile/--region/--role-arn/
--endpoint-url/--debug, then `creds ROLE` with --format/-f process, --ttl, --display-name,
--no-wait) and the cache holds a fresh, trusted credential for it, this prints it and
returns 0. Anything else returns None and the ordinary path runs: every error, warning and
validation is that path's, so this one only ever answers when all is well.

It applies the rules the ordinary path would: the config file is found the same way and
refused on the same terms (keyturn.config_trust); a file picked up implicitly from the
working directory is left to the ordinary path (which names what it sets); the lease
source is named from the same settings (file < env < flags) by the same function
(lease_cache.local_source); the cache's own ownership and mode checks are the same object's.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keyturn.adapters.lease_cache import (
    DEFAULT_MARGIN,
    CacheKey,
    CacheRefusedError,
    CredentialCache,
    cache_dir,
    duration_seconds,
    local_source,
)

# Each import here is paid at every SDK start; typing and tomllib (the latter only needed
# when a config file is named) stay out (tests/unit/test_lazy_cli.py guards it).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GLOBAL_VALUES = {
    "-c": "config",
    "--config": "config",
    "--profile": "aws.profile",
    "--region": "aws.region",
    "--role-arn": "aws.role_arn",
    "--endpoint-url": "aws.endpoint_url",
}
CREDS_VALUES = {"--ttl": "ttl", "--format": "format", "-f": "format", "--display-name": "who"}
# The settings this path reads; the ordinary path validates them (and everything else).
USED = (
    "leases.store",
    "leases.sqlite_path",
    "leases.dynamodb_table",
    "leases.cache_margin",
    "aws.endpoint_url",
    "aws.profile",
    "aws.region",
    "aws.role_arn",
    "broker.url",
)


def cached_process(args: list[str], environ: Mapping[str, str] | None = None) -> int | None:
    env = os.environ if environ is None else environ
    try:
        return _answer(args, env)
    except (OSError, ValueError, CacheRefusedError):  # TOMLDecodeError is a ValueError
        return None  # the ordinary path says what is wrong


def _answer(args: list[str], env: Mapping[str, str]) -> int | None:
    parsed = _parse(args)
    if parsed is None or parsed.get("format") != "process" or "role" not in parsed:
        return None
    values = _settings(parsed, env)
    if values is None or values.get("broker.url"):
        return None  # a broker's leases: the ordinary path keys the cache by the broker
    ttl = None
    if "ttl" in parsed:
        ttl = duration_seconds(parsed["ttl"])
        if not ttl:
            return None
    margin = DEFAULT_MARGIN
    if values.get("leases.cache_margin") is not None:
        seconds = duration_seconds(values["leases.cache_margin"])
        if seconds is None:
            return None
        margin = timedelta(seconds=seconds)
    who = parsed.get("who") or _login()
    source = local_source(values.get, env)
    key = CacheKey(parsed["role"], source, {"ttl": ttl, "display_name": who})
    hit = CredentialCache(cache_dir(env), margin).get(key, datetime.now(UTC))
    if hit is None:
        return None
    sys.stdout.write(hit.process_json() + "\n")
    sys.stdout.flush()
    return 0


def _parse(args: list[str]) -> dict[str, str] | None:
    """The options of `[global options] creds ROLE [creds options]`, or None."""
    parsed: dict[str, str] = {}
    rest = iter(args)
    in_creds = False
    for arg in rest:
        name, eq, inline = arg.partition("=")
        table = CREDS_VALUES if in_creds else GLOBAL_VALUES
        if name in table:
            if eq and not name.startswith("--"):
                return None  # `-f=process` means "=process" to click
            value = inline if eq else next(rest, None)
            if value is None or table[name] in parsed:
                return None
            parsed[table[name]] = value
        elif (arg == "--debug" and not in_creds) or (arg == "--no-wait" and in_creds):
            continue
        elif arg.startswith("-"):
            return None  # --no-cache, --help, anything unknown: the ordinary path
        elif not in_creds:
            if arg != "creds":
                return None
            in_creds = True
        elif "role" not in parsed:
            parsed["role"] = arg
        else:
            return None
    return parsed if in_creds else None


def _settings(parsed: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str] | None:
    """The USED settings, file < env < flags, as text; None when anything is unusual."""
    values: dict[str, str] = {}
    chosen = parsed.get("config") or env.get("KEYTURN_CONFIG")
    if not chosen:
        if Path("keyturn.toml").exists():
            return None  # implicit: the ordinary path names what it sets
    else:
        import tomllib

        from keyturn.config_trust import check_file_trust
        from keyturn.domain.errors import ConfigError

        file = Path(chosen)
        if not file.is_file():
            return None
        try:
            check_file_trust(file)
        except ConfigError:
            return None
        data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
        for dotted in USED:
            section, _, name = dotted.partition(".")
            table = data.get(section, {})
            if not isinstance(table, dict):
                return None
            if name in table:
                if not isinstance(table[name], str):
                    return None
                values[dotted] = table[name]
    for dotted in USED:
        section, _, name = dotted.partition(".")
        variable = f"KEYTURN_{section.upper()}_{name.upper()}"
        if variable in env:
            values[dotted] = env[variable]
    for dotted in USED:
        if dotted in parsed:
            values[dotted] = parsed[dotted]
    if any(not value for value in values.values()):
        return None
    return values


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "keyturn"
