"""Enrollment: an operator's statement that a user's consumers read the store.

Only then may the schedule rotate the user (DESIGN "Rotation"): rotating a user whose
applications hold the key in their own config would hand the new key to a store nobody
reads and retire the key they use. Whether consumers read the store is a fact keyturn is
told once, by an operator, so the record is sealed (keyturn.domain.trust) and bound to the
user, the store kind, the store location and the account's *enrollment generation*: a
copied, forged or stale record (the store or its path changed since, or an unenroll
happened since) enrolls nobody.

Why a generation: a seal cannot be revoked. `keyturn unenroll` removes the tag, but anyone
with iam:TagUser who saved the genuine value could write it back, and its seal would still
verify. So each account has a generation, kept where only keyturn's sealers can write (a
tag on the KMS key, whose key policy decides who may tag it, or a file beside the local
key), and every record's seal covers the generation it was sealed at. Unenrolling raises
the generation and re-seals the records of the users still enrolled: every older record,
the unenrolled user's saved copy included, is then stale.

Tag value (fits an IAM tag, no secret): `v2:STORE:EPOCH:GENERATION:SEAL`; the location is
not in the text (it can be long) but is covered by the seal. A generation is `0` (no
unenroll yet) or `N.NONCE`: the random nonce makes two concurrent unenrolls that both
raise N to N+1 end at different generations, so neither can re-seal a record the other
just revoked (keyturn.services.enrollment). Records written before generations existed
(`v1:STORE:EPOCH:SEAL`) are read as generation 0: believed until the first unenroll, which
re-seals the valid ones as v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from keyturn.domain.errors import BadInputError
from keyturn.domain.trust import ENROLLMENT_PURPOSE, Rejected, message

ENROLL_TAG = "keyturn:enrolled"
VERSION = "v2"
LEGACY_VERSION = "v1"  # no generation in the seal: valid only at generation 0
STORES = frozenset({"vault", "secretsmanager"})
# The generation's own seal, so a value planted where keyturn keeps it is never believed.
GENERATION_PURPOSE = "keyturn-enrollment-generation"
NONCE_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Generation:
    """An account's enrollment generation: `number` orders them, `nonce` makes each raise
    unique (two raises from the same number are different generations)."""

    number: int
    nonce: str = ""

    @property
    def text(self) -> str:
        return "0" if self.number == 0 else f"{self.number}.{self.nonce}"

    def after(self, nonce: str) -> Generation:
        """The generation an unenroll raises this one to."""
        return Generation(self.number + 1, nonce)


INITIAL = Generation(0)


def parse_generation(text: str) -> Generation | None:
    """The generation `text` names, or None when it is not a generation keyturn writes."""
    if text == "0":
        return INITIAL
    number, dot, nonce = text.partition(".")
    if (
        not dot
        or not number.isascii()
        or not number.isdigit()
        or number.startswith("0")
        or len(number) > 18
        or not 4 <= len(nonce) <= 32
        or not set(nonce) <= NONCE_CHARS
    ):
        return None
    return Generation(int(number), nonce)


def generation_text(account: str, generation: Generation) -> bytes:
    """What a generation's seal covers: the account it counts unenrolls in, and itself."""
    return message(GENERATION_PURPOSE, account, generation.text)


@dataclass(frozen=True, slots=True)
class GenerationView:
    """What one read of an account's generation established.

    `current` is None when the stored value is not one keyturn sealed; `problem` (then, or
    when a record sealed at a later generation proves the generation was lowered) says why
    no enrollment of the account is believed; `ceiling` is the highest generation number
    seen genuinely sealed, which the next unenroll must go above."""

    current: Generation | None
    ceiling: int
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Enrollment:
    user: str
    store: str
    location: str
    enrolled_at: datetime
    generation: Generation = INITIAL


@dataclass(frozen=True, slots=True)
class StaleEnrollment(Rejected):
    """A genuine record sealed at another generation than the account's current one: an
    unenroll happened since (or the record is a saved copy put back). Not an attack on its
    face, so its line says what to do rather than "not written by keyturn"."""

    def line(self) -> str:
        return (
            f"{self.user}: ignored an enrollment sealed before the last unenroll "
            f"({self.reason}); re-run `keyturn enroll {self.user}` if it should be enrolled"
        )


def payload(enrollment: Enrollment) -> str:
    return (
        f"{VERSION}:{enrollment.store}:{int(enrollment.enrolled_at.timestamp())}"
        f":{enrollment.generation.text}"
    )


def sealed_text(enrollment: Enrollment, account: str) -> bytes:
    """What the seal covers: the account, the payload (with the generation), and the
    location consumers were pointed at."""
    return sealed_payload(enrollment.user, account, enrollment.location, payload(enrollment))


def sealed_payload(user: str, account: str, location: str, text: str) -> bytes:
    """What the seal of a record whose payload reads `text` covers (v1 or v2, as read)."""
    return message(ENROLLMENT_PURPOSE, user, account, location, text)


def parse(user: str, text: str, location: str) -> Enrollment:
    """The enrollment a payload claims for `user` at `location`; BadInputError if unreadable.

    A v1 payload claims generation 0. Only the canonical text of a v2 payload is accepted,
    so the text that was sealed and the record read from it cannot differ."""
    unreadable = BadInputError(f"{user}: unreadable enrollment record {text[:60]!r}")
    parts = text.split(":")
    if len(parts) == 3 and parts[0] == LEGACY_VERSION:
        generation: Generation | None = INITIAL
    elif len(parts) == 4 and parts[0] == VERSION:
        generation = parse_generation(parts[3])
    else:
        raise unreadable
    if generation is None or parts[1] not in STORES:
        raise unreadable
    try:
        when = datetime.fromtimestamp(int(parts[2]), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise unreadable from None
    found = Enrollment(user, parts[1], location, when, generation)
    if parts[0] == VERSION and payload(found) != text:
        raise unreadable
    return found


def staleness(user: str, sealed_at: Generation, current: Generation) -> Rejected | None:
    """Why a record genuinely sealed at `sealed_at` is not believed at `current`, or None.

    Older (or a sibling of the same number from a concurrent unenroll): stale, the user is
    not rotated. Newer: the current generation was *lowered*, which only a principal that
    may tag keyturn's key (or write its local state) can do; the record is refused and the
    caller treats the whole account's generation as suspect."""
    if sealed_at == current:
        return None
    if sealed_at.number < current.number:
        return StaleEnrollment(user, f"generation {sealed_at.number} < {current.number}")
    if sealed_at.number == current.number:
        return StaleEnrollment(
            user,
            f"generation {sealed_at.text}, replaced by {current.text} in a concurrent unenroll",
        )
    return Rejected(user, lowered(sealed_at, current))


def lowered(sealed_at: Generation, current: Generation) -> str:
    return (
        f"sealed at enrollment generation {sealed_at.number}, later than the current "
        f"{current.number}: the generation was lowered since, so no enrollment in this "
        "account is believed until an operator re-runs `keyturn unenroll` or checks who "
        "tagged the key"
    )
