"""Leases on dynamic AWS credentials: roles, lease records, TTL math, user names. Pure.

Vault's AWS secrets engine is the model (roles, `aws/creds/ROLE/ID`, 768h default TTL,
renew up to a max TTL). What differs, on purpose:

- A TTL asked for above the role's max TTL is *refused* (exit 2, nothing created) rather
  than silently clamped: the caller asked for something the role does not allow and should
  know before a credential exists. Renewing past the max is clamped to the max, with a
  warning, as Vault does: the lease already exists and cannot outlive its max anyway.
- A lease records exactly what its issue attached (policies, groups, key id), so revoking
  never depends on the role still existing or being unchanged.
- States are explicit (`PENDING` is the write-ahead intent) and every change is made with
  compare-and-set on `version`, so two revokers never both act on one lease.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from keyturn.domain.authorization import check_patterns
from keyturn.domain.errors import BadInputError

DEFAULT_TTL = timedelta(hours=768)
SYSTEM_MAX_TTL = timedelta(hours=768)
DEFAULT_STS_TTL = timedelta(hours=1)
# STS limits: DurationSeconds of AssumeRole (900 s to 12 h, further capped by the role's
# MaxSessionDuration) and of GetFederationToken (900 s to 36 h).
MIN_STS_TTL = timedelta(seconds=900)
MAX_ASSUMED_ROLE_TTL = timedelta(hours=12)
MAX_FEDERATION_TTL = timedelta(hours=36)

LEASE_PREFIX = "aws/creds/"
IAM_NAME_LIMIT = 64
FEDERATION_NAME_LIMIT = 32
IAM_NAME_CHARS = re.compile(r"^[\w+=,.@-]+$", re.ASCII)
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LEASE_SUFFIX = re.compile(r"^[A-Za-z0-9]{8,64}$")
POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
USER_PATH = re.compile(r"^/([\x21-\x7E]{1,510}/)?$")
GROUP_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
TAG_KEY = re.compile(r"^[\w.:/=+@ -]{1,128}$")
TAG_VALUE = re.compile(r"^[\w.:/=+@ -]{0,256}$")

# Tags keyturn puts on every IAM user it creates. Anyone with iam:TagUser can copy them, so
# `tidy` only *finds* candidates by them; its own lease record naming the user is the proof.
TAG_LEASE = "keyturn:lease-id"
TAG_ROLE = "keyturn:role"
TAG_STORE = "keyturn:store"
RESERVED_TAG_PREFIXES = ("keyturn:", "aws:")
MAX_USER_TAGS = 50


class CredentialType(StrEnum):
    IAM_USER = "iam_user"
    ASSUMED_ROLE = "assumed_role"
    FEDERATION_TOKEN = "federation_token"  # noqa: S105 - a type name, not a secret

    @property
    def is_sts(self) -> bool:
        return self is not CredentialType.IAM_USER


class LeaseState(StrEnum):
    PENDING = "PENDING"  # intent recorded; the IAM user may or may not exist yet
    ACTIVE = "ACTIVE"  # credentials handed out
    REVOKING = "REVOKING"  # a revoker claimed it (or failed part-way and released it)
    REVOKED = "REVOKED"  # nothing of it is left in AWS
    IRREVOCABLE = "IRREVOCABLE"  # revoke failed max attempts times; a human must look


# -- durations ------------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+)([dhms])")  # ASCII digits only: "²" is .isdigit()
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Far beyond any TTL AWS or a lease store means; also below timedelta's own limit, which
# would otherwise surface as an OverflowError instead of a message.
MAX_DURATION_SECONDS = 100 * 365 * 86400


def parse_duration(text: str, what: str = "duration", *, allow_zero: bool = False) -> timedelta:
    """`90s`, `30m`, `1h`, `768h`, `2d`, `1h30m` or plain seconds (`3600`)."""
    raw = text.strip().lower()
    if raw.isascii() and raw.isdigit():
        seconds = int(raw)
    else:
        parts = _DURATION_PART.findall(raw)
        if not raw or "".join(n + u for n, u in parts) != raw:
            raise BadInputError(
                f"{what}: {text!r} is not a duration (examples: 90s, 30m, 1h, 768h, 2d, 1h30m)"
            )
        seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise BadInputError(f"{what}: {text!r} must be longer than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise BadInputError(f"{what}: {text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Shortest exact form: `768h`, `1h30m`, `90s`."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


# -- username templates ----------------------------------------------------------------

TEMPLATE_FIELDS = frozenset({"prefix", "display_name", "role", "unix_time", "random"})
DEFAULT_USER_TEMPLATE = "{prefix}-{display_name:12}-{role:16}-{unix_time}-{random:8}"
DEFAULT_STS_TEMPLATE = "{prefix}-{unix_time}-{random:8}"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::(\d{1,2}))?\}")
_LITERAL_OK = re.compile(r"^[\w+=,.@-]*$", re.ASCII)


@dataclass(frozen=True, slots=True)
class NameParts:
    prefix: str
    display_name: str
    role: str
    unix_time: int
    random: str  # at least 32 characters of [a-z0-9]; the template takes what it asks for


def check_template(template: str) -> None:
    """Reject unknown fields, stray braces, characters IAM refuses, and templates with no
    `{random}` (two issues in the same second would otherwise collide on CreateUser)."""
    pos = 0
    has_random = False
    for match in _PLACEHOLDER.finditer(template):
        _check_literal(template, template[pos : match.start()])
        name, width = match.group(1), match.group(2)
        if name not in TEMPLATE_FIELDS:
            raise BadInputError(
                f"username template {template!r}: unknown field {{{name}}} "
                f"(known: {', '.join(sorted(TEMPLATE_FIELDS))})"
            )
        if width is not None and int(width) == 0:
            raise BadInputError(f"username template {template!r}: {{{name}:0}} is empty")
        if name == "random":
            has_random = True
            if width is not None and not 4 <= int(width) <= 32:
                raise BadInputError(
                    f"username template {template!r}: {{random:N}} needs 4 <= N <= 32"
                )
        pos = match.end()
    _check_literal(template, template[pos:])
    if not template.startswith("{prefix}"):
        raise BadInputError(
            f"username template {template!r} must start with {{prefix}}: `lease tidy` looks "
            "for orphaned users by that prefix and never touches other users"
        )
    if not has_random:
        raise BadInputError(
            f"username template {template!r} has no {{random}} field: names would collide"
        )


_FIELD_CHARS = r"[\w+=,.@-]"


def username_pattern(template: str, prefix: str, role: str) -> re.Pattern[str]:
    """The exact structure `render_name(template, ...)` gives for this prefix and role: the
    literals, prefix and role as they render, `{unix_time}` as digits, `{random:N}` as
    exactly N of [a-z0-9], `{display_name:N}` as at most N IAM name characters.

    `tidy` requires a user's name to match it before removing the user; a name that merely
    starts with the prefix (`keyturn-deployer`) does not."""
    check_template(template)
    out: list[str] = ["^"]
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        name, width = match.group(1), match.group(2)
        if name in ("prefix", "role"):
            value = re.sub(
                r"[^\w+=,.@-]", "-", prefix if name == "prefix" else role, flags=re.ASCII
            )
            out.append(re.escape(value[: int(width)] if width else value))
        elif name == "unix_time":
            out.append(r"[0-9]{1,12}")
        elif name == "random":
            out.append(f"[a-z0-9]{{{int(width or 8)}}}")
        else:  # display_name: whoever asked, cleaned to IAM's characters
            out.append(f"{_FIELD_CHARS}{{0,{int(width)}}}" if width else f"{_FIELD_CHARS}*")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    out.append("$")
    return re.compile("".join(out), re.ASCII)


def _check_literal(template: str, text: str) -> None:
    if "{" in text or "}" in text:
        raise BadInputError(f"username template {template!r}: unbalanced or malformed braces")
    if not _LITERAL_OK.match(text):
        raise BadInputError(
            f"username template {template!r}: {text!r} has characters IAM names do not allow "
            "(allowed: letters, digits and +=,.@_-)"
        )


def render_name(template: str, parts: NameParts, limit: int = IAM_NAME_LIMIT) -> str:
    """Fill the template; text fields are cleaned to IAM's characters, then truncated."""
    check_template(template)

    def fill(match: re.Match[str]) -> str:
        name, width = match.group(1), match.group(2)
        if name == "random":
            return parts.random[: int(width or 8)]
        value = {
            "prefix": parts.prefix,
            "display_name": parts.display_name,
            "role": parts.role,
            "unix_time": str(parts.unix_time),
        }[name]
        value = re.sub(r"[^\w+=,.@-]", "-", value, flags=re.ASCII)
        return value[: int(width)] if width else value

    name = _PLACEHOLDER.sub(fill, template)
    if len(name) > limit:
        raise BadInputError(
            f"username template {template!r} renders {len(name)} characters; IAM allows "
            f"{limit}: give long fields a limit such as {{display_name:16}}"
        )
    if len(name) < 2:
        raise BadInputError(f"username template {template!r} renders a name shorter than 2")
    return name


