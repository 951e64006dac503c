"""Who may lease a role through the broker, and who may manage a lease. Pure.

The caller is the identity AWS proved (sts:GetCallerIdentity, executed by the broker), in
canonical form: an IAM user's ARN, or for an assumed-role session the *role's* ARN (the
session name is chosen by whoever assumes the role, so it names a session, not a
principal; it is kept for the audit line and the username template only).

Rules, each a boundary the tests state as a table:

- A role lists `allowed_principals` (ARN patterns) and `admin_principals`. A role that
  names nobody can be leased by **nobody** through the broker: deny by default, so adding
  a role to a broker-served store never opens it to every AWS principal.
- A pattern is an ARN with `*` (any run of characters) and `?` (one character); nothing
  else is special (no character classes: `[` is a literal). It must name its account (12
  digits): `arn:aws:iam::*:role/x` would match that role name in every AWS account that
  exists, which is never what an operator meant.
- A lease records its owner (the canonical caller that issued it). Renew, revoke and list
  see a lease only when the caller is its owner or matches its role's admins. A lease with
  no owner (issued before the broker, or by the local CLI) belongs to admins only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from keyturn.domain.errors import BadInputError

_PARTITION = r"aws[a-z-]*"
_NAME = r"[\w+=,.@-]+"
_USER_ARN = re.compile(rf"^arn:({_PARTITION}):iam::(\d{{12}}):user/((?:[\x21-\x7E]*/)?)({_NAME})$")
_ASSUMED_ARN = re.compile(
    rf"^arn:({_PARTITION}):sts::(\d{{12}}):assumed-role/((?:[\x21-\x7E]*/)?)({_NAME})/({_NAME})$"
)
_PATTERN = re.compile(rf"^arn:{_PARTITION}:iam::(\d{{12}}):(user|role)/[\w+=,.@/*?-]{{1,512}}$")


class CallerKind(StrEnum):
    USER = "user"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal AWS authenticated, canonicalised. `arn` is what patterns match and what
    a lease records as its owner."""

    arn: str
    account: str
    kind: CallerKind
    name: str  # user name, or role name
    session: str | None = None  # assumed-role session name (chosen by the assumer)

    @property
    def display_name(self) -> str:
        """What the username template's {display_name} gets."""
        return self.session or self.name


def canonical_caller(arn: str) -> Caller:
    """The caller behind an ARN that sts:GetCallerIdentity returned.

    `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` -> the role `arn:aws:iam::ACCOUNT:role/ROLE`
    with session SESSION (GetCallerIdentity drops the role's path; so does this). Root,
    federated users and anything else are refused: the broker serves IAM users and roles.
    """
    user = _USER_ARN.match(arn)
    if user:
        partition, account, _path, name = user.groups()
        return Caller(arn, account, CallerKind.USER, name)
    assumed = _ASSUMED_ARN.match(arn)
    if assumed:
        partition, account, _path, role, session = assumed.groups()
        role_arn = f"arn:{partition}:iam::{account}:role/{role}"
        return Caller(role_arn, account, CallerKind.ROLE, role, session)
    raise BadInputError(
        f"caller {arn!r} is neither an IAM user nor an assumed role; the broker serves only those"
    )


def check_patterns(role: str, label: str, patterns: Sequence[str]) -> tuple[str, ...]:
    """Validate principal patterns (see the module docstring); duplicates dropped."""
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise BadInputError(
                f"role {role}: {label} {pattern!r} is not an IAM user or role ARN pattern "
                "naming its 12-digit account (e.g. arn:aws:iam::123456789012:role/dev-*)"
            )
    return tuple(dict.fromkeys(patterns))


def _compiled(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def matches(arn: str, patterns: Iterable[str]) -> bool:
    """Whether the canonical ARN matches any pattern, in full (never a prefix)."""
    return any(_compiled(pattern).fullmatch(arn) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str


def may_issue(caller: Caller, role: str, allowed: Sequence[str], admins: Sequence[str]) -> Verdict:
    """Issue: the caller matches the role's allowed principals or its admins."""
    if not allowed and not admins:
        return Verdict(
            False,
            f"role {role} names no allowed_principals: nobody may lease it through the broker",
        )
    if matches(caller.arn, allowed) or matches(caller.arn, admins):
        return Verdict(True, f"{caller.arn} may lease role {role}")
    return Verdict(False, f"{caller.arn} is not allowed to lease role {role}")


def may_manage(caller: Caller, lease_id: str, owner: str | None, admins: Sequence[str]) -> Verdict:
    """Renew, revoke or see a lease: its owner, or an admin of its role."""
    if owner is not None and owner == caller.arn:
        return Verdict(True, f"{caller.arn} owns {lease_id}")
    if matches(caller.arn, admins):
        return Verdict(True, f"{caller.arn} is an admin of {lease_id}'s role")
    # One message whether the lease exists or not would hide nothing here (ids are random
    # and long); naming it as someone else's is clearer to the caller.
    return Verdict(False, f"{lease_id} is not {caller.arn}'s lease")
