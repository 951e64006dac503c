"""Vault failing mid-run (issue 7, item 2): sealed, answering 403, or gone, while `rotate`
is part-way through several users and part-way through one user's chain.

Two ways to strike, both through the real client stack (hvac, requests, keyturn's error
translation):

- the real thing at a step boundary: RotationService's `checkpoint` seals the server
  (sys/seal), revokes keyturn's token (a real 403) or stops the proxy keyturn talks through
  (connection refused);
- `VaultFaultProxy` at *every* Vault request of a rotation in turn, including between
  promotion's writes, which no step boundary reaches.

After each fault, with Vault healthy again, DESIGN.md's rotation invariants hold (the
stored current key authenticates, at most 2 keys, no active key whose secret is nowhere,
the old key untouched while the new one is not promoted), the failure was one clear line,
and a later run (`--resume` for rotations in flight, then a new rotation for users never
reached, as `rotate --resume` then `rotate --due` would) completes the work.

The module has its own OpenBao server: sealing the shared one would break other tests.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.config import load_settings
from keyturn.sandbox.vault import LocalVault
from keyturn.sandbox.vault_proxy import Fault, VaultFaultProxy
from keyturn.services.rotate import Outcome, RotationService, run_many
from keyturn.wiring import build_aws, build_rotation
from tests.conftest import started_vault
from tests.proof.conftest import KEYTURN
from tests.rotate_fixtures import AuthedAws, enroll_users
from tests.rotate_invariants import StoreProbe, all_problems

pytestmark = pytest.mark.vault

USERS = ("ann", "ben", "cat")
STRUCK = "ben"  # the fault strikes in ben's chain: ann is done, cat not started
DUE = timedelta(days=30)  # seeded keys are 90 days old; a fresh key is not due


@pytest.fixture(scope="module")
def own_vault() -> Iterator[LocalVault]:
    yield from started_vault()


@pytest.fixture
def root(own_vault: LocalVault) -> Any:
    """A root client straight to the server (not through the proxy); Vault unsealed."""
    client = own_vault.client()
    if client.sys.is_sealed():  # a previous test failed before it cleaned up
        own_vault.unseal()
    return client


@pytest.fixture
def proxy(own_vault: LocalVault) -> Iterator[VaultFaultProxy]:
    with VaultFaultProxy(own_vault.addr) as running:
        yield running


@pytest.fixture
def world(
    authed: AuthedAws, root: Any, proxy: VaultFaultProxy, monkeypatch: pytest.MonkeyPatch
) -> StoreProbe:
    """keyturn talks to Vault through the proxy with a token of its own (revocable)."""
    token = root.auth.token.create(policies=["root"], ttl="30m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_ADDR", proxy.url)
    monkeypatch.setenv("VAULT_TOKEN", token)
    return StoreProbe("vault", authed, vault=root, prefix=f"vf{uuid.uuid4().hex[:10]}")


def service(probe: StoreProbe, checkpoint: Callable[[str, str], None] | None = None) -> Any:
    """keyturn's rotation as the CLI builds it; grace 0 so the old key's deletion (which
    reads Vault once more) is part of every chain."""
    flags = {
        "rotate.store": "vault",
        "rotate.path": f"{probe.prefix}/{{user}}",
        "rotate.verify_interval_seconds": 0,
        "rotate.grace_days": 0,
        "rotate.rate": 1000,  # the default 10 AWS calls/s would make this module slow
    }
    settings = load_settings(flags=flags).settings
    return build_rotation(settings, build_aws(settings), checkpoint=checkpoint)


def seed(probe: StoreProbe, users: tuple[str, ...]) -> dict[str, str]:
    """Each user with one 90-day-old key that consumers already read from Vault."""
    old = {}
    for user in users:
        (key,) = probe.authed.seed_user(user)
        probe.seed_current(user, key.key_id, key.secret)
        old[user] = key.key_id
    return old


def one_clear_line(outcome: Outcome) -> str:
    assert not outcome.ok, outcome
    message = outcome.message
    assert message, outcome
    assert "\n" not in message, message
    assert "Traceback" not in message, message
    assert "Vault" in message, message
    return message


def later_run(svc: RotationService, users: tuple[str, ...]) -> list[Outcome]:
    """What the operator runs once Vault is back: `rotate --resume`, then `rotate --due`."""
    in_flight = [user for user in svc.pending_users() if user in users]
    resumed = run_many(in_flight, svc.resume, workers=1)
    started = run_many(users, lambda u: svc.rotate(u, only_if_older_than=DUE), workers=1)
    return resumed + started


def check_safe(probe: StoreProbe, old: dict[str, str]) -> None:
    """The invariants after the fault (Vault healthy again, nothing resumed yet)."""
    for user, old_key in old.items():
        assert all_problems(probe, user, {}) == [], user
        current = probe.entry(user, "current")
        assert current is not None
        if current[0] == old_key:  # new key not promoted: the old one is untouched
            assert probe.authed.keys(user)[old_key] == "Active", user


def check_done(probe: StoreProbe, old: dict[str, str]) -> None:
    """Every user rotated: a new current key that works, the old key gone, nothing pending."""
    for user, old_key in old.items():
        assert all_problems(probe, user, {}) == [], user
        current = probe.entry(user, "current")
        assert current is not None, user
        assert current[0] != old_key, user
        assert probe.authed.keys(user) == {current[0]: "Active"}, user
        assert probe.entry(user, "pending") is None, user


# -- the real faults, at step boundaries, in a run over several users -----------------------

FAULT_WORDS = {
    "sealed": "sealed",
    "denied": "permission denied",
    "down": "cannot reach Vault",
}


# Each fault kind at two of the three step boundaries where Vault is called next; the CLI
# test below adds "down" as the promotion starts, and the sweep every request and kind.
@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("sealed", "create"),  # new key created, its pending write is next: the write fails
        ("down", "create"),
        ("sealed", "verify"),  # new key stored and verified: the promotion fails
        ("denied", "verify"),
        ("denied", "deactivate"),  # promoted, old key deactivated: the pre-delete check fails
        ("down", "deactivate"),
    ],
)
def test_vault_fault_mid_run_loses_nothing_and_a_later_run_finishes(
    fault: str,
    step: str,
    world: StoreProbe,
    own_vault: LocalVault,
    proxy: VaultFaultProxy,
    root: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = seed(world, USERS)

    def strike(at: str, user: str) -> None:
        if at != step or user != STRUCK:
            return
        if fault == "sealed":
            own_vault.seal()
        elif fault == "denied":
            root.auth.token.revoke(os.environ["VAULT_TOKEN"])
        else:
            proxy.down()

    outcomes = {o.user: o for o in run_many(USERS, service(world, strike).rotate, workers=1)}
    assert outcomes["ann"].ok, outcomes["ann"]
    for user in (STRUCK, "cat"):
        assert FAULT_WORDS[fault] in one_clear_line(outcomes[user])
    if step == "create":  # the unstored new key was deleted at once
        assert f"old key {old[STRUCK]} still active" in outcomes[STRUCK].message
    if step == "verify":  # promotion failed: a plain rerun would refuse, so say what to run
        assert f"`keyturn rotate --resume {STRUCK}`" in outcomes[STRUCK].message
    # Vault is fixed: unsealed, a valid token, listening again.
    if fault == "sealed":
        own_vault.unseal()
    elif fault == "denied":
        fresh = root.auth.token.create(policies=["root"], ttl="30m")["auth"]["client_token"]
        monkeypatch.setenv("VAULT_TOKEN", fresh)
    else:
        proxy.up()
    check_safe(world, old)
    assert world.authed.keys("cat") == {old["cat"]: "Active"}  # never reached
    later = later_run(service(world), USERS)
    assert all(o.ok for o in later), [(o.user, o.message) for o in later]
    check_done(world, old)


# -- the proxy, at every Vault request of one user's rotation -------------------------------


def rotation_requests(probe: StoreProbe, proxy: VaultFaultProxy) -> int:
    """How many Vault requests one rotation makes (a calm run, counted at the proxy)."""
    seed(probe, ("calm",))
    svc = service(probe)
    before = proxy.requests
    assert svc.rotate("calm").ok
    return proxy.requests - before


@pytest.mark.parametrize("fault", ["sealed", "denied", "drop"])
def test_a_vault_fault_at_every_request_of_a_rotation(
    fault: Fault, world: StoreProbe, proxy: VaultFaultProxy
) -> None:
    count = rotation_requests(world, proxy)
    assert count >= 9, proxy.log  # 3 reads, pending write, 5 for promotion, 1 pre-delete
    svc = service(world)
    for k in range(1, count + 1):
        user = f"u{k}"
        old = seed(world, (user,))
        base = proxy.requests
        proxy.strike(fault, lambda n, _m, _p, at=base + k: n == at)
        outcome = run_many([user], svc.rotate, workers=1)[0]
        assert proxy.tripped_at == base + k, (k, proxy.log[base:])
        struck = proxy.log[base + k - 1]
        assert not outcome.ok, (k, struck)
        one_clear_line(outcome)
        proxy.calm()
        check_safe(world, old)
        later = later_run(svc, (user,))
        assert later, (k, struck)
        assert all(o.ok for o in later), (k, struck, later)
        check_done(world, old)


# -- through the CLI: one line per failed user, a non-zero exit, then two runs finish -------


def test_cli_vault_down_mid_run_exits_non_zero_then_resume_and_due_finish(
    world: StoreProbe, proxy: VaultFaultProxy, tmp_path: Path
) -> None:
    old = seed(world, USERS)
    env = {
        **os.environ,
        "KEYTURN_ROTATE_STORE": "vault",
        "KEYTURN_ROTATE_PATH": f"{world.prefix}/{{user}}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        "KEYTURN_ROTATE_WORKERS": "1",
        "KEYTURN_ROTATE_RATE": "1000",
        "COLUMNS": "200",
    }

    def keyturn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEYTURN, *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )

    # Vault dies as ben's promotion starts: the first read of his current entry after his
    # pending entry was written (deterministic: one worker, users in order).
    pending_written: list[bool] = []

    def ben_promotes(_n: int, method: str, path: str) -> bool:
        if method in ("POST", "PUT") and path.endswith("/ben.pending"):
            pending_written.append(True)
            return False
        return bool(pending_written) and method == "GET" and path.endswith("/ben")

    enroll_users(*USERS, environ=env)  # an operator enrolled them before
    proxy.strike("drop", ben_promotes)
    first = keyturn("rotate", *USERS)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert "1 rotated, 2 failed" in first.stdout, first.stdout
    rows = {line.split()[1]: line for line in first.stdout.splitlines() if "│" in line}
    assert "failed" in rows["ben"], first.stdout
    assert "cannot reach Vault" in rows["ben"], first.stdout
    assert "failed" in rows["cat"], first.stdout
    proxy.calm()
    check_safe(world, old)
    assert world.entry("ben", "pending") is not None  # verified, not promoted: resumable

    resumed = keyturn("rotate", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    due = keyturn("rotate", "--due")
    assert due.returncode == 0, due.stdout + due.stderr
    assert "cat" in due.stdout, due.stdout
    assert "ann" not in due.stdout, due.stdout
    for user, key in old.items():  # grace 7 days: old keys deactivated, kept for now
        current = world.entry(user, "current")
        assert current is not None
        assert current[0] != key
        assert world.authed.keys(user) == {key: "Inactive", current[0]: "Active"}
        assert world.authed.authenticates(*current)
