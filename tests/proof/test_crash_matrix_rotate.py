"""The crash matrix for rotation: kill -9 at every step boundary of DESIGN.md's rotation
state machine, then `rotate --resume`, in both stores; one matrix row per case.

The CLI runs as a real subprocess; KEYTURN_TEST_CRASH_AFTER=<step> makes it SIGKILL itself
right after that step (keyturn.wiring.rotation_checkpoint), with no cleanup, as an OOM kill
or a power cut would. The boundaries, in the order a rotation meets them:

    retire        inactive key deleted to make room          (before INTENT)
    intent        journal written                            INTENT
    create        CreateAccessKey done, secret only in memory CREATED
    store         written to the store as pending            STORED_PENDING
    verify        STS accepted the new key                   VERIFIED
    promote       pending is now current                     PROMOTED
    promoted      (retire = when-quiet) promotion time sealed PROMOTED, promoted_at
    deactivate    old key deactivated                        OLD_DEACTIVATED
    delete_old    old key deleted (grace 0)                  OLD_DELETED
    delete_orphan the resume deleted a key whose secret was lost (CREATED -> INTENT)

`deactivate` runs twice: with the default grace (the resume leaves the old key inactive)
and with grace 0 (the resume itself deletes it). `delete_orphan` only happens in a resume,
so that case kills the rotation after `create` and then the resume after `delete_orphan`.

After the crash the consumers' view must be safe (current stored key active and working,
at most 2 keys, bystanders untouched); after the resume every invariant of issue 7 holds
(tests/rotate_invariants.all_problems), and a second resume changes nothing.
"""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.rotate_fixtures import AuthedAws
from tests.rotate_invariants import (
    StoreProbe,
    all_problems,
    check_current_key_works,
    check_key_limit,
    check_untouched,
)

STORES = ("secretsmanager", "vault")
GRACE_ZERO = {"KEYTURN_ROTATE_GRACE_DAYS": "0"}


@dataclass(frozen=True)
class Case:
    """`kills`: the step the rotation is killed after, then the step each resume is
    killed after; a last, unkilled resume follows."""

    store: str
    kills: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    label: str = ""

    @property
    def id(self) -> str:
        return f"rotate-{self.store}:{'+'.join(self.kills)}{self.label}"

    @property
    def deletes_old(self) -> bool:
        return self.env.get("KEYTURN_ROTATE_GRACE_DAYS") == "0"


STEPS = ("retire", "intent", "create", "store", "verify", "promote", "deactivate")
CASES = [
    case
    for store in STORES
    for case in (
        *(Case(store, (step,)) for step in STEPS),
        Case(store, ("deactivate",), GRACE_ZERO, "(grace 0)"),
        Case(store, ("delete_old",), GRACE_ZERO, "(grace 0)"),
        Case(store, ("create", "delete_orphan")),
    )
]


run_keyturn = run_cli


def make_probe(request: pytest.FixtureRequest, authed: AuthedAws, kind: str) -> StoreProbe:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    if kind == "vault":
        vault: Any = request.getfixturevalue("vault")
        return StoreProbe("vault", authed, vault=vault, prefix=prefix)
    return StoreProbe("secretsmanager", authed, prefix=prefix)


def cli_env(probe: StoreProbe) -> dict[str, str]:
    env = dict(os.environ)
    env.update(probe.authed.env())
    env.update(
        {
            "KEYTURN_ROTATE_STORE": probe.kind,
            "KEYTURN_ROTATE_PATH": f"{probe.prefix}/{{user}}",
            "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
            "KEYTURN_VAULT_KV_MOUNT": "secret",
        }
    )
    return env


