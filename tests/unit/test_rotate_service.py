"""The rotation service against in-memory fakes: order of steps, faults, resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from keyturn.domain.errors import BadInputError, EndpointUnreachableError, OperationFailedError
from keyturn.domain.rotation import RotationRecord, RotationState, Timing
from keyturn.services.rotate import CREATE, READ, RETIRE, START, RotationService, run_many
from tests.unit.rotate_fakes import FakeClock, FakeJournal, FakeKeys, FakeStore, FakeVerifier


class World:
    def __init__(self, **timing: timedelta) -> None:
        self.clock = FakeClock()
        self.iam = FakeKeys(self.clock)
        self.store = FakeStore()
        self.journal = FakeJournal()
        self.verifier = FakeVerifier(self.iam)
        self.timing = Timing(**timing)  # type: ignore[arg-type]

    def service(self, **kwargs: object) -> RotationService:
        return RotationService(
            self.iam,
            self.store,
            self.journal,
            self.verifier,
            self.clock,
            self.timing,
            **kwargs,  # type: ignore[arg-type]
        )


def test_old_key_is_retired_only_after_store_verify_and_promote() -> None:
    world = World()
    old = world.iam.add("alice")
    order: list[str] = []
    world.service(checkpoint=lambda step, user: order.append(step)).rotate("alice")
    assert order == ["intent", "create", "store", "verify", "promote", "deactivate"]
    assert world.iam.status("alice")[old] == "Inactive"


def test_verification_failure_leaves_the_old_key_active_and_current() -> None:
    """Invariants 1 and 4."""
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    world.verifier.fail = True
    with pytest.raises(OperationFailedError, match="did not authenticate"):
        world.service().rotate("alice")
    assert world.iam.status("alice")[old] == "Active"
    assert world.store.key_id("alice", "current") == old
    assert world.store.key_id("alice", "pending") is not None  # kept: resumable, not lost


def test_store_failure_deletes_the_new_key_and_keeps_the_old() -> None:
    world = World()
    old = world.iam.add("alice")
    world.store.fail_put = True
    with pytest.raises(OperationFailedError, match=f"old key {old} still active"):
        world.service().rotate("alice")
    assert world.iam.status("alice") == {old: "Active"}
    assert world.journal.records["alice"].state is RotationState.ABORTED


def test_resume_deletes_the_orphan_and_only_the_orphan() -> None:
    world = World()
    old = world.iam.add("alice")

    def crash_after_create(step: str, user: str) -> None:
        if step == "create":
            raise KeyboardInterrupt  # stands in for kill -9: no cleanup runs

    with pytest.raises(KeyboardInterrupt):
        world.service(checkpoint=crash_after_create).rotate("alice")
    orphan = next(k for k in world.iam.status("alice") if k != old)
    world.clock.advance(hours=2)
    human = world.iam.add("bystander")  # someone else's key: untouched
    outcome = world.service().resume("alice")
    assert outcome is not None
    assert f"delete {orphan}" in world.iam.calls
    assert orphan not in world.iam.status("alice")
    assert world.iam.status("bystander") == {human: "Active"}
    assert outcome.state == RotationState.OLD_DEACTIVATED


def test_second_rotation_while_half_done_is_refused() -> None:
    world = World(overlap=timedelta(hours=1))
    world.iam.add("alice")
    first = world.service().rotate("alice")
    assert first.state == RotationState.PROMOTED  # waiting for the overlap
    with pytest.raises(OperationFailedError, match="already in progress"):
        world.service().rotate("alice")
    world.clock.advance(hours=1)
    done = world.service().resume("alice")
    assert done is not None
    assert done.state == RotationState.OLD_DEACTIVATED


def test_grace_deletion_in_a_later_run_never_deletes_the_current_key() -> None:
    world = World(grace=timedelta(days=7))
    old = world.iam.add("alice")
    outcome = world.service().rotate("alice")
    assert world.service().resume("alice").state == RotationState.OLD_DEACTIVATED  # type: ignore[union-attr]
    world.clock.advance(days=7)
    finished = world.service().resume("alice")
    assert finished is not None
    assert finished.state == RotationState.OLD_DELETED
    assert world.iam.status("alice") == {outcome.new_key_id: "Active"}
    assert old not in world.iam.status("alice")


def test_rollback_reactivates_old_restores_store_then_deactivates_new() -> None:
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    outcome = world.service().rotate("alice")
    back = world.service().rollback("alice")
    assert back.state == RotationState.ROLLED_BACK
    assert world.store.key_id("alice", "current") == old
    assert world.iam.status("alice") == {old: "Active", outcome.new_key_id: "Inactive"}
    calls = world.iam.calls
    assert calls.index(f"activate {old}") < calls.index(f"deactivate {outcome.new_key_id}")


def test_every_step_twice_ends_as_once() -> None:
    """Invariant 6 at the service level: resume after completion changes nothing."""
    world = World()
    world.iam.add("alice")
    world.service().rotate("alice")
    before = (dict(world.iam.status("alice")), dict(world.store.entries["alice"]))
    for _ in range(2):
        world.service().resume("alice")
    assert (world.iam.status("alice"), world.store.entries["alice"]) == before


def test_no_secret_in_logs_outcomes_or_records(caplog: pytest.LogCaptureFixture) -> None:
    """Invariant 5."""
    caplog.set_level(logging.DEBUG)
    world = World()
    world.iam.add("alice")
    outcome = world.service(keep_secret=True).rotate("alice")
    secret = world.iam.secrets[outcome.new_key_id or ""]
    assert outcome.secret is not None
    texts = [
        caplog.text,
        repr(outcome),
        str(outcome),
        repr(world.journal.records),
        repr(outcome.secret),
        str(outcome.secret),
    ]
    assert all(secret not in text for text in texts)
    hidden = world.service().rotate  # keep_secret off by default
    world.clock.advance(days=1)
    world.iam.add("bob")
    assert hidden("bob").secret is None


def test_run_many_turns_failures_into_outcomes() -> None:
    world = World()
    world.iam.add("alice")
    results = run_many(["alice", "ghost", "alice"], world.service().rotate, workers=4)
    assert [r.user for r in results] == ["alice", "ghost"]
    assert results[0].ok
    assert not results[1].ok
    assert "ghost" in results[1].message


def _secret(world: World, key_id: str):  # type: ignore[no-untyped-def]
    from keyturn.domain.model import NewKeySecret

    return NewKeySecret(key_id, world.iam.secrets[key_id])


def _killed_after(stop: str) -> Callable[[str, str], None]:
    def checkpoint(step: str, user: str) -> None:
        if step == stop:
            raise KeyboardInterrupt  # stands in for kill -9: no cleanup runs

    return checkpoint


def test_rollback_cut_off_after_the_restore_finishes_when_run_again() -> None:
    """Invariant 6 for rollback: the restored store names the new key only as previous."""
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    new = world.service().rotate("alice").new_key_id
    with pytest.raises(KeyboardInterrupt):
        world.service(checkpoint=_killed_after("rollback_restore")).rollback("alice")
    assert world.iam.status("alice") == {old: "Active", new: "Active"}
    with pytest.raises(OperationFailedError, match="finish it with `keyturn rotate --rollback"):
        world.service().resume("alice")  # would otherwise rotate again
    back = world.service().rollback("alice")
    assert back.state == RotationState.ROLLED_BACK
    assert world.iam.status("alice") == {old: "Active", new: "Inactive"}
    assert world.store.key_id("alice", "current") == old
    assert world.journal.records["alice"].state is RotationState.ROLLED_BACK
    assert world.service().resume("alice") is None


def test_rollback_after_a_first_rotation_changes_nothing() -> None:
    """Invariant 7: the store never held the old key, so there is nothing to restore."""
    world = World()
    old = world.iam.add("alice")
    new = world.service().rotate("alice").new_key_id
    calls = len(world.iam.calls)
    with pytest.raises(OperationFailedError, match=f"old key {old} was never in fake/alice"):
        world.service().rollback("alice")
    assert world.iam.calls[calls:] == ["list"]  # read, nothing written
    assert world.iam.status("alice") == {old: "Inactive", new: "Active"}
    assert world.store.key_id("alice", "current") == new


def test_rollback_never_serves_an_old_key_that_was_inactive_when_the_rotation_began() -> None:
    """Hostile review H4: a quarantine deactivates the exposed key, then rotates. Whatever
    becomes of the incident tag (no quarantine check is wired here at all), the sealed
    journal says the old key was already off: rollback refuses before any write."""
    world = World()
    exposed = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, exposed))}
    world.iam.set_active("alice", exposed, False)  # the quarantine's first step
    new = world.service().rotate("alice").new_key_id
    calls = len(world.iam.calls)
    with pytest.raises(OperationFailedError, match="already inactive when this rotation"):
        world.service().rollback("alice")
    assert world.iam.calls[calls:] == ["list"]  # read, nothing written
    assert world.iam.status("alice") == {exposed: "Inactive", new: "Active"}
    assert world.store.key_id("alice", "current") == new


def test_rollback_never_reactivates_an_old_key_someone_else_deactivated() -> None:
    """The exposed key is the old key of a rotation in its overlap: a quarantine (not this
    rotation) turns it off. Rollback must not turn it back on."""
    world = World(overlap=timedelta(days=1))
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    new = world.service().rotate("alice").new_key_id
    world.iam.set_active("alice", old, False)  # a quarantine during the overlap
    with pytest.raises(OperationFailedError, match="deactivated by someone other than"):
        world.service().rollback("alice")
    assert world.iam.status("alice") == {old: "Inactive", new: "Active"}
    assert world.store.key_id("alice", "current") == new


def test_rollback_reactivates_the_old_key_this_rotation_retired_after_a_resume() -> None:
    """The mark is written ahead of the UpdateAccessKey: killed between the two, the
    resumed rotation retires the key under the same mark, and rollback still undoes it."""
    world = World()
    old = world.iam.add("alice")
    world.store.entries["alice"] = {"current": ("seed", _secret(world, old))}
    real = world.iam.set_active

    def dies(user: str, key_id: str, active: bool) -> None:
        raise KeyboardInterrupt

    world.iam.set_active = dies  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        world.service().rotate("alice")
    world.iam.set_active = real  # type: ignore[method-assign]
    new = world.service().resume("alice")
    assert new is not None
    assert world.iam.status("alice")[old] == "Inactive"
    assert world.service().rollback("alice").state == RotationState.ROLLED_BACK
    assert world.iam.status("alice") == {old: "Active", new.new_key_id: "Inactive"}


@pytest.mark.parametrize("fails", ["promote", "deactivate"])
def test_a_failure_after_promotion_started_says_to_resume(fails: str) -> None:
    world = World()
    old = world.iam.add("alice")

    def unreachable(*_args: object) -> None:
        raise EndpointUnreachableError("Vault read fake/alice: cannot reach Vault")

    if fails == "promote":
        world.store.promote = unreachable  # type: ignore[method-assign]
    else:
        world.iam.set_active = unreachable  # type: ignore[method-assign]
    with pytest.raises(EndpointUnreachableError) as caught:  # its class and exit code kept
        world.service().rotate("alice")
    text = str(caught.value)
    assert text.startswith("Vault read fake/alice: cannot reach Vault; ")
    assert text.endswith("finish it with `keyturn rotate --resume alice`")
    assert world.iam.status("alice")[old] == "Active"


def test_a_failure_before_the_new_key_is_stored_does_not_say_resume() -> None:
    world = World()
    world.iam.add("alice")
    world.store.fail_put = True
    with pytest.raises(OperationFailedError) as caught:
        world.service().rotate("alice")
    assert "--resume" not in str(caught.value)


def test_the_rate_limiter_gates_iam_and_journal_calls_only() -> None:
    """`rotate.rate` is IAM's budget: store calls must not spend it, IAM calls must."""
    world = World()
    world.iam.add("alice")
    world.iam.add("bob", active=False)  # two keys: the journal is read, the inactive retired
    world.iam.add("bob")
    tokens: list[int] = []

    class Counting:
        def acquire(self, priority: int = 0) -> None:
            tokens.append(priority)

    journal_calls: list[str] = []
    read, write = world.journal.read, world.journal.write
    world.journal.read = lambda user: journal_calls.append("read") or read(user)  # type: ignore[method-assign]
    world.journal.write = lambda record: journal_calls.append("write") or write(record)  # type: ignore[method-assign]
    service = world.service(limiter=Counting())
    assert service.rotate("alice").ok
    # ListAccessKeys, TagUser (intent), CreateAccessKey, TagUser (the old key marked as
    # retired by this rotation, written ahead: what lets a rollback reactivate it),
    # UpdateAccessKey (old key off): the key that starts propagating goes first, retiring
    # the old key last (see CREATE...).
    assert tokens == [READ, START, CREATE, RETIRE, RETIRE]
    assert service.rotate("bob").ok
    assert "read" in journal_calls
    assert len(tokens) == len(world.iam.calls) + len(journal_calls)


