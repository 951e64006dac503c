"""The audit's waiting lines (services.waiting): the rotation's own line, only for a sealed,
promoted record whose old key IAM still lists as active."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from keyturn.domain.retirement import QuietPolicy
from keyturn.domain.rotation import RotationState, begin
from keyturn.domain.trust import Rejected
from keyturn.services.waiting import WaitingLines
from tests.unit.rotate_fakes import FakeClock, FakeJournal, FakeKeys

POLICY = QuietPolicy(quiet=timedelta(hours=5), max_overlap=timedelta(days=2))


def world() -> tuple[FakeClock, FakeKeys, FakeJournal, str]:
    clock = FakeClock()
    keys = FakeKeys(clock)
    journal = FakeJournal()
    old = keys.add("alice")
    keys.add("alice", age_days=0)
    record = begin("alice", "tok", [], old, clock.now())
    journal.write(replace(record, state=RotationState.PROMOTED, promoted_at=clock.now()))
    return clock, keys, journal, old


def test_a_used_old_key_gets_the_rotations_waiting_line() -> None:
    clock, keys, journal, old = world()
    clock.advance(hours=1)
    keys.use(old, service="sqs", region="eu-west-1")
    clock.advance(minutes=12)
    lines = WaitingLines(keys, journal, clock, POLICY).lines()
    assert lines == {"alice": "old key still used by sqs in eu-west-1 12 min ago, waiting"}


def test_a_retired_old_key_or_a_quiet_one_has_no_line() -> None:
    clock, keys, journal, old = world()
    clock.advance(hours=6)
    assert WaitingLines(keys, journal, clock, POLICY).lines() == {}  # quiet: retired next run
    keys.set_active("alice", old, False)
    assert WaitingLines(keys, journal, clock, POLICY).lines(["alice"]) == {}


def test_an_unsealed_record_is_no_line() -> None:
    clock, keys, journal, old = world()

    class Forged(FakeJournal):
        def read(self, user: str) -> Rejected:  # type: ignore[override]
            return Rejected(user, "not sealed")

    forged = Forged(records=dict(journal.records))
    keys.use(old)
    assert WaitingLines(keys, forged, clock, POLICY).lines() == {}