# -- roles --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Role:
    """What `creds ROLE` issues. Build with `Role.build`, which validates everything."""

    name: str
    credential_type: CredentialType
    policy_arns: tuple[str, ...] = ()
    policy_document: str | None = None  # compact JSON
    iam_groups: tuple[str, ...] = ()
    iam_tags: Mapping[str, str] = field(default_factory=dict)
    permissions_boundary_arn: str | None = None
    user_path: str = "/"
    role_arns: tuple[str, ...] = ()
    default_ttl: timedelta | None = None
    max_ttl: timedelta | None = None
    username_template: str | None = None
    source: str = "store"  # "store" or the config file it was declared in
    # Who may lease it / manage any of its leases through the broker (ARN patterns; see
    # keyturn.domain.authorization). Empty: nobody through the broker (deny by default).
    allowed_principals: tuple[str, ...] = ()
    admin_principals: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        name: str,
        *,
        credential_type: str,
        policy_arns: Sequence[str] = (),
        policy_document: str | None = None,
        iam_groups: Sequence[str] = (),
        iam_tags: Mapping[str, str] | None = None,
        permissions_boundary_arn: str | None = None,
        user_path: str | None = None,
        role_arns: Sequence[str] = (),
        default_ttl: str | timedelta | None = None,
        max_ttl: str | timedelta | None = None,
        username_template: str | None = None,
        source: str = "store",
        allowed_principals: Sequence[str] = (),
        admin_principals: Sequence[str] = (),
    ) -> Role:
        if not ROLE_NAME.match(name):
            raise BadInputError(
                f"role name {name!r}: use 1-64 letters, digits, '_', '.', '-' "
                "(it becomes part of the lease id)"
            )
        try:
            kind = CredentialType(credential_type)
        except ValueError:
            known = ", ".join(item.value for item in CredentialType)
            raise BadInputError(
                f"role {name}: credential_type {credential_type!r} is not one of {known}"
            ) from None
        for arn in policy_arns:
            if not POLICY_ARN.match(arn):
                raise BadInputError(f"role {name}: {arn!r} is not an IAM policy ARN")
        document = _policy_json(name, policy_document) if policy_document else None
        for group in iam_groups:
            if not GROUP_NAME.match(group):
                raise BadInputError(f"role {name}: {group!r} is not a valid IAM group name")
        tags = dict(iam_tags or {})
        _check_tags(name, tags)
        if permissions_boundary_arn and not POLICY_ARN.match(permissions_boundary_arn):
            raise BadInputError(
                f"role {name}: permissions_boundary_arn {permissions_boundary_arn!r} is not "
                "an IAM policy ARN"
            )
        path = user_path or "/"
        if not USER_PATH.match(path) or "//" in path:
            raise BadInputError(
                f"role {name}: user_path {path!r} must start and end with '/' (e.g. /keyturn/)"
            )
        for arn in role_arns:
            if not ROLE_ARN.match(arn):
                raise BadInputError(f"role {name}: {arn!r} is not an IAM role ARN")
        default = _ttl(name, "default_ttl", default_ttl)
        maximum = _ttl(name, "max_ttl", max_ttl)
        if default and maximum and default > maximum:
            raise BadInputError(
                f"role {name}: default_ttl {format_duration(default)} is longer than "
                f"max_ttl {format_duration(maximum)}"
            )
        if username_template is not None:
            check_template(username_template)
        role = cls(
            name=name,
            credential_type=kind,
            policy_arns=tuple(dict.fromkeys(policy_arns)),
            policy_document=document,
            iam_groups=tuple(dict.fromkeys(iam_groups)),
            iam_tags=tags,
            permissions_boundary_arn=permissions_boundary_arn or None,
            user_path=path,
            role_arns=tuple(dict.fromkeys(role_arns)),
            default_ttl=default,
            max_ttl=maximum,
            username_template=username_template,
            source=source,
            allowed_principals=check_patterns(name, "allowed_principals", allowed_principals),
            admin_principals=check_patterns(name, "admin_principals", admin_principals),
        )
        role._check_type_rules()
        return role

    def _check_type_rules(self) -> None:
        kind = self.credential_type
        if kind is CredentialType.IAM_USER:
            if self.role_arns:
                raise BadInputError(f"role {self.name}: role_arns is only for assumed_role")
            if not (self.policy_arns or self.policy_document or self.iam_groups):
                raise BadInputError(
                    f"role {self.name}: an iam_user role needs policy_arns, policy_document "
                    "or iam_groups (a user with no permissions is useless)"
                )
            return
        for attr in ("iam_groups", "iam_tags", "permissions_boundary_arn"):
            if getattr(self, attr):
                raise BadInputError(f"role {self.name}: {attr} is only for iam_user roles")
        if self.user_path != "/":
            raise BadInputError(f"role {self.name}: user_path is only for iam_user roles")
        if kind is CredentialType.ASSUMED_ROLE and len(self.role_arns) != 1:
            raise BadInputError(
                f"role {self.name}: an assumed_role role needs exactly one role_arns entry"
            )
        if kind is CredentialType.FEDERATION_TOKEN:
            if self.role_arns:
                raise BadInputError(f"role {self.name}: role_arns is only for assumed_role")
            if not (self.policy_arns or self.policy_document):
                raise BadInputError(
                    f"role {self.name}: a federation_token role needs policy_arns or "
                    "policy_document (federated sessions get no permissions otherwise)"
                )
        ceiling = self.sts_ceiling
        for label, value in (("default_ttl", self.default_ttl), ("max_ttl", self.max_ttl)):
            if value is not None and not MIN_STS_TTL <= value <= ceiling:
                raise BadInputError(
                    f"role {self.name}: {label} {format_duration(value)} is outside what STS "
                    f"allows for {kind.value} ({format_duration(MIN_STS_TTL)} to "
                    f"{format_duration(ceiling)})"
                )

    @property
    def sts_ceiling(self) -> timedelta:
        if self.credential_type is CredentialType.FEDERATION_TOKEN:
            return MAX_FEDERATION_TTL
        return MAX_ASSUMED_ROLE_TTL

    @property
    def effective_default_ttl(self) -> timedelta:
        if self.credential_type.is_sts:
            chosen = self.default_ttl or DEFAULT_STS_TTL
        else:
            chosen = self.default_ttl or DEFAULT_TTL
        return min(chosen, self.effective_max_ttl)

    @property
    def effective_max_ttl(self) -> timedelta:
        if self.credential_type.is_sts:
            return self.max_ttl or self.sts_ceiling
        return self.max_ttl or SYSTEM_MAX_TTL

    @property
    def template(self) -> str:
        if self.username_template:
            return self.username_template
        return DEFAULT_STS_TEMPLATE if self.credential_type.is_sts else DEFAULT_USER_TEMPLATE

    @property
    def name_limit(self) -> int:
        if self.credential_type is CredentialType.FEDERATION_TOKEN:
            return FEDERATION_NAME_LIMIT
        return IAM_NAME_LIMIT

    def check_renders(self, prefix: str) -> None:
        """Render with the longest inputs keyturn passes, so a template that can overflow
        fails at `role write`, not at the first `creds`."""
        render_name(
            self.template,
            NameParts(prefix, "x" * 64, self.name, 9_999_999_999, "0" * 32),
            self.name_limit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "credential_type": self.credential_type.value,
            "policy_arns": list(self.policy_arns),
            "policy_document": self.policy_document,
            "iam_groups": list(self.iam_groups),
            "iam_tags": dict(self.iam_tags),
            "permissions_boundary_arn": self.permissions_boundary_arn,
            "user_path": self.user_path,
            "role_arns": list(self.role_arns),
            "default_ttl": format_duration(self.default_ttl) if self.default_ttl else None,
            "max_ttl": format_duration(self.max_ttl) if self.max_ttl else None,
            "username_template": self.username_template,
            "source": self.source,
            "allowed_principals": list(self.allowed_principals),
            "admin_principals": list(self.admin_principals),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Role:
        values = dict(data)
        name = str(values.pop("name"))
        return cls.build(name, **values)


def _policy_json(role: str, text: str) -> str:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"role {role}: policy_document is not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(parsed, dict) or "Statement" not in parsed:
        raise BadInputError(f"role {role}: policy_document must be a JSON object with Statement")
    compact = json.dumps(parsed, separators=(",", ":"), sort_keys=True)
    if len(compact) > 10240:
        raise BadInputError(f"role {role}: policy_document is longer than 10240 characters")
    return compact


def _check_tags(role: str, tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_USER_TAGS - 3:
        raise BadInputError(f"role {role}: at most {MAX_USER_TAGS - 3} iam_tags (keyturn adds 3)")
    for key, value in tags.items():
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise BadInputError(f"role {role}: tag key {key!r} uses a reserved prefix")
        if not TAG_KEY.match(key) or not TAG_VALUE.match(str(value)):
            raise BadInputError(f"role {role}: tag {key!r}={value!r} is not a valid IAM tag")


def _ttl(role: str, label: str, value: str | timedelta | None) -> timedelta | None:
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return value
    return parse_duration(str(value), f"role {role}: {label}")


# -- lease ids ------------------------------------------------------------------------------


def make_lease_id(role: str, suffix: str) -> str:
    return f"{LEASE_PREFIX}{role}/{suffix}"


def parse_lease_id(text: str) -> tuple[str, str]:
    """`aws/creds/ROLE/ID` -> (role, id); anything else is bad input."""
    rest = text[len(LEASE_PREFIX) :] if text.startswith(LEASE_PREFIX) else None
    role, _, suffix = (rest or "").partition("/")
    if rest is None or not ROLE_NAME.match(role) or not LEASE_SUFFIX.match(suffix):
        raise BadInputError(f"{text!r} is not a lease id (expected aws/creds/ROLE/ID)")
    return role, suffix


def check_prefix(prefix: str) -> str:
    """A revoke-prefix must name at least a role: `aws/creds/` alone would revoke every
    lease keyturn ever issued, which is never what a typo meant."""
    if not prefix.startswith(LEASE_PREFIX) or len(prefix) <= len(LEASE_PREFIX):
        raise BadInputError(
            f"prefix {prefix!r} must start with {LEASE_PREFIX}ROLE (e.g. {LEASE_PREFIX}dev)"
        )
    role = prefix[len(LEASE_PREFIX) :].split("/", 1)[0]
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", role):
        raise BadInputError(f"prefix {prefix!r}: {role!r} is not a role name")
    return prefix


def under_prefix(prefix: str, lease_id: str) -> bool:
    """Whether `lease_id` lies under `prefix` by whole path segments, as Vault's
    revoke-prefix reads it: `aws/creds/dev` (or `aws/creds/dev/`) covers `aws/creds/dev/ID`
    and the lease `aws/creds/dev` itself, never `aws/creds/dev-admin/...` or
    `aws/creds/developers/...`. A plain string prefix would revoke other roles' leases."""
    base = prefix.rstrip("/")
    if not base:
        return True
    return lease_id == base or lease_id.startswith(base + "/")


# -- leases ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """What an iam_user issue attached, recorded so revoke never needs the role."""

    policy_arns: tuple[str, ...] = ()
    inline_policy: str | None = None  # the inline policy's name
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lease:
    """One issued credential. Holds names and key ids, never a secret (invariant 5)."""

    lease_id: str
    role: str
    kind: CredentialType
    state: LeaseState
    issued: datetime
    expires: datetime
    max_expires: datetime
    principal: str  # IAM user name, role session name or federated user name
    key_id: str | None = None
    grant: Grant = field(default_factory=Grant)
    attempts: int = 0
    claimed_until: datetime | None = None
    last_error: str | None = None
    updated: datetime | None = None
    version: int = 0
    # The canonical ARN of the caller that issued it through the broker (see
    # keyturn.domain.authorization); None for leases issued locally or before the broker.
    owner: str | None = None
    # The owner's AWS unique id (AIDA... / the role's AROA...): the ARN names whoever holds
    # that name now; this names the principal that issued it. None: admins only.
    owner_id: str | None = None

    @property
    def renewable(self) -> bool:
        return self.kind is CredentialType.IAM_USER and self.state is LeaseState.ACTIVE

    @property
    def ttl(self) -> timedelta:
        return self.expires - self.issued

    def expired(self, now: datetime) -> bool:
        return self.expires <= now

    def status(self, now: datetime) -> str:
        """The state a person should see: an ACTIVE lease past its expiry is EXPIRED (its
        credential is due for `lease tidy`), not ACTIVE."""
        if self.state is LeaseState.ACTIVE and self.expired(now):
            return "EXPIRED"
        return self.state.value

    def claimable(self, now: datetime) -> bool:
        """A revoker may take it: live, or REVOKING with no live claim (released or its
        revoker died)."""
        if self.state in (LeaseState.ACTIVE, LeaseState.PENDING):
            return True
        if self.state is LeaseState.REVOKING:
            return self.claimed_until is None or self.claimed_until <= now
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "role": self.role,
            "kind": self.kind.value,
            "state": self.state.value,
            "issued": self.issued.isoformat(),
            "expires": self.expires.isoformat(),
            "max_expires": self.max_expires.isoformat(),
            "principal": self.principal,
            "key_id": self.key_id,
            "grant": {
                "policy_arns": list(self.grant.policy_arns),
                "inline_policy": self.grant.inline_policy,
                "groups": list(self.grant.groups),
            },
            "attempts": self.attempts,
            "claimed_until": self.claimed_until.isoformat() if self.claimed_until else None,
            "last_error": self.last_error,
            "updated": self.updated.isoformat() if self.updated else None,
            "version": self.version,
            "owner": self.owner,
            "owner_id": self.owner_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        grant = data.get("grant") or {}
        return cls(
            lease_id=data["lease_id"],
            role=data["role"],
            kind=CredentialType(data["kind"]),
            state=LeaseState(data["state"]),
            issued=datetime.fromisoformat(data["issued"]),
            expires=datetime.fromisoformat(data["expires"]),
            max_expires=datetime.fromisoformat(data["max_expires"]),
            principal=data["principal"],
            key_id=data.get("key_id"),
            grant=Grant(
                policy_arns=tuple(grant.get("policy_arns", ())),
                inline_policy=grant.get("inline_policy"),
                groups=tuple(grant.get("groups", ())),
            ),
            attempts=int(data.get("attempts", 0)),
            claimed_until=_maybe_time(data.get("claimed_until")),
            last_error=data.get("last_error"),
            updated=_maybe_time(data.get("updated")),
            version=int(data.get("version", 0)),
            owner=str(data["owner"]) if data.get("owner") else None,
            owner_id=str(data["owner_id"]) if data.get("owner_id") else None,
        )


def _maybe_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Window:
    expires: datetime
    max_expires: datetime


def issue_window(role: Role, now: datetime, requested: timedelta | None) -> Window:
    """The new lease's expiry. A requested TTL above the role's max is refused (see the
    module docstring); below STS's 15-minute floor too, for STS roles."""
    maximum = role.effective_max_ttl
    ttl = requested or role.effective_default_ttl
    if ttl > maximum:
        raise BadInputError(
            f"--ttl {format_duration(ttl)} is longer than role {role.name}'s max_ttl "
            f"{format_duration(maximum)}: ask for {format_duration(maximum)} or less"
        )
    if role.credential_type.is_sts and ttl < MIN_STS_TTL:
        raise BadInputError(
            f"--ttl {format_duration(ttl)}: STS credentials last at least "
            f"{format_duration(MIN_STS_TTL)}"
        )
    return Window(expires=now + ttl, max_expires=now + maximum)


def renewed(lease: Lease, now: datetime, increment: timedelta) -> tuple[Lease, str | None]:
    """Vault's renew: `expires = now + increment`, capped at `max_expires` (with a warning).

    An expiry never moves backwards: when `now + increment` is earlier than the lease's
    current expiry (a lease issued with a long `--ttl`, renewed with the role's shorter
    default), the expiry stays where it is and the warning says so; ending a lease early is
    what `lease revoke` is for. Only active iam_user leases renew: STS credentials carry a
    fixed expiry."""
    if lease.kind.is_sts:
        raise BadInputError(
            f"{lease.lease_id}: {lease.kind.value} credentials cannot be renewed (STS fixes "
            "their expiry); issue new ones with `keyturn creds`"
        )
    if lease.state is LeaseState.REVOKING:
        raise BadInputError(f"{lease.lease_id} is being revoked: cannot renew")
    if lease.state is not LeaseState.ACTIVE:
        raise BadInputError(f"{lease.lease_id} is {lease.state.value}, not ACTIVE: cannot renew")
    if lease.expired(now):
        raise BadInputError(f"{lease.lease_id} expired at {lease.expires.isoformat()}")
    wanted = now + increment
    warning = None
    if wanted > lease.max_expires:
        warning = (
            f"increment {format_duration(increment)} passes the lease's max TTL; it now "
            f"expires at its max, {lease.max_expires.isoformat()}"
        )
        wanted = lease.max_expires
    if wanted < lease.expires:
        warning = (
            f"increment {format_duration(increment)} from now would end the lease before "
            f"its current expiry; renew never shortens a lease, so it still expires at "
            f"{lease.expires.isoformat()} (to end it now: `keyturn lease revoke`)"
        )
        wanted = lease.expires
    return replace(lease, expires=wanted, updated=now), warning


@dataclass(frozen=True, slots=True)
class ManagedUser:
    """An IAM user carrying keyturn's lease tag, as `tidy` finds it."""

    name: str
    created: datetime
    lease_id: str
    store: str | None


@dataclass(frozen=True, slots=True)
class StsCredentials:
    """Temporary credentials; the secret and token never appear in repr (invariant 5)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    principal_arn: str

    def __str__(self) -> str:
        return f"StsCredentials({self.access_key_id}, secret=***)"
