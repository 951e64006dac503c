"""The exposed-key response: one idempotent service behind `keyturn quarantine` and the
AWS Health Lambda (keyturn.handlers.exposed_key).

The order and why (keyturn.domain.quarantine): seal an "opened" record on the key's user,
deactivate the key (never delete first: evidence), rotate an enrolled user whose store
serves the key so consumers get a verified replacement, summarise what the key did
(CloudTrail), tell the owner and the security contact, write the incident record; delete
only when an operator asks (`--delete`), after all that. Each step is marked in the sealed
tag when done, so a redelivered event does nothing more and a crash is resumed by the next
delivery; every step is also safe to run twice (IAM's UpdateAccessKey and DeleteAccessKey
are, the rotation service resumes, a record write replaces the file), which covers a crash
between a step and its mark. The one step that can repeat visibly is a notice, if the
process dies between sending and marking (at-least-once, never zero).

Facts come from AWS, not from the request: the key's account (sts:GetAccessKeyInfo), its
user (iam:GetAccessKeyLastUsed, confirmed by ListAccessKeys of that user), its status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from keyturn.domain.enrollment import Enrollment
from keyturn.domain.errors import BadInputError, KeyturnError, NotFoundError
from keyturn.domain.quarantine import (
    ROOT_NAMES,
    ROTATION_WORDS,
    Action,
    IncidentMarks,
    Step,
    actions_of,
    parse_key_id,
    recipients,
    rotation_choice,
)
from keyturn.domain.rotation import IamKey
from keyturn.domain.trust import Rejected
from keyturn.ports import Clock, KeyManager, Mailer, SecretStore

log = logging.getLogger("keyturn.quarantine")

SCHEMA = "keyturn.incident/v1"
Checkpoint = Callable[[str, str], None]


# -- what the service needs (small protocols; adapters in keyturn.adapters.iam_quarantine) --


class KeyOwnerLookup(Protocol):
    def account_of(self, key_id: str) -> str: ...

    def owner(self, key_id: str) -> str | None: ...


class IncidentLedger(Protocol):
    def read(self, user: str, key_id: str) -> IncidentMarks | Rejected | None: ...

    def write(self, user: str, key_id: str, marks: IncidentMarks) -> None: ...


class EnrollmentReader(Protocol):
    def read(self, user: str) -> Enrollment | Rejected | None: ...


class TagReader(Protocol):
    def user_tags(self, user: str) -> dict[str, str]: ...


class ActivityReport(Protocol):
    """What keyturn.domain.activity.ActivitySummary offers a record and a notice."""

    @property
    def total_events(self) -> int: ...
    @property
    def access_calls_total(self) -> int: ...
    @property
    def complete(self) -> bool: ...
    @property
    def regions_failed(self) -> Sequence[Any]: ...  # RegionFailure: .region, .reason
    def to_dict(self) -> dict[str, Any]: ...
    def lines(self) -> list[str]: ...


class ActivitySource(Protocol):
    """keyturn.ports.KeyActivitySource, as far as this service uses it."""

    def summary(self, access_key_id: str, start: datetime, end: datetime) -> Any: ...


class Rotator(Protocol):
    """keyturn.services.rotate.RotationService, as far as this service uses it."""

    def start_or_continue(self, user: str, *, hold: timedelta | None = None) -> Any: ...

    def resume(self, user: str) -> Any: ...


class IncidentSink(Protocol):
    def write(self, name: str, document: str, html: str) -> str: ...


class OperatorNotices(Protocol):
    def publish(self, notice: Any) -> str: ...


# SES's rule for who may be mailed now (keyturn.services.enforce.recipient_gate): given the
# recipients, `allows(address)` -> (may send, why not).
RecipientGate = Callable[[Sequence[str]], Callable[[str], tuple[bool, str]]]


@dataclass(frozen=True)
class QuarantineConfig:
    account: str
    activity_window: timedelta = timedelta(hours=24)
    sender: str | None = None
    security_contact: str | None = None
    contact_tag: str = "Contact"
    max_recipients: int = 2


@dataclass
class QuarantineOutcome:
    key_id: str
    ok: bool
    state: str  # contained | already contained | would contain | refused | not found | root
    message: str
    user: str | None = None
    account: str | None = None
    actions: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rotation: str | None = None
    new_key_id: str | None = None
    record: str | None = None
    activity: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "ok": self.ok,
            "state": self.state,
            "message": self.message,
            "user": self.user,
            "account": self.account,
            "rotation": self.rotation,
            "new_key_id": self.new_key_id,
            "record": self.record,
            "actions": [a.to_dict() for a in self.actions],
            "warnings": list(self.warnings),
            "activity": list(self.activity),
        }


class QuarantineService:
    def __init__(
        self,
        owners: KeyOwnerLookup,
        keys: KeyManager,
        ledger: IncidentLedger,
        clock: Clock,
        config: QuarantineConfig,
        *,
        enrollments: EnrollmentReader | None = None,
        store: SecretStore | None = None,
        rotation: Rotator | None = None,
        activity: ActivitySource | None = None,
        tags: TagReader | None = None,
        mailer: Mailer | None = None,
        notices: OperatorNotices | None = None,
        incidents: IncidentSink | None = None,
        checkpoint: Checkpoint | None = None,
        recipient_gate: RecipientGate | None = None,
    ) -> None:
        self._owners = owners
        self._keys = keys
        self._ledger = ledger
        self._clock = clock
        self._config = config
        self._enrollments = enrollments
        self._store = store
        self._rotation = rotation
        self._activity = activity
        self._tags = tags
        self._mailer = mailer
        self._notices = notices
        self._incidents = incidents
        self._checkpoint = checkpoint or (lambda step, key: None)
        self._recipient_gate = recipient_gate

    # -- the response ------------------------------------------------------------------------

    def contain(
        self, key_id: str, *, delete: bool = False, dry_run: bool = False
    ) -> QuarantineOutcome:
        """Contain one key; every refusal is one line and changes nothing."""
        try:
            key_id = parse_key_id(key_id)
        except BadInputError as exc:
            return QuarantineOutcome(str(key_id)[:40], False, "refused", str(exc))
        try:
            return self._contain(key_id, delete=delete, dry_run=dry_run)
        except KeyturnError as exc:
            return QuarantineOutcome(key_id, False, "failed", str(exc))

    def _contain(self, key_id: str, *, delete: bool, dry_run: bool) -> QuarantineOutcome:
        account = self._config.account
        found = self._locate(key_id)
        if isinstance(found, QuarantineOutcome):
            return found
        user, key = found
        warnings: list[str] = []
        record = self._ledger.read(user, key_id)
        if isinstance(record, Rejected):
            warnings.append(record.line())
            log.warning("%s", record.line())
            record = None
        outcome = QuarantineOutcome(key_id, True, "contained", "", user, account, warnings=warnings)
        if record is None and not key.active:
            outcome.ok, outcome.state = False, "refused"
            outcome.message = (
                f"{key_id} of {user} is already inactive and keyturn holds no incident record "
                f"of it (deactivated by someone else): nothing changed. If its consumers read "
                f"keyturn's store, rotate them with `keyturn rotate {user}`"
            )
            return outcome
        if dry_run:
            return self._plan(outcome, key, record)
        now = self._clock.now()
        marks = record
        if marks is None:
            marks = IncidentMarks().mark(Step.OPENED, now)
            self._ledger.write(user, key_id, marks)  # write-ahead: before the first change
            self._checkpoint("quarantine_opened", key_id)
        before = marks
        if key.active:
            self._keys.set_active(user, key_id, False)
            if marks.has(Step.DEACTIVATED):
                warnings.append(f"{key_id} was active again after keyturn had deactivated it")
            log.info("%s: %s deactivated", user, key_id)
        if not marks.has(Step.DEACTIVATED):
            marks = self._mark(user, key_id, marks, Step.DEACTIVATED)
        if not marks.has(Step.ROTATED):
            word, new_key = self._rotate(user, key_id, warnings)
            if word != "failed":
                marks = self._mark(user, key_id, marks, Step.ROTATED, rotation=word,
                                   new_key_id=new_key)  # fmt: skip
            else:
                outcome.ok = False
        outcome.rotation = marks.rotation or "failed"
        outcome.new_key_id = marks.new_key_id
        complete = all(marks.has(s) for s in (Step.NOTIFIED, Step.RECORDED))
        wants_delete = delete and not marks.has(Step.DELETED)
        if complete and not wants_delete and marks == before:
            outcome.state = "already contained"
            outcome.message = f"{key_id} was contained at {_at(marks.at(Step.DEACTIVATED))}"
            outcome.actions = actions_of(marks, key_id)
            return outcome
        activity = self._summary(key_id, marks, warnings)
        if not marks.has(Step.NOTIFIED):
            if self._notify(user, key_id, marks, activity, warnings):
                marks = self._mark(user, key_id, marks, Step.NOTIFIED)
            else:
                outcome.ok = False
        if wants_delete:
            marks = self._record(user, key_id, marks, activity, warnings, outcome)
            if marks.has(Step.RECORDED) and self._delete(user, key_id, warnings):
                marks = self._mark(user, key_id, marks, Step.DELETED)
            elif not marks.has(Step.RECORDED):
                warnings.append(f"{key_id} not deleted: the incident is not recorded yet")
                outcome.ok = False
            else:
                outcome.ok = False
        marks = self._record(user, key_id, marks, activity, warnings, outcome)
        if not marks.has(Step.RECORDED):
            outcome.ok = False
        outcome.actions = actions_of(marks, key_id)
        outcome.activity = activity.lines() if activity is not None else []
        outcome.message = self._summary_line(key_id, user, marks)
        if not outcome.ok:
            outcome.state = "contained, incomplete" if marks.has(Step.DEACTIVATED) else "failed"
        return outcome

    # -- steps ---------------------------------------------------------------------------------

    def _locate(self, key_id: str) -> tuple[str, IamKey] | QuarantineOutcome:
        """The key's user and its IAM status, from AWS's own records; or the one line."""
        mine = self._config.account
        account = self._owners.account_of(key_id)
        if account != mine:
            return QuarantineOutcome(
                key_id, False, "refused",
                f"{key_id} belongs to account {account}, not {mine}: refused, nothing changed",
                account=account,
            )  # fmt: skip
        user = self._owners.owner(key_id)
        if user is None:
            return QuarantineOutcome(
                key_id, False, "not found",
                f"IAM knows no access key {key_id} in {mine} (deleted, or never existed): "
                "nothing to contain",
                account=mine,
            )  # fmt: skip
        try:
            keys = self._keys.list_keys(user)
        except NotFoundError:
            keys = []
            if user not in ROOT_NAMES:
                raise
        key = next((k for k in keys if k.key_id == key_id), None)
        if key is None and user in ROOT_NAMES:
            return QuarantineOutcome(
                key_id, False, "root",
                f"{key_id} is a root user key of {mine}: keyturn does not act on root keys; "
                "sign in as root and deactivate it now (Security credentials)",
                account=mine,
            )  # fmt: skip
        if key is None:
            return QuarantineOutcome(
                key_id, False, "not found",
                f"IAM names {user} as the owner of {key_id}, but {user} has no such key: "
                "nothing changed",
                user=user, account=mine,
            )  # fmt: skip
        return user, key

    def _mark(
        self, user: str, key_id: str, marks: IncidentMarks, step: Step, **changes: Any
    ) -> IncidentMarks:
        marks = marks.mark(step, self._clock.now(), **changes)
        self._ledger.write(user, key_id, marks)
        self._checkpoint(f"quarantine_{step.name.lower()}", key_id)
        return marks

    def _rotate(self, user: str, key_id: str, warnings: list[str]) -> tuple[str, str | None]:
        """Rotate the user when it is enrolled and its store serves the exposed key."""
        if self._enrollments is None or self._store is None or self._rotation is None:
            return "not-enrolled", None
        try:
            status = self._enrollments.read(user)
            if isinstance(status, Rejected):
                warnings.append(status.line())
            enrolled = None if isinstance(status, Rejected) else status is not None
            served = self._store.key_id(user, "current")
            choice = rotation_choice(enrolled, served, key_id)
            if choice == "not-served" and enrolled:
                # A rotation cut off after promotion (an earlier delivery): finish it and
                # own it when the exposed key is its old key.
                resumed = self._rotation.resume(user)
                if resumed is not None and resumed.ok and resumed.old_key_id == key_id:
                    # a resume past promotion may not know the new key's id (the journal
                    # holds it from CREATED on only when written since); the store does
                    return "rotated", resumed.new_key_id or served
            if choice != "rotate":
                return choice, None
            result = self._rotation.start_or_continue(user)
            serving = self._store.key_id(user, "current")
            if not result.ok or serving in (None, key_id):
                warnings.append(f"rotation of {user}: {result.message or result.state}")
                return "failed", None
            for note in result.warnings:
                warnings.append(f"rotation of {user}: {note}")
            return "rotated", serving
        except KeyturnError as exc:
            warnings.append(f"rotation of {user} failed: {exc}")
            log.error("%s: rotation failed: %s", user, exc)
            return "failed", None

    def _summary(
        self, key_id: str, marks: IncidentMarks, warnings: list[str]
    ) -> ActivityReport | None:
        if self._activity is None:
            warnings.append("no CloudTrail source configured: what the key did is not summarised")
            return None
        opened = marks.at(Step.OPENED) or self._clock.now()
        start = opened - self._config.activity_window
        try:
            found: ActivityReport = self._activity.summary(key_id, start, self._clock.now())
        except KeyturnError as exc:
            warnings.append(f"CloudTrail lookup failed: {exc}")
            return None
        if not found.complete:
            failed = list(found.regions_failed)
            why = (
                f": {len(failed)} region(s) not searched, e.g. {failed[0].region}: "
                f"{failed[0].reason}"
                if failed
                else " (cut at the event cap or the time budget)"
            )
            warnings.append("the CloudTrail summary is incomplete" + why)
        return found

    def _notify(
        self,
        user: str,
        key_id: str,
        marks: IncidentMarks,
        activity: ActivityReport | None,
        warnings: list[str],
    ) -> bool:
        """Mail the owner and the security contact, publish to the operators' topic. True
        when every configured channel took the message and at least one exists."""
        config = self._config
        tags = self._tags.user_tags(user) if self._tags is not None else {}
        to, dropped = recipients(
            tags, config.contact_tag, config.security_contact, config.max_recipients
        )
        if dropped:
            warnings.append(f"{dropped} {config.contact_tag} tag entr(y/ies) of {user} not mailed")
        sent_any = failed = False
        if self._mailer is not None and config.sender and to:
            subject, text, html = notice_text(key_id, user, config.account, marks, activity)
            allows = self._allows(to, warnings)
            for address in to:
                may, why = allows(address)
                if not may:
                    # held back as enforce holds it; the step stays open, so the next
                    # delivery or run mails it once the address is verified
                    failed = True
                    warnings.append(f"notice to {address} not sent: {why}")
                    continue
                try:
                    self._mailer.send(
                        source=config.sender, to=address, subject=subject, text=text, html=html
                    )
                    sent_any = True
                except KeyturnError as exc:
                    failed = True
                    warnings.append(f"notice to {address} not sent: {exc}")
        elif to:
            warnings.append("no notify.source_email (SES sender): nobody mailed")
        else:
            warnings.append(f"no valid {config.contact_tag} tag and no security contact to mail")
        if self._notices is not None:
            try:
                self._notices.publish(sns_notice(user, key_id, config.account, marks, activity))
                sent_any = True
            except (KeyturnError, ValueError) as exc:
                failed = True
                warnings.append(f"operators' notice not published: {exc}")
        return sent_any and not failed

    def _allows(self, to: Sequence[str], warnings: list[str]) -> Callable[[str], tuple[bool, str]]:
        """enforce's SES rule (sender verified; in the sandbox, recipients too, with a
        verification request); when SES cannot be read, send anyway and let SES refuse:
        an incident notice is not held back on a failed look-up."""
        if self._recipient_gate is None:
            return lambda address: (True, "")
        try:
            return self._recipient_gate(to)
        except KeyturnError as exc:
            warnings.append(f"SES verification status not read ({exc}); mailing anyway")
            return lambda address: (True, "")

    def _record(
        self,
        user: str,
        key_id: str,
        marks: IncidentMarks,
        activity: ActivityReport | None,
        warnings: list[str],
        outcome: QuarantineOutcome,
    ) -> IncidentMarks:
        if self._incidents is None:
            warnings.append("no incident record location configured")
            return marks
        from keyturn.reports.incident_html import render

        ahead = marks.mark(Step.RECORDED, self._clock.now())
        document = incident_document(
            user, key_id, self._config.account, ahead, activity, warnings, outcome.ok
        )
        opened = marks.at(Step.OPENED)
        name = f"incident-{key_id}-{int(opened.timestamp()) if opened else 0}"
        try:
            outcome.record = self._incidents.write(
                name, json.dumps(document, indent=2, sort_keys=True), render(document)
            )
        except KeyturnError as exc:
            warnings.append(f"incident record not written: {exc}")
            return marks
        if marks.has(Step.RECORDED) and ahead.done == marks.done:
            return marks
        self._ledger.write(user, key_id, ahead)
        self._checkpoint("quarantine_recorded", key_id)
        return ahead

    def _delete(self, user: str, key_id: str, warnings: list[str]) -> bool:
        """Delete the (inactive, recorded) key, never one the store serves or holds."""
        if self._store is not None:
            for stage in ("current", "pending"):
                try:
                    held = self._store.key_id(user, stage)
                except KeyturnError:
                    held = None
                if held == key_id:
                    warnings.append(
                        f"{key_id} not deleted: {self._store.location(user)} holds it as the "
                        f"{stage} key"
                    )
                    return False
        self._keys.delete_key(user, key_id)
        return True

    def _plan(
        self, outcome: QuarantineOutcome, key: IamKey, record: IncidentMarks | None
    ) -> QuarantineOutcome:
        steps = []
        if record is None:
            steps.append("seal an incident record on the user")
        if key.active:
            steps.append(f"deactivate {key.key_id}")
        if record is None or not record.has(Step.ROTATED):
            steps.append("rotate the user if enrolled and its store serves the key")
        steps += ["summarise CloudTrail activity", "notify", "write the incident record"]
        outcome.state = "would contain"
        outcome.message = "dry run, nothing changed; would: " + "; ".join(steps)
        if record is not None:
            outcome.actions = actions_of(record, key.key_id)
        return outcome

    def _summary_line(self, key_id: str, user: str, marks: IncidentMarks) -> str:
        rotation = ROTATION_WORDS.get(marks.rotation or "failed", "")
        gone = "deleted" if marks.has(Step.DELETED) else "inactive, kept as evidence"
        return f"{key_id} of {user}: {gone}; {rotation}"


def _at(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "an unknown time"


# -- what people read ------------------------------------------------------------------------


def notice_text(
    key_id: str,
    user: str,
    account: str,
    marks: IncidentMarks,
    activity: ActivityReport | None,
) -> tuple[str, str, str]:
    """Subject, text and HTML of the owner's and security contact's mail: keyturn's own words,
    the key id, IAM's user name, the account and times; no secret, no tag text."""
    from html import escape

    subject = f"[keyturn] access key {key_id} was exposed and has been deactivated"
    lines = [
        f"AWS reported that access key {key_id} of IAM user {user} in account {account} "
        "was exposed in public.",
        "",
        "What keyturn did:",
        *(f"- {_at(a.at)}: {a.detail}" for a in actions_of(marks, key_id)),
        "",
    ]
    if activity is None:
        lines.append("What the key did: not summarised (no CloudTrail source).")
    else:
        lines.append(
            f"What the key did: {activity.total_events} CloudTrail event(s), "
            f"{activity.access_calls_total} of them calls that create access"
            + ("" if activity.complete else " (incomplete: a lower bound)")
            + ". The incident record lists them."
        )
    lines += [
        "",
        "The key was deactivated, not deleted: it is kept as evidence. Do not reactivate it.",
    ]
    text = "\n".join(lines)
    html = "<pre>" + escape(text) + "</pre>"
    return subject, text, html


