"""The enforcement planner: users' keys + what keyturn recorded + now + settings -> a Plan.

Pure, like pip-tools' `diff()`: it reads nothing and changes nothing, so every boundary
(notify at 30 days, deactivate 7 days after the notice, a never-notified key whose deadline
moves, reminders, deletion, exemptions, the fallback contact) is a unit test, and a dry run
is simply this plan printed. `keyturn.services.enforce` applies it one idempotent step at a
time.

Where the state lives
---------------------
A scheduled Lambda keeps nothing between runs, so "notify once, not daily" must be recorded
somewhere it can read: a tag on the key's IAM user, one per key::

    keyturn:enforce:<ACCESS KEY ID> = notified@2026-10-01 reminded@2026-10-04 deactivated@2026-10-08

The value is a space-separated list of `mark@YYYY-MM-DD` (UTC dates), each mark at most once:

- `notified`: the first warning was accepted by SES; the deadline is this date + grace.
- `reminded`: the latest reminder was accepted by SES.
- `deactivated`: keyturn set the key Inactive (deletion counts from here).
- `inactive`: keyturn first saw the key Inactive without having deactivated it.
- `told-deactivated`: the notice saying the key was deactivated was accepted by SES.
- `deleted`: keyturn deleted the key; the tag stays only until the owner has been told.

Tag keys are at most 16 + 20 characters for AWS's 20-character key ids (limit 128); values
use only letters, digits, `-`, `@` and spaces (allowed by IAM) and are at most 6 x 28
characters (limit 256). A notice mark is written only after SES accepted the mail, so a crash
between the two sends that notice once more on the next run: a duplicate e-mail is the
price of never deactivating a key whose owner was not told. A mark dated before the key
became due (say the thresholds changed, or an unused key was used again) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from keyturn.domain.model import AccessKey
from keyturn.domain.policy import PolicySettings, age_in_days, exemption

STATE_TAG_PREFIX = "keyturn:enforce:"
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
CONTACT_SEPARATORS = re.compile(r"[\s,;]+")
BOOLEAN_WORDS = frozenset({"true", "false"})


class Mark(StrEnum):
    """One fact recorded in a key's state tag, in the order they happen."""

    NOTIFIED = "notified"
    REMINDED = "reminded"
    DEACTIVATED = "deactivated"
    INACTIVE = "inactive"
    TOLD_DEACTIVATED = "told-deactivated"
    DELETED = "deleted"


class MalformedRecordError(ValueError):
    """A state tag's value is not what keyturn writes."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What keyturn recorded about one key (see the module docstring for the format)."""

    notified: date | None = None
    reminded: date | None = None
    deactivated: date | None = None
    inactive: date | None = None
    told_deactivated: date | None = None
    deleted: date | None = None

    def marked(self, mark: Mark, on: date) -> KeyRecord:
        return replace(self, **{_attribute(mark): on})

    def get(self, mark: Mark) -> date | None:
        value: date | None = getattr(self, _attribute(mark))
        return value

    @property
    def empty(self) -> bool:
        return all(getattr(self, item.name) is None for item in fields(self))

    def encode(self) -> str:
        return " ".join(
            f"{mark.value}@{when.isoformat()}"
            for mark in Mark
            if (when := self.get(mark)) is not None
        )

    @classmethod
    def decode(cls, value: str) -> KeyRecord:
        record = cls()
        seen: set[Mark] = set()
        for token in value.split():
            name, at, when = token.partition("@")
            try:
                mark = Mark(name)
                on = date.fromisoformat(when)
            except ValueError:
                raise MalformedRecordError(f"{token!r} is not mark@YYYY-MM-DD") from None
            if not at or mark in seen:
                raise MalformedRecordError(f"{token!r} is repeated or incomplete")
            seen.add(mark)
            record = record.marked(mark, on)
        return record


def _attribute(mark: Mark) -> str:
    return mark.value.replace("-", "_")


def state_tag(key_id: str) -> str:
    return f"{STATE_TAG_PREFIX}{key_id}"


