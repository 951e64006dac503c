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
- A lease records its owner (the canonical caller that issued it) **and the owner's AWS
  unique id** (GetCallerIdentity's `UserId`: `AIDA...` for a user, the role's `AROA...`
  before the colon for a session). A name can be deleted and created again by anyone with
  iam:CreateUser/CreateRole; the unique id cannot: AWS gives the new principal a new one.
  Renew, revoke and list see a lease only when the caller's ARN *and* unique id are its
  owner's, or the caller matches its role's admins. A lease with no owner (issued before
  the broker, or by the local CLI), or whose owner was recorded by ARN alone (before
  unique ids were), belongs to admins only: an ARN alone cannot tell its owner from a
  same-named successor, so it proves nothing.
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
# The part of GetCallerIdentity's UserId that names the principal: AWS's are AIDA/AROA and
# 17 more upper-case letters or digits; emulators use other alphabets. Never a name.
_UNIQUE_ID = re.compile(r"^[A-Za-z0-9]{8,128}$")
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
    # AWS's unique id of the user or role (never reused: a same-named successor has another)
    unique_id: str | None = None

    @property
    def display_name(self) -> str:
        """What the username template's {display_name} gets."""
        return self.session or self.name


def canonical_caller(arn: str, user_id: str | None = None) -> Caller:
    """The caller behind an ARN (and UserId) that sts:GetCallerIdentity returned.

    `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` -> the role `arn:aws:iam::ACCOUNT:role/ROLE`
    with session SESSION (GetCallerIdentity drops the role's path; so does this), and unique
    id the role's (`AROA...:SESSION` -> `AROA...`). Root, federated users and anything else
    are refused: the broker serves IAM users and roles. A UserId given but not of that
    shape is refused too (STS's own answer, so only a broken STS sends one).
    """
    unique = None
    if user_id is not None:
        unique = user_id.split(":", 1)[0]
        if not _UNIQUE_ID.fullmatch(unique):
            raise BadInputError(f"caller {arn!r}: STS returned no usable unique id")
    user = _USER_ARN.fullmatch(arn)
    if user:
        partition, account, _path, name = user.groups()
        return Caller(arn, account, CallerKind.USER, name, unique_id=unique)
    assumed = _ASSUMED_ARN.fullmatch(arn)
    if assumed:
        partition, account, _path, role, session = assumed.groups()
        role_arn = f"arn:{partition}:iam::{account}:role/{role}"
        return Caller(role_arn, account, CallerKind.ROLE, role, session, unique)
    raise BadInputError(
        f"caller {arn!r} is neither an IAM user nor an assumed role; the broker serves only those"
    )


def check_patterns(role: str, label: str, patterns: Sequence[str]) -> tuple[str, ...]:
    """Validate principal patterns (see the module docstring); duplicates dropped."""
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
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


def may_manage(
    caller: Caller,
    lease_id: str,
    owner: str | None,
    admins: Sequence[str],
    owner_id: str | None = None,
) -> Verdict:
    """Renew, revoke or see a lease: its owner (same ARN *and* same unique id), or an
    admin of its role. An owner recorded without a unique id is admins' only."""
    same_name = owner is not None and owner == caller.arn
    if same_name and owner_id is not None and owner_id == caller.unique_id:
        return Verdict(True, f"{caller.arn} owns {lease_id}")
    if matches(caller.arn, admins):
        return Verdict(True, f"{caller.arn} is an admin of {lease_id}'s role")
    if same_name and owner_id is None:
        return Verdict(
            False,
            f"{lease_id} records its owner by ARN only (issued before owners' unique ids "
            f"were recorded): only an admin of its role may manage it",
        )
    if same_name:
        return Verdict(
            False,
            f"{lease_id} belongs to an earlier principal named {caller.arn} (deleted and "
            "created again: another unique id)",
        )
    # One message whether the lease exists or not would hide nothing here (ids are random
    # and long); naming it as someone else's is clearer to the caller.
    return Verdict(False, f"{lease_id} is not {caller.arn}'s lease")
