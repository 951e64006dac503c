"""Sealing and checking enforcement state tags (`keyturn:enforce:<KEYID>`).

The planner (keyturn.domain.enforcement) is pure and never sees a key; this is where a tag
value becomes either a `SealedState` (its seal verified for this user and this key id) or a
`Rejected`. The seal is keyturn.domain.trust's HMAC over
`message(ENFORCE_PURPOSE, user, key_id, marks)`, written after the marks as
`<marks>:<seal>`:

- the purpose keeps a journal or enrollment seal from passing as an enforcement one;
- the user and key id keep a value copied from another key's tag (or another user's)
  from verifying here: its marks would otherwise move a deadline that was never announced;
- the marks are the whole record, so no mark can be added, dropped or re-dated.

A value without `:` is one keyturn wrote before it sealed these tags, or anyone's; it is
rejected like a forged one (the owner gets one more notice). An authenticator that cannot
answer (KMS denied or unreachable) raises: an outage must stop the run, not read as "every
tag forged", which would restart every key's notice cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyturn.domain.enforcement import KeyRecord, SealedState
from keyturn.domain.trust import ENFORCE_PURPOSE, Rejected, message

if TYPE_CHECKING:
    from keyturn.ports import Authenticator

SEPARATOR = ":"


class StateSeals:
    """Writes and checks the sealed value of one key's state tag."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def value(self, user: str, key_id: str, record: KeyRecord) -> str:
        """The tag value keyturn writes for `record`: its marks, `:`, their seal."""
        marks = record.encode()
        seal = self._auth.seal(message(ENFORCE_PURPOSE, user, key_id, marks))
        return f"{marks}{SEPARATOR}{seal}"

    def open(self, user: str, key_id: str, value: str) -> SealedState | Rejected:
        """The marks, only when the seal verifies for exactly this user and key id."""
        marks, separator, seal = value.rpartition(SEPARATOR)
        if not separator or not seal:
            return Rejected(
                user,
                "its value carries no seal (not written by keyturn, or by a keyturn older"
                " than sealed enforcement state)",
            )
        if not self._auth.verify(message(ENFORCE_PURPOSE, user, key_id, marks), seal):
            return Rejected(
                user,
                f"its seal was not made by {self._auth.describe()} for this user and key"
                " (forged, copied from another tag, or sealed with another key)",
            )
        return SealedState(marks)