def crash_safety(probe: StoreProbe, bystanders: dict[str, dict[str, str]]) -> list[str]:
    """Right after a crash: consumers still get a working, active key; never 3 keys;
    nobody else's keys touched. (A key created but not yet stored may exist, but only
    until the resume.)"""
    return (
        check_current_key_works(probe, "alice")
        + check_key_limit(probe, "alice")
        + check_untouched(probe, bystanders)
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rotation_killed_at_each_step_then_resumed(
    case: Case, request: pytest.FixtureRequest, authed: AuthedAws, matrix_row: Any
) -> None:
    probe = make_probe(request, authed, case.store)
    # alice: her current key is in the store; an older inactive key makes the 2-key rule
    # act (the "retire" step) before the rotation proper.
    current, inactive = authed.seed_user("alice", keys=2, inactive=1)
    probe.seed_current("alice", current.key_id, current.secret)
    authed.seed_user("bystander", keys=2, inactive=1)
    bystanders = {"bystander": authed.keys("bystander")}
    env = {**cli_env(probe), **case.env}
    authed.enroll("alice", environ=env)

    first, *resumes = case.kills
    crashed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": first}, "rotate", "alice")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert crash_safety(probe, bystanders) == []
    for step in resumes:
        killed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": step}, "rotate", "--resume")
        assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
        assert crash_safety(probe, bystanders) == []

    resumed = run_keyturn(env, "rotate", "--resume", "alice")
    note = "resumed"
    if first == "retire":  # the intent was never written: nothing to resume, rotate anew
        assert "nothing to rotate" in resumed.stderr or resumed.returncode == 0
        resumed = run_keyturn(env, "rotate", "alice")
        note = "nothing to resume (no intent); a new rotation"
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert all_problems(probe, "alice", bystanders) == []

    keys = authed.keys("alice")
    new_id, _ = probe.entry("alice", "current") or ("", "")
    assert new_id not in (current.key_id, inactive.key_id)
    if case.deletes_old:
        assert keys == {new_id: "Active"}
        note += "; old key deleted"
    else:
        assert keys == {current.key_id: "Inactive", new_id: "Active"}
        note += "; old key inactive until the grace period ends"
    if "delete_orphan" in case.kills:
        note = "orphan deleted by the killed resume; " + note

    # invariant 6: resuming a finished rotation changes nothing
    again = run_keyturn(env, "rotate", "--resume", "alice")
    assert again.returncode == 0, again.stderr
    assert authed.keys("alice") == keys
    assert (probe.entry("alice", "current") or ("",))[0] == new_id
    matrix_row(note + "; all invariants hold")


# -- rollback: also a multi-step operation, resumed by running it again ------------------
#
# After promotion (the old key inactive, the new one current): reactivate the old key,
# restore the store's previous entry, deactivate the new key, record ROLLED_BACK. Before
# promotion (killed after `store`): delete the new key, record ABORTED.

PROMOTED_ROLLBACK = ("rollback_reactivate", "rollback_restore", "rollback_deactivate_new")
# A rollback killed right after `rollback_restore` leaves the store restored (our entry is
# now the previous one) with the new key still active and nothing recorded. The rerun
# recognises that shape (domain.rotation.restored) and finishes: new key deactivated,
# ROLLED_BACK recorded. (It used to derive "never promoted" in Vault and record ABORTED,
# leaving the new key active beside the old one.)
ROLLBACK_CASES = [
    case
    for store in STORES
    for case in (
        *(Case(store, ("", step)) for step in (*PROMOTED_ROLLBACK, "rolled_back")),
        *(Case(store, ("store", step)) for step in ("rollback_delete_new", "rollback_aborted")),
    )
]


def rollback_id(case: Case) -> str:
    before = "after promotion" if not case.kills[0] else f"killed after {case.kills[0]}"
    return f"rotate-rollback-{case.store}:{case.kills[1]}({before})"


@pytest.mark.parametrize("case", ROLLBACK_CASES, ids=[rollback_id(c) for c in ROLLBACK_CASES])
def test_rollback_killed_at_each_step_then_run_again(
    case: Case, request: pytest.FixtureRequest, authed: AuthedAws, matrix_row: Any
) -> None:
    probe = make_probe(request, authed, case.store)
    (current,) = authed.seed_user("alice")
    probe.seed_current("alice", current.key_id, current.secret)
    authed.seed_user("bystander", keys=2, inactive=1)
    bystanders = {"bystander": authed.keys("bystander")}
    env = cli_env(probe)
    authed.enroll("alice", environ=env)
    rotate_kill, rollback_kill = case.kills

    if rotate_kill:
        crashed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": rotate_kill}, "rotate", "alice")
        assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    else:
        done = run_keyturn(env, "rotate", "alice")
        assert done.returncode == 0, done.stdout + done.stderr
    new_ids = set(authed.keys("alice")) - {current.key_id}

    killed = run_keyturn(
        {**env, "KEYTURN_TEST_CRASH_AFTER": rollback_kill}, "rotate", "--rollback", "alice"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert crash_safety(probe, bystanders) == []

    again = run_keyturn(env, "rotate", "--rollback", "alice")
    finished = rollback_kill in ("rolled_back", "rollback_aborted")
    if finished:  # the record was written: a second rollback says so, changes nothing
        assert again.returncode == 2, again.stdout + again.stderr
        assert "already" in again.stderr, again.stderr
        note = "rollback had finished; running it again refuses, changes nothing"
    else:
        assert again.returncode == 0, again.stdout + again.stderr
        note = "rollback run again and finished"
    assert all_problems(probe, "alice", bystanders) == []
    assert (probe.entry("alice", "current") or ("",))[0] == current.key_id
    keys = authed.keys("alice")
    if rotate_kill:  # never promoted: the new key is gone
        assert keys == {current.key_id: "Active"}
        note += "; new key deleted"
    else:
        # Rolled back: the new key is kept, inactive; never left active beside the old one,
        # and never taken for a lost key and deleted once the store stops naming it current.
        assert keys == {current.key_id: "Active", **dict.fromkeys(new_ids, "Inactive")}, keys
        note += "; old key current and active, new key inactive"
    matrix_row(note + "; all invariants hold")


# -- enrollment: the first rotation into the store, then the sealed record ------------------
#
# A user whose consumers hold the key themselves (nothing in the store yet) is enrolled:
# the first rotation stores a new key and keeps the old one active for the hold period,
# then the enrollment is recorded. Killed anywhere, running `enroll` again finishes: the
# old key (which the consumers still use) is active throughout, the user is enrolled only
# once the store serves a verified key, and never more than 2 keys exist.

ENROLL_STEPS = ("intent", "create", "store", "verify", "promote", "enrolled")
ENROLL_CASES = [Case(store, (step,)) for store in STORES for step in ENROLL_STEPS]


def enroll_status(env: dict[str, str]) -> str:
    import json

    shown = run_keyturn(env, "enroll", "alice", "--dry-run", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return str(json.loads(shown.stdout)["results"][0]["action"])


@pytest.mark.parametrize(
    "case", ENROLL_CASES, ids=[f"enroll-{c.store}:{c.kills[0]}" for c in ENROLL_CASES]
)
def test_enroll_killed_at_each_step_then_run_again(
    case: Case, request: pytest.FixtureRequest, authed: AuthedAws, matrix_row: Any
) -> None:
    probe = make_probe(request, authed, case.store)
    (old,) = authed.seed_user("alice")  # its consumers hold this key; the store is empty
    authed.seed_user("bystander", keys=2, inactive=1)
    bystanders = {"bystander": authed.keys("bystander")}
    env = cli_env(probe)

    crashed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": case.kills[0]}, "enroll", "alice")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert authed.keys("alice")[old.key_id] == "Active"  # the consumers' key never stops
    assert check_key_limit(probe, "alice") + check_untouched(probe, bystanders) == []
    recorded = enroll_status(env)
    if case.kills[0] != "enrolled":
        assert recorded != "already enrolled", "enrolled before the store served a key"

    again = run_keyturn(env, "enroll", "alice")
    assert again.returncode == 0, again.stdout + again.stderr
    assert enroll_status(env) == "already enrolled"
    assert all_problems(probe, "alice", bystanders) == []
    new_id, _ = probe.entry("alice", "current") or ("", "")
    assert authed.keys("alice") == {old.key_id: "Active", new_id: "Active"}
    # the schedule's resume keeps the old key through the hold period
    resumed = run_keyturn(env, "rotate", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert authed.keys("alice") == {old.key_id: "Active", new_id: "Active"}
    matrix_row(
        "enroll run again and finished; old key active through the hold; all invariants hold"
    )


# -- retire = "when-quiet": the waiting state (issue 16) ------------------------------------
#
# With usage-aware retirement the promotion time is sealed into the journal right after
# `promote` (checkpoint `promoted`). Killed after `promote` (journal still the intent) the
# resume stamps the promotion time itself (later than the truth: safer); killed after
# `promoted` it reads it back. Either way the resume waits, the old key stays active, and a
# second resume still waits and changes nothing.

QUIET_ENV = {"KEYTURN_ROTATE_RETIRE": "when-quiet"}
QUIET_CASES = [
    Case(store, (step,), QUIET_ENV, "(when-quiet)")
    for store in STORES
    for step in ("promote", "promoted")
]


@pytest.mark.parametrize("case", QUIET_CASES, ids=[case.id for case in QUIET_CASES])
def test_when_quiet_killed_after_promotion_then_resumed_still_waits(
    case: Case, request: pytest.FixtureRequest, authed: AuthedAws, matrix_row: Any
) -> None:
    import json

    probe = make_probe(request, authed, case.store)
    (current,) = authed.seed_user("alice")
    probe.seed_current("alice", current.key_id, current.secret)
    authed.seed_user("bystander", keys=2, inactive=1)
    bystanders = {"bystander": authed.keys("bystander")}
    env = {**cli_env(probe), **case.env}
    authed.enroll("alice", environ=env)

    crashed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": case.kills[0]}, "rotate", "alice")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert crash_safety(probe, bystanders) == []

    new_id, _ = probe.entry("alice", "current") or ("", "")
    for _ in range(2):  # the resume, then a second one: the same answer, nothing changed
        resumed = run_keyturn(env, "rotate", "--resume", "alice", "--format", "json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        (alice,) = json.loads(resumed.stdout)["users"]
        assert alice["result"] == "waiting", alice
        # (the invariant checks authenticate with the old key: a consumer, seen as one)
        assert alice["message"].endswith(", waiting"), alice
        assert all_problems(probe, "alice", bystanders) == []
        assert authed.keys("alice") == {current.key_id: "Active", new_id: "Active"}
    matrix_row("resumed: still waiting for the old key to go quiet, old key active")


# -- the consumer probe (issue 16): killed between the probe's yes and the promotion ----------
#
# Nothing of the yes is kept: the resume verifies the pending key again and asks the probe
# again. A yes then promotes; a no stops the rotation cleanly (pending discarded, new key
# deleted, old key current and active).

PROBE_CASES = [(store, answer) for store in STORES for answer in ("yes", "no")]


@pytest.mark.parametrize(
    ("store", "answer"),
    PROBE_CASES,
    ids=[f"rotate-{s}:probe(resume says {a})" for s, a in PROBE_CASES],
)
def test_killed_between_the_probe_and_the_promotion_the_resume_asks_again(
    store: str, answer: str, request: pytest.FixtureRequest, authed: AuthedAws, matrix_row: Any
) -> None:
    probe = make_probe(request, authed, store)
    (current,) = authed.seed_user("alice")
    probe.seed_current("alice", current.key_id, current.secret)
    authed.seed_user("bystander", keys=2, inactive=1)
    bystanders = {"bystander": authed.keys("bystander")}
    said = '{"ok": true}' if answer == "yes" else '{"ok": false, "reason": "frozen"}'
    arn = authed.server.probe_function(
        f"check-{uuid.uuid4().hex[:6]}",
        '{"ok": true}',
        said,
        key_id=authed.admin.key_id,
        secret=authed.admin.secret,
    )
    env = {**cli_env(probe), "KEYTURN_ROTATE_PROBE": arn}
    authed.enroll("alice", environ=env)

    crashed = run_keyturn({**env, "KEYTURN_TEST_CRASH_AFTER": "probe"}, "rotate", "alice")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert crash_safety(probe, bystanders) == []
    assert (probe.entry("alice", "current") or ("",))[0] == current.key_id  # not promoted

    resumed = run_keyturn(env, "rotate", "--resume", "alice")
    assert all_problems(probe, "alice", bystanders) == []
    if answer == "yes":
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        new_id, _ = probe.entry("alice", "current") or ("", "")
        assert authed.keys("alice") == {current.key_id: "Inactive", new_id: "Active"}
        matrix_row("resumed: verified and asked again, then promoted; all invariants hold")
    else:
        assert resumed.returncode != 0
        assert "said no" in resumed.stderr + resumed.stdout
        assert authed.keys("alice") == {current.key_id: "Active"}
        assert (probe.entry("alice", "current") or ("",))[0] == current.key_id
        matrix_row("resumed: asked again, said no: new key deleted, old key current")