# -- state keyturn did not seal (issue 12) ---------------------------------------------------


def test_a_rejected_journal_entry_is_reported_and_never_acted_on() -> None:
    """The fake journal hands back a Rejected (a forged tag): resume reports it once and
    touches nothing, rollback refuses with the same line."""
    from keyturn.domain.trust import Rejected
    from keyturn.services.rotate import UNTRUSTED

    world = World()
    only = world.iam.add("alice")

    class ForgedJournal(FakeJournal):
        def read(self, user: str) -> RotationRecord | Rejected | None:  # type: ignore[override]
            return Rejected(user, "forged")

    world.journal = ForgedJournal()
    service = world.service()
    outcome = service.resume("alice")
    assert outcome is not None
    assert outcome.state == UNTRUSTED
    assert "alice: ignored keyturn state" in outcome.message
    assert world.iam.status("alice") == {only: "Active"}
    assert [r.user for r in service.rejections()] == ["alice"]
    with pytest.raises(BadInputError, match="ignored keyturn state"):
        service.rollback("alice")
    assert [c for c in world.iam.calls if c != "list"] == []


def test_a_record_naming_the_served_key_as_old_never_retires_it() -> None:
    """Even a record keyturn believes cannot retire the key the store serves now."""
    world = World()
    world.iam.add("alice")
    done = world.service().rotate("alice")
    current = done.new_key_id
    assert current is not None
    record = world.journal.records["alice"]
    world.journal.records["alice"] = replace(
        record, state=RotationState.PROMOTED, old_key_id=current
    )
    with pytest.raises(OperationFailedError, match="holds it as the current key"):
        world.service().resume("alice")
    assert world.iam.status("alice")[current] == "Active"


