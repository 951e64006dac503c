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

    keyturn:enforce:<ACCESS KEY ID> = notified@2026-10-01 reminded@2026-10-04:<SEAL>

The value is a space-separated list of `mark@YYYY-MM-DD` (UTC dates), each mark at most
once, then `:` and keyturn's seal over it (see "These tags are claims" below):

- `notified`: the first warning was accepted by SES; the deadline is this date + grace.
- `reminded`: the latest reminder was accepted by SES.
- `deactivated`: keyturn set the key Inactive (deletion counts from here).
- `inactive`: keyturn first saw the key Inactive without having deactivated it.
- `told-deactivated`: the notice saying the key was deactivated was accepted by SES.
- `deleted`: keyturn deleted the key; the tag stays only until the owner has been told.

Tag keys are at most 16 + 20 characters for AWS's 20-character key ids (limit 128); values
use only letters, digits, `-`, `_`, `@`, `:` and spaces (allowed by IAM) and are at most
6 x 28 characters of marks plus 1 + 43 of seal (limit 256). A notice mark is written only
after SES accepted the mail, so a crash between the two sends that notice once more on the
next run: a duplicate e-mail is the price of never deactivating a key whose owner was not
told. A mark dated before the key
became due (say the thresholds changed, or an unused key was used again) is ignored.

These tags are claims, not commands
-----------------------------------
Anyone with `iam:TagUser` on a user (often the user itself) can write them, so the planner
believes a state tag only as far as facts and seals allow (`_Planner._trusted_records`):

- the tag key must carry an access key id (`AKIA...`/`ASIA...`) that is one of *that* user's
  current keys (ListAccessKeys). Anything else under the prefix is ignored, reported
  (`Flag`), never echoed into mail and never acted on; a well-formed id of a key that no
  longer exists is keyturn's own leftover (rotation deleted the key) and is removed.
- the value must carry keyturn's seal (keyturn.domain.trust): every value keyturn writes is
  `<marks>:<seal>`, the seal an HMAC over (ENFORCE_PURPOSE, user, key id, marks) made with
  the key only keyturn's roles and operators may use. The service checks it before the
  planner sees anything (keyturn.services.enforce_seal) and hands over a `SealedState` only
  for a seal that verified; the planner reads marks from nothing else, so a value without
  a seal (forged, copied from another key or user, or written by a keyturn older than the
  seal) counts as no state: reported once, and the key's notice cycle restarts.
- every date must lie between the key's creation and today (both widened by `CLOCK_SKEW`);
  `deactivated`/`inactive` of an inactive key may not precede its last recorded use. A
  value that is malformed or implausible is ignored as a whole, as an unsealed one is.
  Sealed values are checked too (defence in depth: a wrong clock, a leaked key).
- a bad tag on one user flags that user (one line, one audit event); it never stops the run.

So a back-dated `notified@` can no longer cut the warning short: without keyturn's key it
carries no valid seal, and a valid seal from another key's or user's tag does not verify
for this one. Ignoring a value always errs towards the owner (one more notice, a later
deadline), never towards an earlier deactivation or deletion.

Recipients are the owner's own claim too: at most `max_recipients` plain addresses from
the contact tag are mailed, and a mail's text holds only keyturn's own words, validated
key ids, the user name IAM reports and dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from keyturn.domain.model import AccessKey
from keyturn.domain.policy import PolicySettings, age_in_days, exemption
from keyturn.domain.trust import Rejected