def sns_notice(
    user: str, key_id: str, account: str, marks: IncidentMarks, activity: ActivityReport | None
) -> Any:
    from keyturn.adapters.sns import RunNotice, UserResult

    counts: dict[str, int | bool] = {"deactivated": marks.has(Step.DEACTIVATED)}
    if activity is not None:
        counts["cloudtrail_events"] = activity.total_events
        counts["access_calls"] = activity.access_calls_total
    counts["rotated"] = marks.rotation == "rotated"
    return RunNotice(
        "keyturn.quarantine",
        "ok" if marks.has(Step.DEACTIVATED) else "failed",
        counts,
        account=account,
        users=[UserResult(user, "contained", key_id, marks.new_key_id)],
    )


def incident_document(
    user: str,
    key_id: str,
    account: str,
    marks: IncidentMarks,
    activity: ActivityReport | None,
    warnings: list[str],
    ok: bool,
) -> dict[str, Any]:
    opened = marks.at(Step.OPENED)
    return {
        "schema": SCHEMA,
        "key": {"key_id": key_id, "user": user, "account": account},
        "state": "deleted" if marks.has(Step.DELETED) else "inactive",
        "complete": ok,
        "opened_at": opened.isoformat() if opened else None,
        "rotation": marks.rotation,
        "new_key_id": marks.new_key_id,
        "actions": [a.to_dict() for a in actions_of(marks, key_id)],
        "activity": activity.to_dict() if activity is not None else None,
        "warnings": list(warnings),
    }
