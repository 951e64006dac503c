"""What keyturn may believe: the line between claims and state only keyturn can have written.

keyturn keeps its rotation journal, its enrollment records and its enforcement state as IAM
user tags, because a tag needs no infrastructure and is shared by the CLI and the Lambda.
But anyone with `iam:TagUser` on a user (often the user itself) can write those tags too,
so a tag's text is a *claim*. Before this module a forged journal entry could make the
scheduled run delete a good key as an "orphan" or deactivate the key the store serves, and
a back-dated enforcement mark could cut a key's warning short (issue 12).

So every record keyturn will act on is *sealed*: an HMAC-SHA-256 over a canonical message
that names what the record is about (its kind, the user, the fields), made with a key that
only keyturn's operators and roles may use. Two such keys exist (keyturn.adapters.mac_*):

- an AWS KMS HMAC key (`kms:GenerateMac` / `kms:VerifyMac`): the deployment's choice, shared
  by the Lambdas and the operators' CLI, usable only by the principals its key policy names;
- a local 256-bit key in a 0600 file in keyturn's state directory: the zero-infrastructure
  default of the CLI. A tag-writer in the account cannot read an operator's disk, so the
  protection is the same; records sealed on one machine are claims on another (and in the
  Lambda), which fails safe: nothing destructive happens on their word.

A record whose seal does not verify is a `Rejected`: the journal hands it back as such, the
service reports it once (event + summary line) and decides as if there were no record. The
types make the shortcut impossible: `derive` and the retirement steps take a
`RotationRecord`, which the journal only returns for a verified seal. Enforcement's state
tags follow the same rule: the planner reads a key's marks only from a `SealedState`, which
the enforce service makes only for a value whose seal verified for that user and key id.

Why HMAC and not a signature: only keyturn both writes and reads these records, so a shared
secret is enough, and an HMAC over ~200 bytes fits in an IAM tag value (256 characters)
where an ECDSA signature in base64 would leave little room for the record.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

# The text that a seal covers starts with its purpose, so a seal made for one kind of
# record (a journal entry) can never be presented as another (an enrollment).
JOURNAL_PURPOSE = "keyturn-journal"
ENROLLMENT_PURPOSE = "keyturn-enrollment"
# Enforcement state tags (`keyturn:enforce:<KEYID>`, keyturn.domain.enforcement): sealed
# over the user, the key id and the marks, so a value is believed only on the key it was
# written for.
ENFORCE_PURPOSE = "keyturn-enforce"
# Incident state tags (`keyturn:incident:<KEYID>`, keyturn.domain.quarantine): sealed over
# the account, the user, the key id and the progress marks. Read by the quarantine service
# to resume, and by `rotate --rollback`, which never reactivates a key sealed as exposed.
QUARANTINE_PURPOSE = "keyturn-quarantine"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record keyturn found but will not act on, and why (for one report line)."""

    user: str
    reason: str

    def line(self) -> str:
        reason = self.reason.removeprefix(f"{self.user}: ")  # parse errors name the user too
        return f"{self.user}: ignored keyturn state that keyturn did not write ({reason})"


def message(purpose: str, user: str, *fields: str) -> bytes:
    """The canonical bytes a seal covers: purpose, user and fields, unambiguously joined.

    Fields are length-prefixed, so no choice of field values (a user name may contain any
    of `+=,.@-`) can make two different records produce the same message.
    """
    parts = [purpose, user, *fields]
    return b"".join(f"{len(part.encode())}:".encode() + part.encode() for part in parts)


def encode_tag(raw: bytes) -> str:
    """A MAC as IAM tag-safe text: unpadded base64url (IAM allows `-` and `_`)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_tag(text: str) -> bytes | None:
    """The MAC bytes of `encode_tag`'s text, or None when it is not such text."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