def test_hold_keeps_the_old_key_until_it_ends() -> None:
    world = World(grace=timedelta(days=30))
    old = world.iam.add("alice")
    first = world.service().rotate("alice", hold=timedelta(days=7))
    assert first.state == RotationState.PROMOTED
    world.clock.advance(days=6)
    world.service().resume("alice")
    assert world.iam.status("alice")[old] == "Active"
    world.clock.advance(days=1)
    world.service().resume("alice")
    assert world.iam.status("alice")[old] == "Inactive"


def test_an_orphan_candidate_any_store_stage_holds_is_never_deleted() -> None:
    """The same crash as above, but a store writer has since put the "lost" key into the
    previous entry (or an older rotation did): the key is stored, so it is not lost, and
    the resume refuses rather than delete it. (The intent is newer than the served key,
    so only this check, not the stale-intent one, can stop it.)"""
    from keyturn.domain.model import NewKeySecret
    from keyturn.domain.rotation import StoredEntry, StoreView
    from tests.unit.rotate_fakes import FakeStore

    class TokensOnly(FakeStore):
        """Like Secrets Manager: `describe` names versions, not the key ids they hold."""

        def describe(self, user: str) -> StoreView:
            full = super().describe(user)
            bare = [
                None if e is None else StoredEntry(e.token)
                for e in (full.current, full.pending, full.previous)
            ]
            return StoreView(*bare)

    world = World()
    world.store = TokensOnly()
    old = world.iam.add("alice")

    def crash_after_create(step: str, user: str) -> None:
        if step == "create":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.service(checkpoint=crash_after_create).rotate("alice")
    orphan = next(k for k in world.iam.status("alice") if k != old)
    world.store.entries["alice"] = {
        "current": ("t-old", NewKeySecret(old, world.iam.secrets[old])),
        "previous": ("t-prev", NewKeySecret(orphan, world.iam.secrets[orphan])),
    }
    with pytest.raises(OperationFailedError, match="holds it as the previous key"):
        world.service().resume("alice")
    assert world.iam.status("alice") == {old: "Active", orphan: "Active"}
