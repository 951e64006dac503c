"""retire = "when-quiet" in the rotation service (issue 16), against in-memory fakes: the
old key waits while a consumer uses it, one GetAccessKeyLastUsed per run, the bound."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyturn.adapters.events import KeyEvent
from keyturn.domain.errors import OperationFailedError
from keyturn.domain.retirement import QuietPolicy
from keyturn.domain.rotation import RotationState
from keyturn.services.rotate import RotationService
from tests.unit.rotate_fakes import FakeClock, FakeJournal, FakeKeys, FakeStore, FakeVerifier

S = RotationState
QUIET = timedelta(hours=5)
BOUND = timedelta(days=2)


class World:
    def __init__(self, on_max: str = "escalate") -> None:
        self.clock = FakeClock()
        self.iam = FakeKeys(self.clock)
        self.store = FakeStore()
        self.journal = FakeJournal()
        self.verifier = FakeVerifier(self.iam)
        self.policy = QuietPolicy(quiet=QUIET, max_overlap=BOUND, on_max=on_max)  # type: ignore[arg-type]

    def service(self, **kwargs: object) -> RotationService:
        from keyturn.domain.rotation import Timing

        return RotationService(
            self.iam,
            self.store,
            self.journal,
            self.verifier,
            self.clock,
            Timing(retire=self.policy),
            **kwargs,  # type: ignore[arg-type]
        )

    def run(self) -> str:
        """One scheduled run's resume; the number of GetAccessKeyLastUsed calls it made."""
        before = len(self.iam.calls)
        outcome = self.service().resume("alice")
        assert outcome is not None
        made = [c for c in self.iam.calls[before:] if c.startswith("last_used")]
        assert len(made) == 1, made
        return outcome.message


def rotated(world: World) -> tuple[str, str]:
    old = world.iam.add("alice")
    outcome = world.service().rotate("alice")
    assert outcome.new_key_id is not None
    return old, outcome.new_key_id


def test_promotion_is_recorded_and_the_old_key_waits_for_quiet() -> None:
    world = World()
    old, new = rotated(world)
    record = world.journal.records["alice"]
    assert (record.state, record.promoted_at) == (S.PROMOTED, world.clock.now())
    assert world.iam.status("alice") == {old: "Active", new: "Active"}
    world.clock.advance(hours=1)
    world.iam.use(old, service="sqs", region="eu-central-1")
    world.clock.advance(minutes=12)
    assert world.run() == "old key still used by sqs in eu-central-1 12 min ago, waiting"
    world.clock.advance(hours=5)  # quiet since that use: retired
    world.run()
    assert world.iam.status("alice") == {old: "Inactive", new: "Active"}


def test_a_key_used_on_every_run_is_never_deactivated_and_escalates_at_the_bound() -> None:
    world = World()
    old, new = rotated(world)
    for _ in range(int(BOUND / timedelta(hours=4))):
        world.clock.advance(hours=4)
        world.iam.use(old)
        if world.clock.now() - world.journal.records["alice"].promoted_at < BOUND:  # type: ignore[operator]
            assert "waiting" in world.run()
            assert world.iam.status("alice")[old] == "Active"
    with pytest.raises(OperationFailedError, match="alice: old key still used by s3 in eu-west-1"):
        world.service().resume("alice")
    assert world.iam.status("alice") == {old: "Active", new: "Active"}


def test_at_the_bound_deactivate_retires_anyway_with_a_warning() -> None:
    world = World(on_max="deactivate")
    old, new = rotated(world)
    world.clock.advance(days=2)
    world.iam.use(old)
    outcome = world.service().resume("alice")
    assert outcome is not None
    assert world.iam.status("alice") == {old: "Inactive", new: "Active"}
    assert any("deactivating it anyway" in w for w in outcome.warnings)


def test_a_crash_before_the_promotion_was_recorded_counts_from_the_resume() -> None:
    world = World()
    old = world.iam.add("alice")

    def crash(step: str, user: str) -> None:
        if step == "promote":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.service(checkpoint=crash).rotate("alice")
    assert world.journal.records["alice"].promoted_at is None  # only the intent was written
    world.clock.advance(hours=QUIET.total_seconds() / 3600)  # quiet since the real promotion
    assert "waiting" in world.run()  # but counted from now: later, so safer
    assert world.journal.records["alice"].promoted_at == world.clock.now()
    assert world.iam.status("alice")[old] == "Active"
    world.clock.advance(hours=5)
    world.run()
    assert world.iam.status("alice")[old] == "Inactive"


class Bus:
    """A RotationEvents fake: records what was published, or refuses everything."""

    bus = "consumers"

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, str, str | None]] = []

    def publish(self, event: KeyEvent) -> None:
        if self.fail:
            raise OperationFailedError("events:PutEvents (consumers): refused")
        self.sent.append((event.detail_type, event.state, event.old_key_id))


def test_events_on_promotion_and_on_the_quiet_retirement_only() -> None:
    world = World()
    bus = Bus()
    old = world.iam.add("alice")
    world.service(events=bus).rotate("alice")
    assert bus.sent == [("Access Key Rotated", "promoted", old)]
    world.clock.advance(hours=1)
    assert world.service(events=bus).resume("alice") is not None  # waiting: nothing sent
    assert len(bus.sent) == 1
    world.clock.advance(hours=5)
    world.service(events=bus).resume("alice")
    assert bus.sent[1:] == [("Access Key Retired", "old_deactivated", old)]


def test_a_bus_that_refuses_never_fails_the_rotation() -> None:
    world = World()
    old = world.iam.add("alice")
    outcome = world.service(events=Bus(fail=True)).rotate("alice")
    assert outcome.ok
    assert outcome.warnings == [
        "event 'Access Key Rotated' not published on bus consumers: "
        "events:PutEvents (consumers): refused; marked in the journal; the next run retries it"
    ]
    assert world.iam.status("alice")[old] == "Active"  # when-quiet: waiting, as without events
