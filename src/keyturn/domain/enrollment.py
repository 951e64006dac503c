"""Enrollment: an operator's statement that a user's consumers read the store.

Only then may the schedule rotate the user (DESIGN "Rotation"): rotating a user whose
applications hold the key in their own config would hand the new key to a store nobody
reads and retire the key they use. Whether consumers read the store is a fact keyturn is
told once, by an operator, so the record is sealed (keyturn.domain.trust) and bound to the
user, the store kind and the store location: a copied, forged or stale record (the store
or its path changed since) enrolls nobody.

Tag value (fits an IAM tag, no secret): `v1:STORE:EPOCH:SEAL`; the location is not in the
text (it can be long) but is covered by the seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from keyturn.domain.errors import BadInputError
from keyturn.domain.trust import ENROLLMENT_PURPOSE, message

ENROLL_TAG = "keyturn:enrolled"
VERSION = "v1"
STORES = frozenset({"vault", "secretsmanager"})


@dataclass(frozen=True, slots=True)
class Enrollment:
    user: str
    store: str
    location: str
    enrolled_at: datetime


def payload(enrollment: Enrollment) -> str:
    return f"{VERSION}:{enrollment.store}:{int(enrollment.enrolled_at.timestamp())}"


def sealed_text(enrollment: Enrollment, account: str) -> bytes:
    """What the seal covers: the account, the payload, and the location consumers were
    pointed at."""
    return message(
        ENROLLMENT_PURPOSE, enrollment.user, account, enrollment.location, payload(enrollment)
    )


def parse(user: str, text: str, location: str) -> Enrollment:
    """The enrollment a payload claims for `user` at `location`; BadInputError if unreadable."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != VERSION or parts[1] not in STORES:
        raise BadInputError(f"{user}: unreadable enrollment record {text[:60]!r}")
    try:
        when = datetime.fromtimestamp(int(parts[2]), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise BadInputError(f"{user}: unreadable enrollment record {text[:60]!r}") from None
    return Enrollment(user=user, store=parts[1], location=location, enrolled_at=when)