STATE_TAG_PREFIX = "keyturn:enforce:"
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
# A plain address: dot-separated atoms of letters, digits, `_ + -` before the @, a domain of
# letter/digit/hyphen labels and an alphabetic top-level label. No quotes, comments, `%`
# routing, `/`, `:` or `=` (all of which IAM tag values may carry), at most 254 characters.
EMAIL = re.compile(
    r"^(?=.{6,254}$)[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
CONTACT_SEPARATORS = re.compile(r"[\s,;]+")
BOOLEAN_WORDS = frozenset({"true", "false"})
# IAM access key ids: AKIA (long-term) or ASIA (temporary) and upper-case letters or digits;
# the API allows 16 to 128 characters, AWS issues 20.
ACCESS_KEY_ID = re.compile(r"^A[KS]IA[A-Z0-9]{12,124}$")
# How far a recorded date may lie beyond today or before the key's creation: another
# keyturn (a laptop, a Lambda) writes the date from its own clock.
CLOCK_SKEW = timedelta(hours=1)
DEFAULT_MAX_RECIPIENTS = 2
STALE_LOOKBACK_DAYS = 7  # users with a key this young are read: a rotation may have left a tag
SHOWN_TEXT = 60  # at most this much of a hostile tag key or value is shown to the operator


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
    max_recipients: int = DEFAULT_MAX_RECIPIENTS

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
        if not 1 <= self.max_recipients <= 50:
            found.append(
                f"enforce.max_recipients must be 1 to 50 (got {self.max_recipients}): the"
                " addresses a key's notice goes to"
            )
        return found


@dataclass(frozen=True, slots=True)
class SealedState:
    """A state tag's marks whose seal verified for this user and this key id.

    The only form in which the planner accepts a key's state ("trust is a type", STYLE
    habit 12): the enforce service makes one only after `Authenticator.verify` said yes
    (keyturn.services.enforce_seal), so the tag text in `UserFacts.tags` is never read
    for marks.
    """

    marks: str


@dataclass(frozen=True, slots=True)
class UserFacts:
    """One IAM user as the planner sees it: live key status, tags and exempt groups.

    `states` holds, by key id, the outcome of checking the seal of each state tag that
    names one of the user's live keys: a `SealedState`, or a `Rejected` saying why not. A
    state tag with no entry there counts as unsealed.
    """

    user: str
    tags: Mapping[str, str]
    keys: tuple[AccessKey, ...]
    groups: frozenset[str] = frozenset()
    states: Mapping[str, SealedState | Rejected] = field(default_factory=dict)


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
    BAD_EXEMPTION = "bad-exemption"  # an exemption tag that is neither true nor false


# Skips that leave a key out of policy with nobody acting on it: named every run, and they
# make `enforce --check` fail. EXEMPT is an operator's choice; WAITING is on its way.
UNATTENDED = frozenset({SkipReason.NO_CONTACT, SkipReason.NOTICES_OFF, SkipReason.BAD_EXEMPTION})


@dataclass(frozen=True, slots=True)
class Skip:
    """A key enforcement does not act on today, why, and what happens to it next."""

    user: str
    key_id: str
    why: SkipReason
    reason: str
    age_days: int | None = None
    deadline: date | None = None
    next: str = ""

    @property
    def unattended(self) -> bool:
        return self.why in UNATTENDED


class FlagKind(StrEnum):
    """A tag keyturn did not believe, and what it did instead."""

    BAD_KEY_ID = "bad-key-id"  # a state tag whose key is no access key id: ignored, left alone
    UNSEALED = "unsealed-state"  # no seal of keyturn's for this user and key: ignored, restarts
    MALFORMED = "malformed-state"  # a value keyturn never writes: ignored, notice cycle restarts
    IMPLAUSIBLE = "implausible-state"  # a date in the future or before the key: ignored, restarts
    BAD_EXEMPTION = "bad-exemption"  # neither true nor false: the user's keys are skipped
    CONTACT = "contact"  # invalid addresses, or more than max_recipients: those are not mailed


@dataclass(frozen=True, slots=True)
class Flag:
    """One user's tag that keyturn ignored: one line for the operator, one audit event.

    `tag` is the (shortened) tag key as the operator must find it; it is never put in a
    mail.
    """

    user: str
    kind: FlagKind
    tag: str
    detail: str

    @property
    def line(self) -> str:
        return f"user {self.user}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Plan:
    """The diff between the policy and the account. Empty when nothing needs doing."""

    today: date
    steps: tuple[Step, ...] = ()
    skips: tuple[Skip, ...] = ()
    ok: int = 0
    flags: tuple[Flag, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(flag.line for flag in self.flags)

    @property
    def unattended(self) -> tuple[Skip, ...]:
        """Out-of-policy keys nobody acts on, oldest first."""
        found = [skip for skip in self.skips if skip.unattended]
        return tuple(sorted(found, key=lambda skip: -(skip.age_days or 0)))


def shown(text: str) -> str:
    """A hostile string as the operator may see it: quoted, shortened."""
    if len(text) > SHOWN_TEXT:
        text = text[: SHOWN_TEXT - 3] + "..."
    return repr(text)


def recipients_of(
    tags: Mapping[str, str],
    contact_tag: str,
    fallback: str | None,
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
) -> tuple[tuple[str, ...], list[str]]:
    """At most `max_recipients` plain addresses from the contact tag, else the fallback.

    IAM tag values cannot hold commas, so addresses are separated by spaces; commas and
    semicolons are accepted too. Invalid addresses come back as warnings, not errors: one
    typo must not stop the notice to the other addresses. The cap is what keeps the tag
    from turning keyturn's verified sender into a relay to a whole company.
    """
    raw = tags.get(contact_tag, "")
    valid: dict[str, str] = {}
    invalid: list[str] = []
    for address in filter(None, CONTACT_SEPARATORS.split(raw)):
        if EMAIL.match(address):
            valid.setdefault(address.lower(), address)
        else:
            invalid.append(address)
    warnings = [f"{contact_tag} tag has an invalid address {shown(address)}" for address in invalid]
    named = tuple(valid.values())
    if len(named) > max_recipients:
        warnings.append(
            f"{contact_tag} tag names {len(named)} addresses; only the first {max_recipients}"
            f" are mailed (enforce.max_recipients), not {' '.join(named[max_recipients:])}"
        )
        named = named[:max_recipients]
    if not named and fallback:
        return (fallback,), warnings
    return named, warnings


def plausibility(record: KeyRecord, key: AccessKey, now: datetime) -> str | None:
    """Why a record cannot be keyturn's for this key, or None when it can be.

    Every mark must fall between the key's creation and today (widened by CLOCK_SKEW). For
    an inactive key, `deactivated`/`inactive` (which start the deletion clock) may not
    precede the key's last recorded use: a key is not used while it is inactive.
    """
    latest = (now + CLOCK_SKEW).date()
    earliest = (key.created - CLOCK_SKEW).date()
    for mark in Mark:
        when = record.get(mark)
        if when is None:
            continue
        if when > latest:
            return f"{mark.value}@{when} is in the future"
        if when < earliest:
            return f"{mark.value}@{when} is before the key was created on {key.created.date()}"
    if not key.active and key.last_used is not None:
        used = key.last_used.date.date()
        for mark in (Mark.DEACTIVATED, Mark.INACTIVE):
            when = record.get(mark)
            if when is not None and when < used:
                return f"{mark.value}@{when} but the key was used on {used}"
    return None


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
        flags=tuple(planner.flags),
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
        self.flags: list[Flag] = []

    # -- per user ---------------------------------------------------------------------

    def user(self, facts: UserFacts) -> None:
        live = {key.key_id: key for key in facts.keys if key.key_id is not None}
        if self._bad_exemption(facts, live):
            return
        records, stale = self._trusted_records(facts, live)
        to, invalid = recipients_of(
            facts.tags,
            self.settings.contact_tag,
            self.settings.fallback_contact,
            self.settings.max_recipients,
        )
        for warning in invalid:
            self._flag(facts.user, FlagKind.CONTACT, self.settings.contact_tag, warning)
        for key in live.values():
            assert key.key_id is not None
            self._key(key, facts, records.get(key.key_id, KeyRecord()), to)
        for key_id in stale:
            self._forget(facts.user, key_id)

    def _bad_exemption(self, facts: UserFacts, live: Mapping[str, AccessKey]) -> bool:
        """An exemption tag that is neither true nor false: the user's keys are skipped.

        The owner meant *something*; acting on a key whose owner may have asked for an
        exemption is the harm here, so the keys are named as skipped every run, never hidden.
        """
        for tag, wanted in self.policy.exempt_tags.items():
            found = facts.tags.get(tag)
            if (
                found is None
                or wanted.lower() not in BOOLEAN_WORDS
                or found.lower() in BOOLEAN_WORDS
            ):
                continue
            why = f"exemption tag {tag} should be true or false, got {shown(found)}"
            self._flag(facts.user, FlagKind.BAD_EXEMPTION, tag, f"{why}; its keys are skipped")
            for key in live.values():
                self._skip(
                    key,
                    SkipReason.BAD_EXEMPTION,
                    why,
                    age_in_days(key.created, self.now),
                    next=f"not acted on until {tag} is true or false; fix or remove the tag",
                )
            return True
        return False

    def _trusted_records(
        self, facts: UserFacts, live: Mapping[str, AccessKey]
    ) -> tuple[dict[str, KeyRecord], list[str]]:
        """The state tags keyturn believes, by key id; and ids of keys that are gone.

        See "These tags are claims" in the module docstring: anything not believed is
        flagged and counts as no state.
        """
        records: dict[str, KeyRecord] = {}
        stale: list[str] = []
        for tag in sorted(facts.tags):
            if not tag.startswith(STATE_TAG_PREFIX):
                continue
            key_id = tag[len(STATE_TAG_PREFIX) :]
            if not ACCESS_KEY_ID.match(key_id):
                self._flag(
                    facts.user,
                    FlagKind.BAD_KEY_ID,
                    tag,
                    f"tag {shown(tag)} names no access key id; ignored (remove it)",
                )
                continue
            key = live.get(key_id)
            if key is None:
                stale.append(key_id)  # keyturn's leftover, or names another user's key
                continue
            sealed = facts.states.get(key_id)
            if not isinstance(sealed, SealedState):
                why = sealed.reason if sealed is not None else "its seal was not checked"
                self._flag(
                    facts.user,
                    FlagKind.UNSEALED,
                    tag,
                    f"tag {tag} is not keyturn's: {why}; ignored, so the key's notice cycle"
                    " starts again",
                )
                continue
            try:
                record = KeyRecord.decode(sealed.marks)
            except MalformedRecordError as exc:
                self._flag(
                    facts.user,
                    FlagKind.MALFORMED,
                    tag,
                    f"tag {tag} has a value keyturn never writes, {shown(sealed.marks)}"
                    f" ({exc}); ignored, so the key's notice cycle starts again",
                )
                continue
            doubt = plausibility(record, key, self.now)
            if doubt is not None:
                self._flag(
                    facts.user,
                    FlagKind.IMPLAUSIBLE,
                    tag,
                    f"tag {tag} cannot be keyturn's: {doubt}; ignored, so the key's notice"
                    " cycle starts again",
                )
                continue
            records[key_id] = record
        return records, stale

    def _flag(self, user: str, kind: FlagKind, tag: str, detail: str) -> None:
        self.flags.append(Flag(user, kind, shown(tag) if len(tag) > SHOWN_TEXT else tag, detail))

    # -- per key ----------------------------------------------------------------------

    def _key(
        self, key: AccessKey, facts: UserFacts, record: KeyRecord, to: tuple[str, ...]
    ) -> None:
        assert key.key_id is not None
        key = replace(key, user_tags=facts.tags, user_groups=facts.groups)
        age = age_in_days(key.created, self.now)
        exempt = exemption(key, self.policy)
        if exempt is not None:
            self._skip(key, SkipReason.EXEMPT, exempt, age, next="never acted on while exempt")
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
                    next="stays active: turn notices on, or set"
                    " enforce.deactivate_without_notice=true to deactivate on schedule",
                )
                return
            deadline = self.today + grace
            why = due.why
            if overdue:
                why += (
                    f"; past its deadline but never notified, so deactivation moves to {deadline}"
                )
            self._notice_step(
                key, record, to, age, Action.NOTIFY, Notice.WARNING, why, deadline, due
            )
            return
        deadline = notified + grace
        if self.today >= deadline:
            self._deactivate(key, record, to, age, f"{due.why}; notified on {notified}")
            return
        every = self.settings.remind_every_days
        last = record.reminded or notified
        if every is not None and self.settings.notify and (self.today - last).days >= every:
            why = f"{due.why}; notified on {notified}, last told on {last}"
            self._notice_step(
                key, record, to, age, Action.REMIND, Notice.REMINDER, why, deadline, due
            )
            return
        self._skip(
            key,
            SkipReason.WAITING,
            f"{due.why}; notified on {notified}",
            age,
            deadline=deadline,
            next=f"deactivated on {deadline} unless rotated",
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

    def _forget(self, user: str, key_id: str) -> None:
        """A state tag naming a key the user no longer has: removed, never mailed about.

        A deletion's notice is accepted by SES before the key is deleted (see
        services.enforce), so a `deleted@` mark on a gone key owes nothing; re-mailing on its
        word is what let a forged tag turn keyturn into a relay.
        """
        self.steps.append(
            Step(
                user=user,
                key_id=key_id,
                action=Action.FORGET,
                reason="the key no longer exists; its state tag is removed",
                record=KeyRecord(),
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
        due: _Due,
    ) -> None:
        assert key.key_id is not None
        if not to:
            tag = self.settings.contact_tag
            if self.settings.deactivate_without_notice:
                on = due.since.date() + timedelta(days=self.policy.grace_days)
                then = f"deactivated without notice on {on} (enforce.deactivate_without_notice)"
            else:
                then = (
                    f"stays active and is named every run until the user has a {tag} tag"
                    " or notify.fallback_contact is set (or set"
                    " enforce.deactivate_without_notice=true to deactivate it on schedule)"
                )
            self._skip(
                key,
                SkipReason.NO_CONTACT,
                f"{due.why}; no valid {tag} address and no fallback contact, so the owner"
                " cannot be warned",
                age,
                next=then,
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
        next: str = "",
    ) -> None:
        assert key.key_id is not None
        self.skips.append(Skip(key.user, key.key_id, why, reason, age, deadline, next))

    def _delete_date(self, since: date) -> date | None:
        after = self.policy.delete_after_days
        return None if after is None else since + timedelta(days=after)


def needs_a_look(
    keys: Iterable[AccessKey],
    now: datetime,
    settings: EnforcementSettings,
    *,
    recent: bool = True,
) -> bool:
    """Whether a user's tags and live keys must be read at all (from report rows alone).

    A user whose keys are all active and not yet due cannot need any step (state recorded
    before a key became due is ignored), so enforcement skips their per-user IAM calls;
    except a user with a key created in the last STALE_LOOKBACK_DAYS: a rotation (or an
    owner who rotated by hand) may just have deleted a key whose state tag must go (IAM
    allows 50 tags a user). Older leftovers go the next time one of the user's keys is due.
    `recent=False` asks only whether a key itself needs a step.
    """
    for key in keys:
        if not key.active:
            return True
        if due_rule(key, now, settings) is not None:
            return True
        if recent and key.created >= now - timedelta(days=STALE_LOOKBACK_DAYS):
            return True
    return False
