"""Consumers' events a bus refused are owed, not lost (issue 16): marked in the rotation's
sealed journal record, published by the next run that reads it, cleared once published,
reported in the outcome, and never a failed rotation."""

from __future__ import annotations

from datetime import timedelta

from keyturn.domain.rotation import RotationState, Timing, Unpublished
from keyturn.services.rotate import RotationService
from tests.unit.rotate_fakes import FakeClock, FakeJournal, FakeKeys, FakeStore, FakeVerifier
from tests.unit.test_rotate_quiet import Bus

S = RotationState
ROTATED, RETIRED = "Access Key Rotated", "Access Key Retired"


class World:
    def __init__(self, **timing: timedelta) -> None:
        self.clock = FakeClock()
        self.iam = FakeKeys(self.clock)
        self.store = FakeStore()
        self.journal = FakeJournal()
        self.verifier = FakeVerifier(self.iam)
        self.timing = Timing(**timing)  # type: ignore[arg-type]

    def service(self, bus: Bus) -> RotationService:
        return RotationService(
            self.iam, self.store, self.journal, self.verifier, self.clock, self.timing, events=bus
        )


def test_a_refused_event_is_marked_then_published_by_the_next_run_and_cleared() -> None:
    world = World(grace=timedelta(days=7))
    old = world.iam.add("alice")
    down = Bus(fail=True)
    first = world.service(down).rotate("alice")
    assert first.ok
    assert first.state == S.OLD_DEACTIVATED
    assert first.unpublished == [ROTATED, RETIRED]
    assert world.journal.records["alice"].unpublished == (
        Unpublished.ROTATED,
        Unpublished.RETIRED,
    )
    assert all("the next run retries it" in w for w in first.warnings)

    still_down = world.service(down).resume("alice")
    assert still_down is not None
    assert still_down.unpublished == [ROTATED, RETIRED]

    up = Bus()
    later = world.service(up).resume("alice")
    assert later is not None
    assert later.ok
    assert later.unpublished == []
    assert up.sent == [(ROTATED, "promoted", old), (RETIRED, "old_deactivated", old)]
    assert world.journal.records["alice"].unpublished == ()
    assert any("published on retry" in w for w in later.warnings)

    again = world.service(up).resume("alice")  # published once, not on every run
    assert again is not None
    assert len(up.sent) == 2


def test_only_the_refused_event_is_owed() -> None:
    world = World(overlap=timedelta(hours=1))
    world.iam.add("alice")
    flaky = Bus(fail=True)
    first = world.service(flaky).rotate("alice")
    assert first.unpublished == [ROTATED]
    flaky.fail = False
    world.clock.advance(hours=1)
    done = world.service(flaky).resume("alice")
    assert done is not None
    assert [sent[0] for sent in flaky.sent] == [ROTATED, RETIRED]
    assert done.unpublished == []


def test_a_rolled_back_rotation_owes_nothing() -> None:
    world = World(overlap=timedelta(hours=1))
    old = world.iam.add("alice")
    world.store.entries["alice"] = {}
    from keyturn.domain.model import NewKeySecret

    world.store.entries["alice"]["current"] = ("seed", NewKeySecret(old, world.iam.secrets[old]))
    world.service(Bus(fail=True)).rotate("alice")
    world.service(Bus()).rollback("alice")
    up = Bus()
    assert world.service(up).resume("alice") is None
    assert up.sent == []


def test_a_journal_that_cannot_take_the_mark_still_never_fails_the_rotation() -> None:
    world = World()
    world.iam.add("alice")

    from keyturn.domain.errors import OperationFailedError
    from keyturn.domain.rotation import RotationRecord

    write = world.journal.write

    def refuse_marks(record: RotationRecord) -> None:
        if record.unpublished:
            raise OperationFailedError("iam:TagUser refused")
        write(record)

    world.journal.write = refuse_marks  # type: ignore[method-assign]
    outcome = world.service(Bus(fail=True)).rotate("alice")
    assert outcome.ok
    assert any("NOT marked in the journal" in w for w in outcome.warnings)
