"""Exposed-key response: the pure decisions (no I/O, the clock passed in).

When AWS finds an access key in public code it emits the AWS Health event
`AWS_RISK_CREDENTIALS_EXPOSED`; keyturn answers it (keyturn.services.quarantine) in a fixed
order, each step recorded before the next:

    opened -> deactivated -> rotated (or why not) -> activity -> notified -> recorded
    [-> deleted, only when an operator asks with `quarantine --delete`]

Why this order: deactivating stops the key at once and keeps it as evidence (a deleted key
cannot be looked up, and CloudTrail's "what did it do" is keyed on it); rotating then gives
the consumers a verified replacement in their store; only then is the story gathered, told
and written down. Deletion destroys evidence, so it never comes first and never on an
event's word.

Progress lives in a sealed IAM user tag, `keyturn:incident:<KEYID>` (value `IncidentMarks`
plus a seal, keyturn.domain.trust QUARANTINE_PURPOSE over account, user, key id and marks).
Why a tag and not the incident document: the document goes to a file or an S3 prefix whose
writers keyturn does not control, and it must resume without trusting that place; the tag
lives on the key's own user (where `rotate --rollback` looks for it), is atomic per write,
and its seal makes anyone else's copy a claim that is ignored. The tag is written *before*
the key is deactivated (write-ahead, as rotation's intent), so a key found inactive with no
sealed record was deactivated by someone else: reported, nothing changed.

Inputs and who can write them: the event (whoever may put events on the bus or invoke the
function: a claim that may only ask keyturn to contain a key of this account, never skip a
step); the key id on the command line (the operator); the incident tag (anyone with
iam:TagUser: believed only when sealed); the Contact tag (the user itself, often: validated
addresses only, capped); the store (its writers: read for which key it serves, a fact
checked against IAM by the rotation service).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from keyturn.domain.enforcement import EMAIL, shown
from keyturn.domain.errors import BadInputError
from keyturn.domain.trust import QUARANTINE_PURPOSE, message

INCIDENT_TAG_PREFIX = "keyturn:incident:"
VERSION = "v1"
# Long-term IAM user keys: AKIA and upper-case letters or digits (AWS issues 20 characters,
# the API allows 16 to 128). ASIA keys are temporary (STS) and cannot be deactivated.
USER_KEY_ID = re.compile(r"^AKIA[A-Z0-9]{12,124}$")
TEMPORARY_KEY_ID = re.compile(r"^ASIA[A-Z0-9]{12,124}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
# What AWS Health puts on the bus (EventBridge), and the only event this function answers.
SOURCE = "aws.health"
DETAIL_TYPE = "AWS Health Event"
SERVICE = "RISK"
EVENT_TYPE = "AWS_RISK_CREDENTIALS_EXPOSED"
# EventBridge's envelope: these top-level fields and no others.
ENVELOPE = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)
# Words an event might use to steer the response; the function offers none of them, so an
# event carrying one is refused whole rather than half-obeyed (cf. the rotate handler).
CONTROL_WORDS = frozenset(
    {"dry_run", "dryrun", "delete", "skip", "skip_rotation", "rotate", "notify", "users", "force"}
)
MAX_ENTITIES = 50  # one event names a handful of keys; more is not a Health event
# AWS reports the root user's key as owned by "root"; an IAM user may also be named so,
# which IAM then confirms (ListAccessKeys of that user holds the key).
ROOT_NAMES = frozenset({"root", "<root_account>"})


class Step(StrEnum):
    OPENED = "o"
    DEACTIVATED = "d"
    ROTATED = "r"
    ACTIVITY = "a"
    NOTIFIED = "n"
    RECORDED = "w"
    DELETED = "x"


STEP_NAMES = {
    Step.OPENED: "incident opened (sealed record written before any change)",
    Step.DEACTIVATED: "key deactivated",
    Step.ROTATED: "consumers' store",
    Step.ACTIVITY: "CloudTrail activity summarised",
    Step.NOTIFIED: "people told",
    Step.RECORDED: "incident record written",
    Step.DELETED: "key deleted",
}
ORDER = tuple(Step)

# Why a rotation did or did not happen: a word for the tag, a sentence for people.
ROTATION_WORDS = {
    "rotated": "rotated: the store serves a new, verified key",
    "not-enrolled": "not rotated: the user is not enrolled in keyturn's rotation",
    "untrusted": "not rotated: the user's enrollment record is not sealed by keyturn",
    "not-served": "not rotated: the store does not serve the exposed key",
    "failed": "rotation failed (see the warnings); the key stays contained",
}


def parse_key_id(text: object) -> str:
    """An IAM user access key id, or BadInputError naming what is wrong (value shortened)."""
    if not isinstance(text, str):
        raise BadInputError("an access key id must be a string")
    if USER_KEY_ID.fullmatch(text):
        return text
    if TEMPORARY_KEY_ID.fullmatch(text):
        raise BadInputError(
            f"{text} is a temporary (STS) key id: it cannot be deactivated; revoke the role's "
            "sessions instead (IAM console: Revoke active sessions)"
        )
    raise BadInputError(f"{shown(text)} is not an IAM access key id (AKIA...)")


@dataclass(frozen=True, slots=True)
class HealthRequest:
    """What an accepted event asks for: contain these keys of this account."""

    key_ids: tuple[str, ...]
    account: str
    event_arn: str | None
    rejected: tuple[str, ...] = ()  # one line per entity value that is not a key id


def parse_health_event(event: Any) -> HealthRequest:
    """The key ids an AWS Health AWS_RISK_CREDENTIALS_EXPOSED event names.

    Shape (AWS's documented sample, tests/fixtures/health_credentials_exposed.json):
    `source` aws.health, `detail-type` "AWS Health Event", `account`, and in `detail`:
    `service` RISK, `eventTypeCode` AWS_RISK_CREDENTIALS_EXPOSED, `eventArn`,
    `affectedEntities` [{`entityValue`: key id}]. Other detail fields (descriptions, times)
    are AWS's and read by nobody here. Anything else is refused with one line.
    """
    if not isinstance(event, dict):
        raise BadInputError("exposed-key event must be a JSON object")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise BadInputError(
            f"exposed-key event: expected source {SOURCE!r} and detail-type {DETAIL_TYPE!r},"
            f" got {shown(str(event.get('source')))} / {shown(str(event.get('detail-type')))}"
        )
    extra = sorted(str(k) for k in event if k not in ENVELOPE)
    if extra:
        raise BadInputError(
            f"exposed-key event: unknown top-level field(s) {', '.join(map(shown, extra[:5]))}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadInputError("exposed-key event: detail must be a JSON object")
    if detail.get("service") != SERVICE or detail.get("eventTypeCode") != EVENT_TYPE:
        raise BadInputError(
            f"exposed-key event: expected service {SERVICE} and eventTypeCode {EVENT_TYPE},"
            f" got {shown(str(detail.get('service')))} /"
            f" {shown(str(detail.get('eventTypeCode')))}: not answered"
        )
    steering = sorted(str(k) for k in detail if str(k).lower() in CONTROL_WORDS)
    if steering:
        raise BadInputError(
            f"exposed-key event: field(s) {', '.join(map(shown, steering))} would steer the "
            "response; an event can only name keys to contain: refused, nothing done"
        )
    account = event.get("account")
    if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
        raise BadInputError("exposed-key event: account must be a 12-digit AWS account id")
    affected = detail.get("affectedAccount", account)
    if affected != account:
        raise BadInputError(
            f"exposed-key event: affectedAccount {shown(str(affected))} is not the event's "
            f"account {account} (an Organization view event): not answered here"
        )
    entities = detail.get("affectedEntities")
    if not isinstance(entities, list) or not entities:
        raise BadInputError("exposed-key event: detail.affectedEntities must be a non-empty list")
    if len(entities) > MAX_ENTITIES:
        raise BadInputError(
            f"exposed-key event: {len(entities)} affected entities (at most {MAX_ENTITIES})"
        )
    keys: list[str] = []
    rejected: list[str] = []
    for entity in entities:
        value = entity.get("entityValue") if isinstance(entity, dict) else None
        try:
            keys.append(parse_key_id(value))
        except BadInputError as exc:
            rejected.append(str(exc))
    arn = detail.get("eventArn")
    return HealthRequest(
        key_ids=tuple(dict.fromkeys(keys)),
        account=account,
        event_arn=arn if isinstance(arn, str) and arn.startswith("arn:") else None,
        rejected=tuple(rejected),
    )


# -- progress marks (the sealed tag) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentMarks:
    """When each step was done (UTC), and what the rotation step decided. No secret."""

    done: Mapping[Step, datetime] = field(default_factory=dict)
    rotation: str | None = None  # a ROTATION_WORDS key
    new_key_id: str | None = None

    def has(self, step: Step) -> bool:
        return step in self.done

    def at(self, step: Step) -> datetime | None:
        return self.done.get(step)

    def mark(self, step: Step, when: datetime, **changes: Any) -> IncidentMarks:
        done = dict(self.done)
        done.setdefault(step, when)
        return replace(self, done=done, **changes)

    def encode(self) -> str:
        """`v1 o=EPOCH d=EPOCH ... rot=WORD k=KEYID`: IAM tag-safe (letters, digits, space,
        `=`), at most ~140 characters, so the seal fits in the 256 a tag value allows."""
        parts = [VERSION]
        parts += [f"{step.value}={int(self.done[step].timestamp())}" for step in ORDER
                  if step in self.done]  # fmt: skip
        if self.rotation:
            parts.append(f"rot={self.rotation}")
        if self.new_key_id:
            parts.append(f"k={self.new_key_id}")
        return " ".join(parts)

    @classmethod
    def decode(cls, text: str) -> IncidentMarks:
        parts = text.split(" ")
        if not parts or parts[0] != VERSION:
            raise ValueError("not a v1 incident record")
        done: dict[Step, datetime] = {}
        rotation = new_key = None
        for part in parts[1:]:
            name, _, value = part.partition("=")
            if name == "rot" and value in ROTATION_WORDS:
                rotation = value
            elif name == "k" and USER_KEY_ID.fullmatch(value):
                new_key = value
            else:
                step = Step(name)  # ValueError for anything else
                done[step] = datetime.fromtimestamp(int(value), tz=UTC)
        return cls(done=done, rotation=rotation, new_key_id=new_key)


def incident_tag(key_id: str) -> str:
    return INCIDENT_TAG_PREFIX + key_id


def sealed_message(account: str, user: str, key_id: str, marks: str) -> bytes:
    """What the seal covers: the record is believed only for this account, user and key."""
    return message(QUARANTINE_PURPOSE, user, account, key_id, marks)


# -- decisions -----------------------------------------------------------------------------


def rotation_choice(enrolled: bool | None, served: str | None, key_id: str) -> str:
    """Whether to rotate the user, as a ROTATION_WORDS key (or "rotate").

    `enrolled`: True for a sealed enrollment, False for none, None for a record keyturn did
    not seal (never trusted). Rotate only when the store serves the exposed key: then its
    consumers are broken by the deactivation and need the replacement. When it serves
    another key (the exposed one is a second key, or the old key of a finished rotation)
    they are unaffected, and a rotation would retire the key they use for nothing.
    """
    if enrolled is None:
        return "untrusted"
    if not enrolled:
        return "not-enrolled"
    if served != key_id:
        return "not-served"
    return "rotate"


def recipients(
    tags: Mapping[str, str], contact_tag: str, security: str | None, cap: int
) -> tuple[tuple[str, ...], int]:
    """Who is told: at most `cap` plain addresses from the owner's Contact tag (a claim:
    validated as enforce does), and the security contact from config. Returns the
    addresses and how many tag entries were left out (never their text)."""
    from keyturn.domain.enforcement import recipients_of

    owner, problems = recipients_of(tags, contact_tag, None, cap)
    found = dict.fromkeys(a.lower() for a in owner)
    if security and EMAIL.match(security):
        found.setdefault(security.lower())
    return tuple(found), len(problems)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing keyturn did (or found already done), with its time, for the record."""

    step: str
    at: datetime
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"step": self.step, "at": self.at.isoformat(), "detail": self.detail}


def actions_of(marks: IncidentMarks, key_id: str) -> list[Action]:
    """The record's action list, rebuilt from the sealed marks (so a resumed run lists the
    first run's steps with their original times)."""
    found: list[Action] = []
    for step in ORDER:
        when = marks.at(step)
        if when is None:
            continue
        detail = STEP_NAMES[step]
        if step is Step.DEACTIVATED:
            detail = f"{key_id} set Inactive (kept as evidence, not deleted)"
        elif step is Step.ROTATED and marks.rotation:
            detail = ROTATION_WORDS[marks.rotation]
            if marks.new_key_id:
                detail += f" ({marks.new_key_id})"
        found.append(Action(step.name.lower(), when, detail))
    return found