@dataclass(frozen=True, slots=True)
class EnforcementSettings:
    """Everything the planner needs besides the facts. Thresholds in whole days."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    never_used_after_days: int | None = None
    remind_every_days: int | None = None
    notify: bool = True
    deactivate_without_notice: bool = False
    contact_tag: str = "Contact"
    fallback_contact: str | None = None

    def problems(self) -> list[str]:
        """Thresholds that make no sense; checked before anything is read or written."""
        found = []
        policy = self.policy
        if policy.grace_days <= 0:
            found.append(
                f"policy.grace_days must be at least 1 day for enforce (got {policy.grace_days}):"
                " an owner needs time between the notice and the deactivation"
            )
        if policy.delete_after_days is not None and policy.delete_after_days <= 0:
            found.append(
                "policy.delete_after_days counts days after deactivation and must be at least"
                f" 1 (got {policy.delete_after_days}): a key cannot be deleted before it is"
                " deactivated"
            )
        remind = self.remind_every_days
        if remind is not None and remind >= policy.grace_days:
            found.append(
                f"enforce.remind_every_days ({remind}) must be shorter than policy.grace_days"
                f" ({policy.grace_days}), or no reminder would ever go out"
            )
        if self.fallback_contact is not None and not EMAIL.match(self.fallback_contact):
            found.append(
                f"notify.fallback_contact is not an e-mail address: {self.fallback_contact!r}"
            )
        if not self.contact_tag or len(self.contact_tag) > TAG_KEY_MAX:
            found.append("policy.contact_tag must be 1 to 128 characters")
        return found


@dataclass(frozen=True, slots=True)
class UserFacts:
    """One IAM user as the planner sees it: live key status, tags and exempt groups."""

    user: str
    tags: Mapping[str, str]
    keys: tuple[AccessKey, ...]
    groups: frozenset[str] = frozenset()


class Action(StrEnum):
    NOTIFY = "notify"  # first warning; the deadline starts
    REMIND = "remind"  # another warning before the deadline
    DEACTIVATE = "deactivate"  # UpdateAccessKey Inactive, then tell the owner
    DELETE = "delete"  # DeleteAccessKey, then tell the owner
    RESEND = "resend"  # a deactivated/deleted notice that SES did not accept last time
    RECORD = "record"  # remember when an inactive key was first seen (deletion counts from it)
    FORGET = "forget"  # remove the state tag of a key that no longer exists


class Notice(StrEnum):
    """What an e-mail tells the owner about one key."""

    WARNING = "warning"
    REMINDER = "reminder"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do to one key, with the notice that goes with it (if any)."""

    user: str
    key_id: str
    action: Action
    reason: str
    record: KeyRecord
    age_days: int | None = None
    notice: Notice | None = None
    deadline: date | None = None
    recipients: tuple[str, ...] = ()


class SkipReason(StrEnum):
    EXEMPT = "exempt"
    WAITING = "waiting"  # notified; the deadline has not come yet
    NO_CONTACT = "no-contact"
    NOTICES_OFF = "notices-off"


