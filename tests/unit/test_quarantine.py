"""The exposed-key response's decisions and order, on fakes (no server).

The real RotationService runs over the rotation fakes, so the ordering question (the
exposed key is deactivated *before* the rotation whose old key it is) is answered by the
rotation code itself, not by a stand-in.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.domain.enrollment import Enrollment
from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.domain.quarantine import IncidentMarks, Step, parse_health_event, parse_key_id
from keyturn.domain.rotation import Timing
from keyturn.domain.trust import Rejected
from keyturn.services.quarantine import QuarantineConfig, QuarantineService
from keyturn.services.rotate import RotationService
from tests.unit.rotate_fakes import (
    T0,
    FakeClock,
    FakeJournal,
    FakeKeys,
    FakeStore,
    FakeVerifier,
)

ACCOUNT = "123456789012"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "health_credentials_exposed.json"


def sample_event(*key_ids: str, account: str = ACCOUNT) -> dict[str, Any]:
    event = json.loads(FIXTURE.read_text())
    event.pop("_source")
    event["account"] = account
    event["detail"]["affectedEntities"] = [{"entityValue": k} for k in key_ids]
    return event


# -- the event --------------------------------------------------------------------------


def test_the_documented_sample_event_is_understood() -> None:
    request = parse_health_event(sample_event("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"))
    assert request.key_ids == ("AKIAIOSFODNN7EXAMPLE",)  # the same key twice: once
    assert request.account == ACCOUNT
    assert request.event_arn
    assert request.event_arn.startswith("arn:aws:health:")


def test_the_unmodified_sample_names_no_key() -> None:
    event = json.loads(FIXTURE.read_text())
    event.pop("_source")
    request = parse_health_event(event)
    assert request.key_ids == ()
    assert "ACCESS_KEY_ID_HERE" in request.rejected[0]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda e: e.update(source="my.app"), "expected source"),
        (lambda e: e.update({"detail-type": "Scheduled Event"}), "expected source"),
        (
            lambda e: e["detail"].update(eventTypeCode="AWS_EC2_INSTANCE_RETIREMENT"),
            "eventTypeCode",
        ),
        (lambda e: e["detail"].update(service="EC2"), "expected service"),
        (lambda e: e["detail"].update(dry_run=True), "would steer"),
        (lambda e: e["detail"].update(delete=True), "would steer"),
        (lambda e: e.update(skip_rotation=True), "unknown top-level"),
        (lambda e: e.update(account="12345"), "12-digit"),
        (lambda e: e["detail"].update(affectedAccount="210987654321"), "affectedAccount"),
        (lambda e: e["detail"].update(affectedEntities=[]), "non-empty list"),
        (lambda e: e["detail"].update(affectedEntities="AKIAIOSFODNN7EXAMPLE"), "non-empty list"),
        (lambda e: e.update(detail=[1]), "detail must be"),
    ],
)
def test_other_events_are_refused_with_one_line(change: Any, said: str) -> None:
    event = sample_event("AKIAIOSFODNN7EXAMPLE")
    change(event)
    with pytest.raises(BadInputError) as refused:
        parse_health_event(event)
    assert said in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "value", ["", "akiaiosfodnn7example", "AKIA<script>", "A" * 500, 42, None, "AKIA123"]
)
def test_entity_values_that_are_not_key_ids_are_refused(value: Any) -> None:
    with pytest.raises(BadInputError) as refused:
        parse_key_id(value)
    assert len(str(refused.value)) < 120


def test_a_temporary_key_is_named_as_such() -> None:
    with pytest.raises(BadInputError, match="temporary"):
        parse_key_id("ASIAIOSFODNN7EXAMPLE")


def test_marks_round_trip_and_fit_a_tag_with_their_seal() -> None:
    marks = IncidentMarks()
    for index, step in enumerate(Step):
        marks = marks.mark(step, T0 + timedelta(seconds=index))
    marks = marks.mark(Step.ROTATED, T0, rotation="rotated", new_key_id="AKIA" + "Z" * 16)
    text = marks.encode()
    assert IncidentMarks.decode(text) == marks
    assert len(text) + 1 + 43 <= 256


# -- the service on fakes -------------------------------------------------------------------


@dataclass
class FakeOwners:
    keys: FakeKeys
    foreign: set[str] = field(default_factory=set)

    def account_of(self, key_id: str) -> str:
        return "210987654321" if key_id in self.foreign else ACCOUNT

    def owner(self, key_id: str) -> str | None:
        return next((u for u, ks in self.keys.keys.items() if key_id in ks), None)


@dataclass
class FakeLedger:
    tags: dict[tuple[str, str], IncidentMarks | Rejected] = field(default_factory=dict)
    writes: int = 0

    def read(self, user: str, key_id: str) -> IncidentMarks | Rejected | None:
        return self.tags.get((user, key_id))

    def write(self, user: str, key_id: str, marks: IncidentMarks) -> None:
        self.writes += 1
        self.tags[(user, key_id)] = marks


@dataclass
class FakeEnrollments:
    enrolled: dict[str, Enrollment | Rejected] = field(default_factory=dict)

    def read(self, user: str) -> Enrollment | Rejected | None:
        return self.enrolled.get(user)


@dataclass
class FakeMailer:
    sent: list[dict[str, str]] = field(default_factory=list)

    def send(self, *, source: str, to: str, subject: str, text: str, html: str) -> str:
        self.sent.append({"to": to, "subject": subject, "text": text})
        return "m"

    def verification_status(self, identities: Any) -> dict[str, str]:
        return {}

    def request_verification(self, address: str) -> None:
        return None

    def send_quota(self) -> Any:
        return None


@dataclass
class FakeSummary:
    key_id: str
    total_events: int = 3
    access_calls_total: int = 1
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "total_events": self.total_events}

    def lines(self) -> list[str]:
        return [f"{self.key_id}: {self.total_events} events"]


@dataclass
class FakeActivity:
    asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def summary(self, access_key_id: str, start: datetime, end: datetime) -> FakeSummary:
        self.asked.append((access_key_id, start, end))
        return FakeSummary(access_key_id)


@dataclass
class FakeIncidents:
    written: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write(self, name: str, document: str, html: str) -> str:
        assert "<script" not in html
        self.written[name] = json.loads(document)
        return f"mem://{name}.json"


class Crash(Exception):
    pass


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    keys: FakeKeys = field(init=False)
    store: FakeStore = field(default_factory=FakeStore)
    journal: FakeJournal = field(default_factory=FakeJournal)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    enrollments: FakeEnrollments = field(default_factory=FakeEnrollments)
    mailer: FakeMailer = field(default_factory=FakeMailer)
    activity: FakeActivity = field(default_factory=FakeActivity)
    incidents: FakeIncidents = field(default_factory=FakeIncidents)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    owners: FakeOwners = field(init=False)
    crash_after: str | None = None
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = FakeKeys(self.clock)
        self.owners = FakeOwners(self.keys)

    def user_tags(self, user: str) -> dict[str, str]:
        return self.tags.get(user, {})

    def checkpoint(self, step: str, subject: str) -> None:
        self.order.append(step)
        if step == self.crash_after:
            raise Crash(step)

    def service(self) -> QuarantineService:
        rotation = RotationService(
            self.keys, self.store, self.journal, FakeVerifier(self.keys), self.clock, Timing(),
            checkpoint=self.checkpoint,
        )  # fmt: skip
        return QuarantineService(
            self.owners, self.keys, self.ledger, self.clock,
            QuarantineConfig(ACCOUNT, sender="keys@example.com",
                             security_contact="sec@example.com"),
            enrollments=self.enrollments, store=self.store, rotation=rotation,
            activity=self.activity, tags=self, mailer=self.mailer, incidents=self.incidents,
            checkpoint=self.checkpoint,
        )  # fmt: skip

    def served_user(self, name: str = "app", *, enrolled: bool = True) -> str:
        """A user whose store serves its one active key (as keyturn's rotation left it)."""
        from keyturn.domain.model import NewKeySecret

        key_id = self.keys.add(name)
        secret = NewKeySecret(key_id, self.keys.secrets[key_id])
        self.store.entries[name] = {"current": ("t0", secret)}
        self.tags[name] = {"Contact": "owner@example.com"}
        if enrolled:
            self.enrollments.enrolled[name] = Enrollment(name, "vault", f"fake/{name}", T0)
        return key_id


def test_contains_deactivates_before_rotating_and_serves_a_verified_new_key() -> None:
    world = World()
    exposed = world.served_user()
    outcome = world.service().contain(exposed)
    assert outcome.ok, outcome
    assert world.keys.status("app")[exposed] == "Inactive"
    new = world.store.key_id("app", "current")
    assert new not in (None, exposed)
    assert outcome.new_key_id == new
    assert world.keys.calls.index(f"deactivate {exposed}") < world.keys.calls.index("create")
    assert world.order.index("quarantine_opened") < world.order.index("quarantine_deactivated")
    assert [m["to"] for m in world.mailer.sent] == ["owner@example.com", "sec@example.com"]
    assert all(exposed in m["text"] and "secret-of" not in m["text"] for m in world.mailer.sent)
    [record] = world.incidents.written.values()
    assert [a["step"] for a in record["actions"]] == [
        "opened", "deactivated", "rotated", "notified", "recorded"
    ]  # fmt: skip
    assert record["activity"]["total_events"] == 3


def test_the_same_key_twice_does_the_work_once() -> None:
    world = World()
    exposed = world.served_user()
    world.service().contain(exposed)
    state = (copy.deepcopy(world.keys.keys), copy.deepcopy(world.store.entries))
    writes, mails = world.ledger.writes, len(world.mailer.sent)
    again = world.service().contain(exposed)
    assert again.ok
    assert again.state == "already contained"
    assert (world.keys.keys, world.store.entries) == state
    assert (world.ledger.writes, len(world.mailer.sent)) == (writes, mails)


STEPS = ("quarantine_opened", "quarantine_deactivated", "intent", "create", "store", "verify",
         "promote", "quarantine_rotated", "quarantine_notified", "quarantine_recorded")  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_is_finished_by_the_next_delivery(step: str) -> None:
    world = World()
    exposed = world.served_user()
    world.crash_after = step
    with pytest.raises(Crash):
        world.service().contain(exposed)
    assert world.keys.status("app").get(exposed) in ("Inactive", "Active")
    world.crash_after = None
    outcome = world.service().contain(exposed)
    assert outcome.ok, outcome
    assert world.keys.status("app")[exposed] == "Inactive"
    assert sorted(world.keys.status("app").values()) == ["Active", "Inactive"]
    new = world.store.key_id("app", "current")
    assert new != exposed
    assert world.keys.status("app")[new or ""] == "Active"
    assert outcome.rotation == "rotated", outcome
    marks = world.ledger.tags[("app", exposed)]
    assert isinstance(marks, IncidentMarks)
    assert all(marks.has(s) for s in (Step.DEACTIVATED, Step.ROTATED, Step.NOTIFIED, Step.RECORDED))
    # a third delivery changes nothing
    before = copy.deepcopy(world.keys.keys)
    assert world.service().contain(exposed).state == "already contained"
    assert world.keys.keys == before


def test_a_key_the_store_does_not_serve_is_deactivated_not_rotated() -> None:
    world = World()
    world.served_user()
    second = world.keys.add("app", age_days=10)
    outcome = world.service().contain(second)
    assert outcome.ok
    assert outcome.rotation == "not-served"
    assert world.keys.status("app")[second] == "Inactive"
    assert "create" not in world.keys.calls


@pytest.mark.parametrize("enrollment", ["none", "forged"])
def test_a_user_not_enrolled_by_keyturn_is_contained_not_rotated(enrollment: str) -> None:
    world = World()
    exposed = world.served_user(enrolled=False)
    if enrollment == "forged":
        world.enrollments.enrolled["app"] = Rejected("app", "not sealed")
    outcome = world.service().contain(exposed)
    assert outcome.ok
    assert outcome.rotation == ("not-enrolled" if enrollment == "none" else "untrusted")
    assert world.keys.status("app") == {exposed: "Inactive"}
    assert world.store.key_id("app", "current") == exposed


def test_a_forged_complete_record_skips_nothing() -> None:
    """A tag-writer's 'already done' record is no record: the key is still contained."""
    world = World()
    exposed = world.served_user()
    world.ledger.tags[("app", exposed)] = Rejected("app", "not sealed")
    outcome = world.service().contain(exposed)
    assert outcome.ok
    assert world.keys.status("app")[exposed] == "Inactive"
    assert any("did not write" in w for w in outcome.warnings)


@pytest.mark.parametrize("case", ["foreign", "unknown", "already-inactive", "bad-id"])
def test_refusals_are_one_line_and_change_nothing(case: str) -> None:
    world = World()
    exposed = world.served_user()
    key_id = exposed
    if case == "foreign":
        world.owners.foreign.add(exposed)
    elif case == "unknown":
        key_id = "AKIA" + "9" * 16
    elif case == "already-inactive":
        world.keys.set_active("app", exposed, False)
    else:
        key_id = "not-a-key\nwith a newline"
    before = copy.deepcopy(world.keys.keys)
    world.keys.calls.clear()
    outcome = world.service().contain(key_id)
    assert not outcome.ok
    assert "\n" not in outcome.message
    assert world.keys.keys == before
    assert world.ledger.writes == 0
    assert not any(c.startswith(("deactivate", "create", "delete")) for c in world.keys.calls)


def test_a_root_key_is_reported_not_guessed() -> None:
    world = World()
    world.owners.owner = lambda key_id: "root"  # type: ignore[method-assign]
    outcome = world.service().contain("AKIA" + "1" * 16)
    assert outcome.state == "root"
    assert not outcome.ok


def test_delete_comes_after_the_record_and_never_for_a_served_key() -> None:
    world = World()
    exposed = world.served_user(enrolled=False)  # not rotated: the store still serves it
    outcome = world.service().contain(exposed, delete=True)
    assert not outcome.ok
    assert exposed in world.keys.status("app")
    assert any("holds it as the current key" in w for w in outcome.warnings)
    world2 = World()
    exposed2 = world2.served_user()
    outcome2 = world2.service().contain(exposed2, delete=True)
    assert outcome2.ok
    assert exposed2 not in world2.keys.status("app")
    assert world2.keys.calls.index(f"delete {exposed2}") > world2.keys.calls.index(
        f"deactivate {exposed2}"
    )
    [record] = world2.incidents.written.values()
    assert [a["step"] for a in record["actions"]][-1] == "deleted"


def test_rollback_never_reactivates_a_quarantined_key() -> None:
    world = World()
    exposed = world.served_user()
    assert world.service().contain(exposed).ok
    calls = len(world.keys.calls)

    def quarantined(user: str, key_id: str) -> str | None:
        found = world.ledger.tags.get((user, key_id))
        return "incident open" if isinstance(found, IncidentMarks) else None

    rotation = RotationService(
        world.keys, world.store, world.journal, FakeVerifier(world.keys), world.clock,
        Timing(), quarantined=quarantined,
    )  # fmt: skip
    with pytest.raises(OperationFailedError, match="quarantined as exposed"):
        rotation.rollback("app")
    assert world.keys.status("app")[exposed] == "Inactive"
    assert not any(c.startswith("activate") for c in world.keys.calls[calls:])


def test_dry_run_changes_nothing() -> None:
    world = World()
    exposed = world.served_user()
    outcome = world.service().contain(exposed, dry_run=True)
    assert outcome.ok
    assert outcome.state == "would contain"
    assert world.keys.status("app")[exposed] == "Active"
    assert world.ledger.writes == 0


@dataclass
class SandboxSes(FakeMailer):
    """The SES sandbox: only verified addresses may be mailed; requests are remembered."""

    verified: set[str] = field(default_factory=lambda: {"keys@example.com", "sec@example.com"})
    requested: list[str] = field(default_factory=list)

    def verification_status(self, identities: Any) -> dict[str, str]:
        known = {a: "Pending" for a in self.requested} | {a: "Success" for a in self.verified}
        return {a: known[a] for a in identities if a in known}  # never asked: absent

    def request_verification(self, address: str) -> None:
        self.requested.append(address)

    def send_quota(self) -> Any:
        from keyturn.adapters.ses import SendQuota

        return SendQuota(max_24_hour=200, sent_last_24_hours=0, max_send_rate=1)


def test_in_the_ses_sandbox_an_unverified_owner_is_asked_to_verify_as_enforce_does() -> None:
    from keyturn.services.enforce import MailOptions, recipient_gate

    world = World()
    world.mailer = ses = SandboxSes()
    exposed = world.served_user()
    options = MailOptions(source_email="keys@example.com")
    service = world.service()
    service._recipient_gate = lambda to: recipient_gate(ses, options, to)
    first = service.contain(exposed)
    assert [m["to"] for m in ses.sent] == ["sec@example.com"]  # the verified one only
    assert ses.requested == ["owner@example.com"]
    assert any("owner@example.com not sent" in w and "verification requested" in w
               for w in first.warnings), first.warnings  # fmt: skip
    assert not first.ok  # people not all told: the step stays open
    assert world.keys.status("app")[exposed] == "Inactive"  # contained all the same
    second = service.contain(exposed)
    assert ses.requested == ["owner@example.com"]  # Pending: never a second link
    assert not second.ok
    ses.verified.add("owner@example.com")  # the link clicked
    third = service.contain(exposed)
    assert third.ok, third.warnings
    assert "owner@example.com" in [m["to"] for m in ses.sent]
