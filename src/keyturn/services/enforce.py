"""Enforcement: read the account, plan (pure), then apply the plan one idempotent step at a time.

Reading costs a handful of calls for the credential report, one GetGroup per exempt group,
and ListUserTags + ListAccessKeys only for users with a key that is due or inactive: a
user whose keys are all young costs nothing more. Live key status from ListAccessKeys wins
over the report (which AWS regenerates at most every 4 hours), so a second run right after
the first sees the keys it deactivated.

Applying, in this order, so that nothing is claimed before it happened:

1. key acts (deactivate, delete), each after its state mark (write-ahead: a crash in
   between is redone by the next run, never forgotten);
2. one e-mail per address, listing all that address's keys;
3. for keys whose mail SES accepted: deletions that owed a notice, then notice marks.

A step that fails is reported and the run goes on with the others; the shell turns any
failure into exit 1 (CLI) or a raised error (Lambda). A tag keyturn does not believe (see
keyturn.domain.enforcement) is a `Flag` in the plan: one audit event and one summary line,
and the run goes on for everyone else.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from itertools import groupby, islice
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from keyturn.adapters.iam import IamDirectory
from keyturn.adapters.iam_keys import IamKeyWriter
from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.adapters.ses import NOT_REQUESTED, VERIFIED, SesMailer
from keyturn.config import Settings
from keyturn.domain.enforcement import (
    STATE_TAG_PREFIX,
    Action,
    EnforcementSettings,
    KeyRecord,
    Mark,
    Notice,
    Plan,
    SealedState,
    Skip,
    Step,
    UserFacts,
    needs_a_look,
    plan,
    state_tag,
)
from keyturn.domain.errors import ConfigError, KeyturnError
from keyturn.domain.model import ROOT_USER, AccessKey, KeyStatus
from keyturn.domain.trust import Rejected
from keyturn.notices import Mail, Templates
from keyturn.ports import Authenticator, Clock, EventSink, KeyWriter, Mailer, UserDirectory
from keyturn.services.audit import match_slots
from keyturn.services.enforce_seal import StateSeals

CHUNK_USERS = 256
Event = dict[str, Any]
_T = TypeVar("_T")
_R = TypeVar("_R")
RecipientVerification = Literal["auto", "always", "never"]

# The adapter methods enforcement calls; their @requires declarations are its IAM policy.
CALLS: tuple[Callable[..., Any], ...] = (
    IamDirectory.credential_report,
    IamDirectory.list_access_keys,
    IamDirectory.user_tags,
    IamDirectory.group_members,
    IamKeyWriter.set_status,
    IamKeyWriter.delete_key,
    IamKeyWriter.tag_user,
    IamKeyWriter.untag_user,
    SesMailer.send,
    SesMailer.verification_status,
    SesMailer.request_verification,
    SesMailer.send_quota,
)
# Sealing and checking state tags with the deployment's KMS key. Kept apart from CALLS,
# which is also the member-account role's policy: the key lives in the central account,
# and a fan-out run seals with the central role's own credentials (keyturn.wiring).
SEAL_CALLS: tuple[Callable[..., Any], ...] = (KmsAuthenticator.seal, KmsAuthenticator.verify)

NOTICE_MARK = {
    Notice.WARNING: Mark.NOTIFIED,
    Notice.REMINDER: Mark.REMINDED,
    Notice.DEACTIVATED: Mark.TOLD_DEACTIVATED,
}
DONE_COUNTER = {
    Notice.WARNING: "notified",
    Notice.REMINDER: "reminded",
    Notice.DEACTIVATED: "told_deactivated",
    Notice.DELETED: "told_deleted",
}
UNVERIFIED_RETRYABLE = frozenset({NOT_REQUESTED, "Failed", "TemporaryFailure"})
# apply()'s step boundaries, for crash tests (`checkpoint(step)` after each; a no-op except
# under KEYTURN_TEST_CRASH_AFTER, see keyturn.wiring). Crashing after "mail_sent" is the
# one window that sends a notice twice (see keyturn.domain.enforcement); crashing after a
# deletion, before its tag is removed, leaves a stale state tag on a user with no key left
# (harmless: it names a key id that no longer exists, and no notice is owed).
APPLY_STEPS = (
    "deactivate_recorded",
    "deactivated",
    "delete_recorded",
    "deleted",
    "deleted_untagged",
    "mail_sent",
    "deleted_after_notice",
    "notice_recorded",
)


def _no_checkpoint(step: str) -> None:
    return None


# SES takes one verification request a second; a run asks for at most this many by default
# (about half a minute of pacing), the rest on the next run.
DEFAULT_MAX_VERIFICATIONS = 30
# With a deadline (a Lambda's remaining time), pacing stops this long before it.
DEADLINE_RESERVE_SECONDS = 60.0


class RateLimiter:
    """Permits at least `interval` seconds apart, waiting for the next one within bounds.

    SES accepts one verification request a second. Seed 002 slept a second per request for
    as long as it took; the first version of this class never waited, so one owner was
    verified per run (three owners took five daily runs). Now a run waits its turn for up to
    `max_permits` permits, and never past `remaining() - DEADLINE_RESERVE_SECONDS` when a
    deadline is given (a Lambda passes its remaining time): a refused caller defers its
    request to the next run. `sleep=None` restores never-waiting.
    """

    def __init__(
        self,
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], None] | None = time.sleep,
        max_permits: int | None = DEFAULT_MAX_VERIFICATIONS,
        remaining: Callable[[], float] | None = None,
    ):
        self._interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._max = max_permits
        self._remaining = remaining
        self._last: float | None = None
        self.granted = 0
        self.refusal = ""

    def try_acquire(self) -> bool:
        if self._max is not None and self.granted >= self._max:
            self.refusal = f"this run's {self._max} requests are used up"
            return False
        now = self._monotonic()
        wait = 0.0 if self._last is None else self._last + self._interval - now
        if wait > 0:
            if self._sleep is None:
                self.refusal = "SES takes 1 request a second"
                return False
            if self._remaining is not None and self._remaining() - wait < DEADLINE_RESERVE_SECONDS:
                self.refusal = "the run's time is nearly up"
                return False
            self._sleep(wait)
            now = self._monotonic()
        self._last = now
        self.granted += 1
        return True


class ListSink:
    """Keeps events in memory (tests, and the CLI's summary)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))


@dataclass
class Outcome:
    """What an applied plan did; counts only, never a secret."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        self.counts.update(other.counts)
        self.failures.extend(other.failures)
        self.deferred.extend(other.deferred)

    def summary(self) -> dict[str, int]:
        keys = (
            "notified",
            "reminded",
            "deactivated",
            "deleted",
            "told_deactivated",
            "told_deleted",
            "recorded",
            "forgotten",
            "mails_sent",
            "notices_deferred",
            "verifications_requested",
            "verifications_postponed",
            "skipped",
            "unattended",
            "tags_ignored",
            "failed",
        )
        return {key: self.counts.get(key, 0) for key in keys}


@dataclass(frozen=True)
class MailOptions:
    source_email: str | None
    verify_sender: bool = True
    recipient_verification: RecipientVerification = "auto"
    max_verifications: int = DEFAULT_MAX_VERIFICATIONS


class EnforceService:
    def __init__(
        self,
        directory: UserDirectory,
        writer: KeyWriter,
        mailer: Mailer,
        clock: Clock,
        settings: EnforcementSettings,
        templates: Templates | None,
        mail: MailOptions,
        events: EventSink,
        *,
        authenticator: Authenticator,
        workers: int = 8,
        limiter: RateLimiter | None = None,
        checkpoint: Callable[[str], None] = _no_checkpoint,
        remaining_seconds: Callable[[], float] | None = None,
        send_rate: Callable[[float], object] | None = None,
    ) -> None:
        self._send_rate = send_rate
        self._iam = directory
        self._writer = writer
        self._mailer = mailer
        self._clock = clock
        self._settings = settings
        self._templates = templates
        self._mail = mail
        self._events = events
        self._seals = StateSeals(authenticator)
        self._workers = max(1, workers)
        self._limiter = limiter or RateLimiter(
            max_permits=mail.max_verifications, remaining=remaining_seconds
        )
        self._checkpoint = checkpoint
        self._buffer = threading.local()

    # -- reading and planning -----------------------------------------------------------

    def plan(self) -> Plan:
        """Read the account and compute the plan; tags not believed are flags in it."""
        now = self._clock.now()
        unread: list[int] = [0]
        result = plan(
            (facts for facts in self.inventory(now, unread) if facts is not None),
            now,
            self._settings,
        )
        return replace(result, ok=result.ok + unread[0])

    def inventory(
        self, now: datetime, unread: list[int] | None = None
    ) -> Iterator[UserFacts | None]:
        """Facts for every user that may need a step; `unread[0]` counts the other keys.

        A user read only for a young key (a possible leftover tag, see `needs_a_look`) that
        carries no state tag comes back as None, after one ListUserTags call.
        """
        counter = unread if unread is not None else [0]

        def wanted(keys: list[AccessKey]) -> bool:
            if keys[0].user != ROOT_USER and needs_a_look(keys, now, self._settings):
                return True
            counter[0] += len(keys)
            return False

        groups = {
            group: self._iam.group_members(group) for group in self._settings.policy.exempt_groups
        }
        rows = (list(keys) for _, keys in groupby(self._iam.credential_report(), _user_of))
        candidates = (keys for keys in rows if wanted(keys))

        def read(keys: list[AccessKey]) -> UserFacts | None:
            due = needs_a_look(keys, now, self._settings, recent=False)
            found = self._facts(keys, groups, due=due)
            if found is None:
                with lock:
                    counter[0] += len(keys)
            return found

        lock = threading.Lock()

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            for chunk in _chunks(candidates, CHUNK_USERS):
                yield from pool.map(read, chunk)

    def _facts(
        self, rows: list[AccessKey], groups: Mapping[str, frozenset[str]], *, due: bool = True
    ) -> UserFacts | None:
        user = rows[0].user
        tags = self._iam.user_tags(user)
        if not due and not any(tag.startswith(STATE_TAG_PREFIX) for tag in tags):
            return None
        live = self._iam.list_access_keys(user)
        slots = {key_id: slot for slot, key_id in match_slots(rows, live).items()}
        by_slot = {row.slot: row for row in rows}
        keys = []
        for number, meta in enumerate(live, start=1):
            row = by_slot.get(slots.get(meta.key_id, -1))
            keys.append(
                AccessKey(
                    account=rows[0].account,
                    user=user,
                    slot=row.slot if row else number,
                    status=meta.status,
                    created=meta.created,
                    last_used=row.last_used if row else None,
                    key_id=meta.key_id,
                )
            )
        member_of = frozenset(group for group, users in groups.items() if user in users)
        return UserFacts(
            user=user,
            tags=tags,
            keys=tuple(keys),
            groups=member_of,
            states=self._states(user, tags, {meta.key_id for meta in live}),
        )

    def _states(
        self, user: str, tags: Mapping[str, str], live: set[str]
    ) -> dict[str, SealedState | Rejected]:
        """The seal check of every state tag naming one of the user's live keys.

        Only these can steer a step; tags naming no live key are the planner's to flag or
        forget by their key alone, so they cost no seal check.
        """
        found: dict[str, SealedState | Rejected] = {}
        for tag, value in tags.items():
            key_id = tag[len(STATE_TAG_PREFIX) :]
            if tag.startswith(STATE_TAG_PREFIX) and key_id in live:
                found[key_id] = self._seals.open(user, key_id, value)
        return found

    # -- reporting a plan ---------------------------------------------------------------

    def report_plan(self, planned: Plan, *, dry_run: bool) -> None:
        """One event per planned step, skip and flagged tag (a dry run emits only these)."""
        for flag in planned.flags:
            self._emit(
                "tag",
                "ignored",
                user=flag.user,
                tag=flag.tag,
                kind=flag.kind.value,
                reason=flag.detail,
            )
        if dry_run:
            for step in planned.steps:
                self._emit_step(step, "planned", dry_run=True)
        for skip in planned.skips:
            self._emit_skip(skip, dry_run=dry_run)

    # -- applying -----------------------------------------------------------------------

    def apply(self, planned: Plan) -> Outcome:
        """Act on the plan. Raises ConfigError, before any write, when notices are owed and
        no sender is set (a dry run needs none)."""
        if self._mail.source_email is None and any(
            step.notice is not None and step.recipients for step in planned.steps
        ):
            raise ConfigError(
                "notices are due but no sender is set: set SOURCEMAIL (or notify.source_email),"
                " or turn notices off with KEYTURN_ENFORCE_NOTIFY=false; nothing was changed"
            )
        outcome = Outcome()
        outcome.counts["skipped"] += len(planned.skips)
        outcome.counts["unattended"] += len(planned.unattended)
        outcome.counts["tags_ignored"] += len(planned.flags)
        today = planned.today

        def act(step: Step, local: Outcome) -> KeyRecord | None:
            return self._act(step, today, local)

        def finish(item: tuple[Step, KeyRecord], local: Outcome) -> None:
            step, record = item
            if step.action is Action.DELETE and not self._delete_told(step, local):
                return
            self._record_notice(step, record, today, local)

        mailing = _Mailing(self, planned.steps, today, outcome, finish)
        with mailing:
            for results in self._per_user(planned.steps, _step_user, act, outcome):
                for step, record in results:
                    mailing.acted(step, record)
                mailing.collect(block=False)
            mailing.collect(block=True)
        return outcome

    def _per_user(
        self,
        items: Sequence[_T],
        user_of: Callable[[_T], str],
        work: Callable[[_T, Outcome], _R],
        outcome: Outcome,
    ) -> Iterator[list[tuple[_T, _R]]]:
        """`work` on every item: one user's items in order on one worker, users at once.

        Each step is an IAM call or two spent waiting on the network; one key after the
        other, 10,000 due keys cost 10,000 round trips end to end. Within a user the order
        is kept (the state mark before the act it announces); users share nothing. Each
        user's counts and events are collected apart and merged here, in plan order, and
        each user's results are yielded as soon as they (and the users before) are done, so
        the caller can mail while later users are still being worked on.
        """
        by_user: dict[str, list[_T]] = {}
        for item in items:
            by_user.setdefault(user_of(item), []).append(item)

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            for results, local, events in pool.map(
                lambda group: self._buffered(group, work), by_user.values()
            ):
                outcome.merge(local)
                for event in events:
                    self._events.emit(event)
                yield results

    def _buffered(
        self, group: list[_T], work: Callable[[_T, Outcome], _R]
    ) -> tuple[list[tuple[_T, _R]], Outcome, list[Event]]:
        """`work` on one user's items, in order, with its counts and events kept apart."""
        local, events = Outcome(), list[Event]()
        self._buffer.events = events
        try:
            return [(item, work(item, local)) for item in group], local, events
        finally:
            self._buffer.events = None

    def _delete_told(self, step: Step, outcome: Outcome) -> bool:
        """Delete a key whose owner's notice SES has just accepted."""
        try:
            self._writer.delete_key(step.user, step.key_id)
        except KeyturnError as exc:
            self._fail(step, exc, outcome)
            return False
        self._checkpoint("deleted_after_notice")
        outcome.counts["deleted"] += 1
        self._emit_step(step, "done")
        return True

    def _act(self, step: Step, today: date, outcome: Outcome) -> KeyRecord | None:
        """Do a step's IAM part; the record as it now stands, or None when it failed."""
        record = step.record
        tag = state_tag(step.key_id)
        try:
            if step.action is Action.DEACTIVATE:
                # The mark first (write-ahead): a crash between the two leaves an active key
                # marked deactivated, which the next run deactivates again and tells the
                # owner about. The other order left an inactive key with no mark, whose
                # owner was never told (the planner cannot tell it from a manual one).
                record = record.marked(Mark.DEACTIVATED, today)
                self._write_state(step, record)
                self._checkpoint("deactivate_recorded")
                self._writer.set_status(step.user, step.key_id, KeyStatus.INACTIVE)
                self._checkpoint("deactivated")
                outcome.counts["deactivated"] += 1
            elif step.action is Action.DELETE:
                record = record.marked(Mark.DELETED, today)
                if step.notice is not None:
                    # Told first, deleted after (`_delete_told`): a user whose last key is
                    # gone is never read again (no credential-report row), so a notice
                    # still owed for a deleted key would be owed forever. Until the mail
                    # is accepted the key stays, inactive, and the next run tries again.
                    self._write_state(step, record)
                    self._checkpoint("delete_recorded")
                    return record
                self._writer.delete_key(step.user, step.key_id)
                self._checkpoint("deleted")
                self._writer.untag_user(step.user, [tag])
                self._checkpoint("deleted_untagged")
                outcome.counts["deleted"] += 1
            elif step.action is Action.RECORD:
                record = record.marked(Mark.INACTIVE, today)
                self._write_state(step, record)
                outcome.counts["recorded"] += 1
            elif step.action is Action.FORGET:
                self._writer.untag_user(step.user, [tag])
                outcome.counts["forgotten"] += 1
            else:
                return record  # notify, remind, resend: nothing to do in IAM first
        except KeyturnError as exc:
            self._fail(step, exc, outcome)
            return None
        self._emit_step(step, "done")
        return record

    def _write_state(self, step: Step, record: KeyRecord) -> None:
        """The key's state tag, sealed for this user and key (keyturn.services.enforce_seal)."""
        value = self._seals.value(step.user, step.key_id, record)
        self._writer.tag_user(step.user, {state_tag(step.key_id): value})

    def _gate(self, addresses: Iterable[str], outcome: Outcome) -> _SesGate | None:
        """SES's verdicts for this run (GetSendQuota and verification status, read once);
        None, with the failure recorded, when SES cannot be read."""
        sender = self._mail.source_email
        if sender is None or self._templates is None:  # apply() checked; a guard
            raise ConfigError("notify.source_email (SOURCEMAIL) is required to send notices")
        gate = _SesGate(
            self._mailer, sender, self._mail, self._limiter, self._emit, outcome, self._send_rate
        )
        try:
            gate.prepare(addresses)
        except KeyturnError as exc:
            outcome.failures.append(f"SES: {exc}")
            outcome.counts["failed"] += 1
            self._emit("mail", "failed", reason=str(exc))
            return None
        return gate

    def _send_one(self, address: str, mail: Mail) -> str:
        """SendEmail (on a mail worker, paced by SES's send rate); the message id."""
        assert self._mail.source_email is not None
        message_id = self._mailer.send(
            source=self._mail.source_email,
            to=address,
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
        )
        self._checkpoint("mail_sent")
        return message_id

    def _record_notice(self, step: Step, record: KeyRecord, today: date, outcome: Outcome) -> None:
        assert step.notice is not None
        tag = state_tag(step.key_id)
        try:
            if step.notice is Notice.DELETED:
                self._writer.untag_user(step.user, [tag])
            else:
                record = record.marked(NOTICE_MARK[step.notice], today)
                self._write_state(step, record)
        except KeyturnError as exc:
            self._fail(step, exc, outcome, what="recording the notice")
            return
        self._checkpoint("notice_recorded")
        outcome.counts[DONE_COUNTER[step.notice]] += 1
        self._emit(
            "notice",
            "sent",
            user=step.user,
            key_id=step.key_id,
            notice=step.notice.value,
            deadline=_iso(step.deadline),
            recipients=list(step.recipients),
        )

    # -- events -------------------------------------------------------------------------

    def _fail(self, step: Step, exc: KeyturnError, outcome: Outcome, what: str = "") -> None:
        doing = what or step.action.value
        outcome.failures.append(f"{step.user} {step.key_id}: {doing}: {exc}")
        outcome.counts["failed"] += 1
        self._emit(step.action.value, "failed", user=step.user, key_id=step.key_id, reason=str(exc))

    def _emit_step(self, step: Step, outcome: str, *, dry_run: bool = False) -> None:
        self._emit(
            step.action.value,
            outcome,
            user=step.user,
            key_id=step.key_id,
            age_days=step.age_days,
            reason=step.reason,
            notice=step.notice.value if step.notice else None,
            deadline=_iso(step.deadline),
            recipients=list(step.recipients),
            dry_run=dry_run,
        )

    def _emit_skip(self, skip: Skip, *, dry_run: bool) -> None:
        self._emit(
            "skip",
            skip.why.value,
            user=skip.user,
            key_id=skip.key_id,
            age_days=skip.age_days,
            reason=skip.reason,
            deadline=_iso(skip.deadline),
            next=skip.next or None,
            unattended=skip.unattended or None,
            dry_run=dry_run,
        )

    def _emit(self, action: str, outcome: str, **fields: Any) -> None:
        event = {
            "event": "keyturn.enforce",
            "time": self._clock.now().isoformat(timespec="seconds"),
            "action": action,
            "outcome": outcome,
        }
        event.update({key: value for key, value in fields.items() if value not in (None, [])})
        buffered: list[Event] | None = getattr(self._buffer, "events", None)
        if buffered is not None:
            buffered.append(event)  # a worker's: emitted in plan order by _per_user
        else:
            self._events.emit(event)


class _SesGate:
    """Decides, per address, whether a notice can go out now, without ever blocking.

    The sender must be verified; in the SES sandbox every recipient too. Unverified ones get
    a verification request (never for a pending identity, which would mail a new link and
    void the old one), at most one a second across the run: beyond that the address is
    deferred to a later run. The daily sending quota is respected the same way.
    """

    def __init__(
        self,
        mailer: Mailer,
        sender: str,
        options: MailOptions,
        limiter: RateLimiter,
        emit: Callable[..., None],
        outcome: Outcome,
        send_rate: Callable[[float], object] | None = None,
    ) -> None:
        self._send_rate = send_rate
        self._mailer = mailer
        self._sender = sender
        self._options = options
        self._limiter = limiter
        self._emit = emit
        self._outcome = outcome
        self._status: dict[str, str] = {}
        self._sandbox = False
        self._remaining: float | None = None
        self._sender_problem: str | None = None

    def prepare(self, addresses: Iterable[str]) -> None:
        quota = self._mailer.send_quota()
        if self._send_rate is not None:
            self._send_rate(quota.max_send_rate)  # the mail workers' pace (wiring, pacing)
        self._remaining = quota.remaining
        mode = self._options.recipient_verification
        self._sandbox = mode == "always" or (mode == "auto" and quota.looks_like_sandbox)
        wanted = [self._sender, *(addresses if self._sandbox else ())]
        self._status = self._mailer.verification_status(wanted)
        if self._status.get(self._sender) != VERIFIED:
            self._sender_problem = "sender " + self._verify(
                self._sender, allowed=self._options.verify_sender
            )

    def allows(self, address: str) -> tuple[bool, str]:
        if self._sender_problem is not None:
            return False, self._sender_problem
        if self._sandbox and self._status.get(address) != VERIFIED:
            return False, "recipient " + self._verify(address, allowed=True) + " (SES sandbox)"
        if self._remaining is not None:
            if self._remaining < 1:
                return False, "the SES daily sending quota is used up; sent on a later run"
            self._remaining -= 1
        return True, ""

    def _verify(self, address: str, *, allowed: bool) -> str:
        status = self._status.get(address, NOT_REQUESTED)
        if status == "Pending":
            return f"{address} is waiting for its SES verification link to be clicked"
        if not allowed:
            return f"{address} is not verified in SES ({status}); verify it, notices wait"
        if status not in UNVERIFIED_RETRYABLE:
            return f"{address} is not verified in SES ({status})"
        if not self._limiter.try_acquire():
            self._outcome.counts["verifications_postponed"] += 1
            return (
                f"{address} is not verified in SES; its verification request waits for the"
                f" next run ({self._limiter.refusal})"
            )
        try:
            self._mailer.request_verification(address)
        except KeyturnError as exc:
            self._outcome.failures.append(f"verifying {address}: {exc}")
            self._outcome.counts["failed"] += 1
            return f"{address} is not verified in SES and the request failed: {exc}"
        self._status[address] = "Pending"
        self._outcome.counts["verifications_requested"] += 1
        self._emit("verify-identity", "requested", recipients=[address])
        return f"{address} is not verified in SES yet: verification requested, sent once verified"


def recipient_gate(
    mailer: Mailer, options: MailOptions, addresses: Iterable[str]
) -> Callable[[str], tuple[bool, str]]:
    """enforce's SES rule for another sender of notices (the exposed-key response,
    keyturn.services.quarantine), so both mail under one rule: the sender verified; in the
    SES sandbox (`enforce.recipient_verification` auto) or always, every recipient too, an
    unverified one sent a verification request (never again while Pending, at most one a
    second, `enforce.max_verifications_per_run`) and its notice held back. Reads SES once
    (GetSendQuota, GetIdentityVerificationAttributes) and returns `allows(address)` ->
    (may send now, why not). Raises KeyturnError when SES cannot be read."""
    if options.source_email is None:
        raise ConfigError("notify.source_email (SOURCEMAIL) is required to send notices")
    gate = _SesGate(
        mailer,
        options.source_email,
        options,
        RateLimiter(max_permits=options.max_verifications),
        lambda *args, **fields: None,  # enforce's audit events: its own run's, not needed here
        Outcome(),
    )
    gate.prepare(addresses)
    return gate.allows


# SendEmail calls in flight at once: SES's MaxSendRate (14/s on a new production account)
# times a round trip of ~60-100 ms is one or two; the pacer holds them to the rate.
MAIL_WORKERS = 4


class _Mailing:
    """Notices go out while other users' IAM steps go on (issue 19), never ahead of them.

    A mail names all of one address's owed keys, so it is composed once every step for
    that address has had its IAM part (`acted`): a deactivation notice only after the
    deactivation happened, a deleted-key notice only after the deletion mark was written;
    a step whose IAM part failed is left out. Mails go out on MAIL_WORKERS threads, paced
    by SES's send rate (the pacer in keyturn.adapters.pacing); as soon as SES accepts one,
    its keys' follow-ups (the deletion a notice unblocked, the notice mark) run on a few
    IAM workers of their own, so the window in which a crash would send a notice twice
    stays one mail wide. Decisions (SES gate, counts, events) are made on the calling
    thread only; workers return their results to it.
    """

    def __init__(
        self,
        service: EnforceService,
        steps: Sequence[Step],
        today: date,
        outcome: Outcome,
        finish: Callable[[tuple[Step, KeyRecord], Outcome], None],
    ) -> None:
        self._service = service
        self._today = today
        self._outcome = outcome
        self._finish = finish
        self._pending: Counter[str] = Counter()
        for step in steps:
            if step.notice is not None:
                self._pending.update(step.recipients)
        self._owed: dict[str, list[tuple[Step, KeyRecord]]] = defaultdict(list)
        self._gate: _SesGate | None = None
        self._gate_read = False
        self._told: set[tuple[str, str]] = set()
        self._mails: dict[Future[str], tuple[str, list[tuple[Step, KeyRecord]], Mail]] = {}
        self._finishes: set[Future[tuple[list[tuple[Any, None]], Outcome, list[Event]]]] = set()
        self._mail_pool = ThreadPoolExecutor(max_workers=MAIL_WORKERS)
        self._finish_pool = ThreadPoolExecutor(max_workers=max(1, service._workers // 4))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._mail_pool.shutdown(wait=True)
        self._finish_pool.shutdown(wait=True)

    def acted(self, step: Step, record: KeyRecord | None) -> None:
        """`step`'s IAM part is over (`record` None: it failed)."""
        if step.notice is None or not step.recipients:
            return
        for address in step.recipients:
            if record is not None:
                self._owed[address].append((step, record))
            self._pending[address] -= 1
            if self._pending[address] == 0:
                self._ready(address)

    def _ready(self, address: str) -> None:
        owed = self._owed.pop(address, [])
        if not owed:
            return
        service, outcome = self._service, self._outcome
        if not self._gate_read:
            self._gate_read = True
            self._gate = service._gate(sorted(self._pending), outcome)
        if self._gate is None:
            return
        steps = [step for step, _ in owed]
        allowed, why = self._gate.allows(address)
        if not allowed:
            outcome.counts["notices_deferred"] += len(steps)
            outcome.deferred.append(f"{address}: {why}")
            service._emit("mail", "deferred", recipients=[address], reason=why, keys=_ids(steps))
            return
        assert service._templates is not None  # _gate() raised ConfigError otherwise
        assert service._mail.source_email is not None
        mail = service._templates.compose(address, steps, service._mail.source_email, self._today)
        future = self._mail_pool.submit(service._send_one, address, mail)
        self._mails[future] = (address, owed, mail)

    def collect(self, *, block: bool) -> None:
        """Take in finished mails and follow-ups; with `block`, until none is left."""
        while True:
            for future in [f for f in self._mails if f.done()]:
                self._mailed(future)
            for finished in [f for f in self._finishes if f.done()]:
                self._finishes.discard(finished)
                _, local, events = finished.result()
                self._outcome.merge(local)
                for event in events:
                    self._service._events.emit(event)
            if not block or not (self._mails or self._finishes):
                return
            running: list[Future[Any]] = [*self._mails, *self._finishes]
            wait(running, return_when=FIRST_COMPLETED)

    def _mailed(self, future: Future[str]) -> None:
        address, owed, mail = self._mails.pop(future)
        service, outcome = self._service, self._outcome
        try:
            message_id = future.result()
        except KeyturnError as exc:
            outcome.failures.append(f"mail to {address}: {exc}")
            outcome.counts["failed"] += 1
            service._emit("mail", "failed", recipients=[address], reason=str(exc))
            return
        outcome.counts["mails_sent"] += 1
        service._emit(
            "mail",
            "sent",
            recipients=[address],
            message_id=message_id,
            subject=mail.subject,
            keys=_ids(step for step, _ in owed),
        )
        by_user: dict[str, list[tuple[Step, KeyRecord]]] = {}
        for step, record in owed:
            if (step.user, step.key_id) not in self._told:  # told once, by its first mail
                self._told.add((step.user, step.key_id))
                by_user.setdefault(step.user, []).append((step, record))
        for group in by_user.values():
            self._finishes.add(self._finish_pool.submit(service._buffered, group, self._finish))


def _step_user(step: Step) -> str:
    return step.user


def _ids(steps: Iterable[Step]) -> list[str]:
    return [step.key_id for step in steps]


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _user_of(key: AccessKey) -> str:
    return key.user


def _chunks(items: Iterable[list[AccessKey]], size: int) -> Iterator[list[list[AccessKey]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class EnforceConfig:
    """Validated enforcement settings, resolved before any client is built."""

    rules: EnforcementSettings
    mail: MailOptions
    templates: Templates | None
    dry_run: bool


def resolve_config(settings: Settings) -> EnforceConfig:
    """Check every threshold, address and template; one ConfigError listing all problems."""
    section = settings.enforce
    rules = EnforcementSettings(
        policy=settings.policy.to_domain(),
        never_used_after_days=section.never_used_after_days,
        remind_every_days=section.remind_every_days,
        notify=section.notify,
        deactivate_without_notice=section.deactivate_without_notice,
        contact_tag=settings.policy.contact_tag,
        fallback_contact=settings.notify.fallback_contact,
        max_recipients=section.max_recipients,
    )
    # A dry run needs no sender (it only prints the plan); a run that acts with notices on
    # does, and is refused here, before anything is read. apply() checks again, before its
    # first write, for a caller that turned a dry-run configuration into a real run.
    problems = rules.problems()
    if section.notify and not section.dry_run and not settings.notify.source_email:
        problems.insert(
            0,
            "notices are on but no sender is set: set SOURCEMAIL (or notify.source_email),"
            " turn notices off with KEYTURN_ENFORCE_NOTIFY=false, or leave out --apply for"
            " a dry run",
        )
    if problems:
        raise ConfigError("invalid enforce settings: " + "; ".join(problems))
    templates = Templates.load(section.templates_dir) if section.notify else None
    return EnforceConfig(
        rules=rules,
        mail=MailOptions(
            source_email=settings.notify.source_email,
            verify_sender=section.verify_sender,
            recipient_verification=section.recipient_verification,
            max_verifications=section.max_verifications_per_run,
        ),
        templates=templates,
        dry_run=section.dry_run,
    )