@dataclass(frozen=True, slots=True)
class Skip:
    user: str
    key_id: str
    why: SkipReason
    reason: str
    age_days: int | None = None
    deadline: date | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The diff between the policy and the account. Empty when nothing needs doing."""

    today: date
    steps: tuple[Step, ...] = ()
    skips: tuple[Skip, ...] = ()
    ok: int = 0
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps


def recipients_of(
    tags: Mapping[str, str], contact_tag: str, fallback: str | None
) -> tuple[tuple[str, ...], list[str]]:
    """Valid addresses from the contact tag (several allowed), else the fallback.

    IAM tag values cannot hold commas, so addresses are separated by spaces; commas and
    semicolons are accepted too. Invalid addresses come back as warnings, not errors: one
    typo must not stop the notice to the other addresses.
    """
    raw = tags.get(contact_tag, "")
    valid: list[str] = []
    invalid: list[str] = []
    for address in filter(None, CONTACT_SEPARATORS.split(raw)):
        (valid if EMAIL.match(address) else invalid).append(address)
    warnings = [f"{contact_tag} tag has an invalid address {address!r}" for address in invalid]
    if not valid and fallback:
        return (fallback,), warnings
    return tuple(dict.fromkeys(valid)), warnings


def plan(users: Iterable[UserFacts], now: datetime, settings: EnforcementSettings) -> Plan:
    """Decide, for every key of every user, what enforcement does today."""
    planner = _Planner(now, settings)
    for facts in users:
        planner.user(facts)
    return Plan(
        today=planner.today,
        steps=tuple(planner.steps),
        skips=tuple(planner.skips),
        ok=planner.ok,
        problems=tuple(planner.problems),
        warnings=tuple(planner.warnings),
    )


@dataclass(frozen=True, slots=True)
class _Due:
    since: datetime
    why: str


def due_rule(key: AccessKey, now: datetime, settings: EnforcementSettings) -> _Due | None:
    """The earliest rule an active key breaks at `now` (age, unused, never used), or None."""
    policy = settings.policy
    age = age_in_days(key.created, now)
    found = [
        _Due(
            key.created + timedelta(days=policy.notify_after_days),
            f"{age} days old (limit {policy.notify_after_days})",
        )
    ]
    if key.last_used is None:
        limit = settings.never_used_after_days or policy.unused_after_days
        if limit is not None:
            found.append(_Due(key.created + timedelta(days=limit), f"never used in {age} days"))
    elif policy.unused_after_days is not None:
        idle = age_in_days(key.last_used.date, now)
        found.append(
            _Due(
                key.last_used.date + timedelta(days=policy.unused_after_days),
                f"unused for {idle} days (limit {policy.unused_after_days})",
            )
        )
    broken = [due for due in found if due.since <= now]
    return min(broken, key=lambda due: due.since) if broken else None


class _Planner:
    def __init__(self, now: datetime, settings: EnforcementSettings) -> None:
        self.now = now
        self.today = now.date()
        self.settings = settings
        self.policy = settings.policy
        self.steps: list[Step] = []
        self.skips: list[Skip] = []
        self.ok = 0
        self.problems: list[str] = []
        self.warnings: list[str] = []

    # -- per user ---------------------------------------------------------------------

    def user(self, facts: UserFacts) -> None:
        records = self._records(facts)
        if records is None:
            return
        to, invalid = recipients_of(
            facts.tags, self.settings.contact_tag, self.settings.fallback_contact
        )
        self.warnings.extend(f"{facts.user}: {warning}" for warning in invalid)
        live = set()
        for key in facts.keys:
            if key.key_id is None:
                continue
            live.add(key.key_id)
            self._key(key, facts, records.get(key.key_id, KeyRecord()), to)
        for key_id, record in sorted(records.items()):
            if key_id not in live:
                self._gone(facts.user, key_id, record, to)

    def _records(self, facts: UserFacts) -> dict[str, KeyRecord] | None:
        """Parse the user's state tags; a malformed one is a problem that stops the run."""
        records: dict[str, KeyRecord] = {}
        bad = False
        for tag, value in facts.tags.items():
            if not tag.startswith(STATE_TAG_PREFIX):
                continue
            key_id = tag[len(STATE_TAG_PREFIX) :]
            try:
                records[key_id] = KeyRecord.decode(value)
            except MalformedRecordError as exc:
                self.problems.append(
                    f"user {facts.user}: tag {tag} has a malformed value {value!r} ({exc});"
                    " fix it (e.g. 'notified@2026-01-31') or remove it"
                )
                bad = True
        for tag, wanted in self.policy.exempt_tags.items():
            found = facts.tags.get(tag)
            if (
                found is not None
                and wanted.lower() in BOOLEAN_WORDS
                and found.lower() not in BOOLEAN_WORDS
            ):
                self.problems.append(
                    f"user {facts.user}: exemption tag {tag} should be true or false, got {value!r}"
                )
                bad = True
        return None if bad else records

    # -- per key ----------------------------------------------------------------------

    def _key(
        self, key: AccessKey, facts: UserFacts, record: KeyRecord, to: tuple[str, ...]
    ) -> None:
        assert key.key_id is not None
        key = replace(key, user_tags=facts.tags, user_groups=facts.groups)
        age = age_in_days(key.created, self.now)
        exempt = exemption(key, self.policy)
        if exempt is not None:
            self._skip(key, SkipReason.EXEMPT, exempt, age)
            return
        if key.active:
            self._active(key, record, to, age)
        else:
            self._inactive(key, record, to, age)

    def _active(self, key: AccessKey, record: KeyRecord, to: tuple[str, ...], age: int) -> None:
        due = due_rule(key, self.now, self.settings)
        if due is None:
            self.ok += 1
            return
        grace = timedelta(days=self.policy.grace_days)
        notified = record.notified
        if notified is not None and notified < due.since.date():
            notified = None  # a mark from before this key became due: not a warning for it
        if notified is None:
            overdue = self.today >= due.since.date() + grace
            if overdue and self.settings.deactivate_without_notice:
                self._deactivate(key, record, to, age, f"{due.why}; deactivating without notice")
                return
            if not self.settings.notify:
                self._skip(
                    key,
                    SkipReason.NOTICES_OFF,
                    f"{due.why}; notices are off, so not deactivated",
                    age,
                )
                return
            deadline = self.today + grace
            why = due.why
            if overdue:
                why += (
                    f"; past its deadline but never notified, so deactivation moves to {deadline}"
                )
            self._notice_step(key, record, to, age, Action.NOTIFY, Notice.WARNING, why, deadline)
            return
        deadline = notified + grace
        if self.today >= deadline:
            self._deactivate(key, record, to, age, f"{due.why}; notified on {notified}")
            return
        every = self.settings.remind_every_days
        last = record.reminded or notified
        if every is not None and self.settings.notify and (self.today - last).days >= every:
            why = f"{due.why}; notified on {notified}, last told on {last}"
            self._notice_step(key, record, to, age, Action.REMIND, Notice.REMINDER, why, deadline)
            return
        self._skip(
            key, SkipReason.WAITING, f"{due.why}; notified on {notified}", age, deadline=deadline
        )

    def _deactivate(
        self, key: AccessKey, record: KeyRecord, to: tuple[str, ...], age: int, why: str
    ) -> None:
        assert key.key_id is not None
        self.steps.append(
            Step(
                user=key.user,
                key_id=key.key_id,
                action=Action.DEACTIVATE,
                reason=why,
                record=record,
                age_days=age,
                notice=Notice.DEACTIVATED if self.settings.notify and to else None,
                deadline=self._delete_date(self.today),
                recipients=to if self.settings.notify else (),
            )
        )

    def _inactive(self, key: AccessKey, record: KeyRecord, to: tuple[str, ...], age: int) -> None:
        assert key.key_id is not None
        delete_after = self.policy.delete_after_days
        since = record.deactivated or record.inactive
        if delete_after is not None and since is not None:
            deadline = since + timedelta(days=delete_after)
            if self.today >= deadline:
                self.steps.append(
                    Step(
                        user=key.user,
                        key_id=key.key_id,
                        action=Action.DELETE,
                        reason=f"inactive since {since} (delete after {delete_after} days)",
                        record=record,
                        age_days=age,
                        notice=Notice.DELETED if self.settings.notify and to else None,
                        recipients=to if self.settings.notify else (),
                    )
                )
                return
        deactivated = record.deactivated
        if (
            deactivated is not None
            and record.told_deactivated is None
            and self.settings.notify
            and to
        ):
            self.steps.append(
                Step(
                    user=key.user,
                    key_id=key.key_id,
                    action=Action.RESEND,
                    reason=f"deactivated on {deactivated}; the notice is still owed",
                    record=record,
                    age_days=age,
                    notice=Notice.DEACTIVATED,
                    deadline=self._delete_date(deactivated),
                    recipients=to,
                )
            )
            return
        if delete_after is not None and since is None:
            self.steps.append(
                Step(
                    user=key.user,
                    key_id=key.key_id,
                    action=Action.RECORD,
                    reason=f"inactive; deletion counts {delete_after} days from today",
                    record=record,
                    age_days=age,
                    deadline=self._delete_date(self.today),
                )
            )
            return
        self.ok += 1

    def _gone(self, user: str, key_id: str, record: KeyRecord, to: tuple[str, ...]) -> None:
        """A state tag naming a key that no longer exists."""
        if record.deleted is not None and self.settings.notify and to:
            self.steps.append(
                Step(
                    user=user,
                    key_id=key_id,
                    action=Action.RESEND,
                    reason=f"deleted on {record.deleted}; the notice is still owed",
                    record=record,
                    notice=Notice.DELETED,
                    recipients=to,
                )
            )
            return
        self.steps.append(
            Step(
                user=user,
                key_id=key_id,
                action=Action.FORGET,
                reason="the key no longer exists; its state tag is removed",
                record=record,
            )
        )

    # -- helpers ----------------------------------------------------------------------

    def _notice_step(
        self,
        key: AccessKey,
        record: KeyRecord,
        to: tuple[str, ...],
        age: int,
        action: Action,
        notice: Notice,
        why: str,
        deadline: date,
    ) -> None:
        assert key.key_id is not None
        if not to:
            self._skip(
                key,
                SkipReason.NO_CONTACT,
                f"{why}; no {self.settings.contact_tag} tag and no fallback contact, so the"
                " owner cannot be warned and the key is not deactivated",
                age,
            )
            return
        self.steps.append(
            Step(
                user=key.user,
                key_id=key.key_id,
                action=action,
                reason=why,
                record=record,
                age_days=age,
                notice=notice,
                deadline=deadline,
                recipients=to,
            )
        )

    def _skip(
        self,
        key: AccessKey,
        why: SkipReason,
        reason: str,
        age: int,
        *,
        deadline: date | None = None,
    ) -> None:
        assert key.key_id is not None
        self.skips.append(Skip(key.user, key.key_id, why, reason, age, deadline))

    def _delete_date(self, since: date) -> date | None:
        after = self.policy.delete_after_days
        return None if after is None else since + timedelta(days=after)


def needs_a_look(keys: Iterable[AccessKey], now: datetime, settings: EnforcementSettings) -> bool:
    """Whether a user's tags and live keys must be read at all (from report rows alone).

    A user whose keys are all active and not yet due cannot need any step (state recorded
    before a key became due is ignored), so enforcement skips their per-user IAM calls.
    """
    for key in keys:
        if not key.active:
            return True
        if due_rule(key, now, settings) is not None:
            return True
    return False
