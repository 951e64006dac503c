"""Store paths rendered from templates, checked segment by segment before any write.

`rotate.path` (a Vault KV path or a Secrets Manager secret name) is a template with
`{account}` and `{user}`. The user's name is written by whoever may `iam:CreateUser`, and
IAM names may hold `+=,.@-`: `..` is a valid IAM user name. Rendered into
`team-a/{user}/aws` it gives `team-a/../aws`, which an HTTP client collapses to `aws`, so
keyturn would write one user's key where another team's consumers read (issue 12 item 8).
A name is a claim about where a key belongs; the rendered path is only trusted once it is
a plain path in the store's own grammar:

- every `/`-separated segment is non-empty and is not `.` or `..`;
- Vault: no character that HTTP or Vault would reinterpret (`?` query, `#` fragment, `%`
  escape, backslash, control characters);
- Secrets Manager: only the characters its secret names allow (`A-Za-z0-9/_+=.@-`), at
  most 512 of them.

Rendering is pure (no I/O); both adapters call it for every path they touch, so a bad
name fails at the first read (the store's `describe`), before the journal, IAM or the
store is written.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from keyturn.domain.errors import BadInputError, ConfigError

StoreKind = Literal["vault", "secretsmanager"]

_VAULT_FORBIDDEN = frozenset("?#%\\") | {chr(code) for code in (*range(0x20), 0x7F)}
_SECRETS_MANAGER_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]+")
SECRETS_MANAGER_MAX = 512
_STORE_NAMES = {"vault": "Vault", "secretsmanager": "Secrets Manager"}


def render(template: str, *, account: str, user: str, store: StoreKind) -> str:
    """The template with `account` and `user` filled in, or BadInputError naming the user.

    Vault paths lose leading and trailing slashes (as hvac's callers always did); a
    Secrets Manager name is used exactly as rendered.
    """
    try:
        rendered = template.format(account=account, user=user)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"rotate.path {template!r} is not a valid template ({exc})") from None
    if store == "vault":
        rendered = rendered.strip("/")
    problem = path_problem(rendered, store)
    if problem is not None:
        raise BadInputError(
            f"IAM user {user!r}: store path {rendered!r} from template {template!r} "
            f"is refused: {problem}; nothing was written (rename the user or change "
            "rotate.path)"
        )
    return rendered


def path_problem(path: str, store: StoreKind) -> str | None:
    """Why `path` is not a plain path in `store`'s grammar, or None if it is one."""
    where = _STORE_NAMES[store]
    if not path:
        return "it is empty"
    if store == "secretsmanager":
        if len(path) > SECRETS_MANAGER_MAX:
            return f"{where} names are at most {SECRETS_MANAGER_MAX} characters"
        if not _SECRETS_MANAGER_NAME.fullmatch(path):
            bad = sorted({char for char in path if not _SECRETS_MANAGER_NAME.fullmatch(char)})
            return f"{where} names allow only A-Za-z0-9/_+=.@- (found {_chars(bad)})"
    else:
        bad = sorted({char for char in path if char in _VAULT_FORBIDDEN})
        if bad:
            return f"{where} would reinterpret {_chars(bad)}"
    for segment in path.split("/"):
        if segment == "":
            return "it has an empty segment (//, or a leading or trailing /)"
        if segment in (".", ".."):
            return f"segment {segment!r} would make {where} resolve another path"
    return None


def require_user_placeholder(template: str, purpose: str) -> None:
    """ConfigError unless `template` names `{user}`: without it, one path serves every
    user, and a secret's name cannot bind it to one."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ConfigError(f"rotate.path {template!r} is not a valid template ({exc})") from None
    if "user" not in names:
        raise ConfigError(f"rotate.path {template!r} has no {{user}}: {purpose}")


def _chars(chars: list[str]) -> str:
    return ", ".join(repr(char) for char in chars)
