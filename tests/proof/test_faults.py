"""Injected faults through the real client stack: the CLI talks to moto through
`keyturn.sandbox.faults.FaultProxy`, which throttles, answers 503, drops connections,
stalls after the service did the work (the client times out), or has SES reject mail.

What must hold: nothing lost (every key and notice accounted for once the faults stop), a
clear one-line error and a non-zero exit when a run could not finish, and a later run
completes the work.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.faults import MESSAGE_REJECTED, FaultPlan, FaultProxy
from tests.proof.conftest import Run
from tests.proof.test_crash_matrix import (
    ENFORCE_ARGS,
    check_lease_invariants,
    enforce_state,
    enforce_world,
    keyturn_users,
    mails,
    store,
)

FINAL_ENFORCE = {
    "dora": ["deactivated", "notified", "told-deactivated"],
    "erin": ["notified"],
    "fred": [],
    "gus": [],
}
# Mild: what a busy account sees. Every call has 8 attempts; reads time out after 0.5 s.
MILD = FaultPlan(throttle=0.15, server_error=0.05, drop=0.03, stall=0.02, stall_seconds=1.5)
# Hostile: half the calls fail and nothing is retried.
HOSTILE = FaultPlan(throttle=0.25, server_error=0.25)
CLIENT = {"KEYTURN_AWS_READ_TIMEOUT_SECONDS": "0.5", "KEYTURN_AWS_WORKERS": "2"}


@pytest.fixture
def proxy(aws: LocalAws) -> Iterator[FaultProxy]:
    with FaultProxy(aws.url, seed=20261122) as running:
        yield running


def via(proxy: FaultProxy, attempts: int) -> dict[str, str]:
    return {**CLIENT, "AWS_ENDPOINT_URL": proxy.url, "KEYTURN_AWS_MAX_ATTEMPTS": str(attempts)}


def clean_failure(done: subprocess.CompletedProcess[str]) -> str:
    """Exit 1 or 4, no traceback, and either one `error:` line or a per-item report on
    stdout that says what failed (revoke-prefix, tidy)."""
    assert done.returncode in (1, 4), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    if not errors:
        assert "failed" in done.stdout, (done.stdout, done.stderr)
        return done.stdout
    assert len(errors) == 1, done.stderr
    return errors[0]


def check_enforce_done(aws: LocalAws, keys: dict[str, str]) -> None:
    state = enforce_state(aws, keys)
    assert {user: found["marks"] for user, found in state.items()} == FINAL_ENFORCE
    assert state["dora"]["keys"] == [(keys["dora"], "Inactive")]
    assert state["erin"]["keys"] == [(keys["erin"], "Active")]
    # Nothing lost and nothing sent more than once: one mail per owed notice.
    assert mails(aws) == {"dora@example.com": 1, "erin@example.com": 1, "fred@example.com": 1}


@pytest.mark.parametrize("plan", [MILD, HOSTILE], ids=["mild", "hostile"])
def test_enforce_under_faults_then_a_calm_run_completes(
    plan: FaultPlan, proxy: FaultProxy, keyturn: Run, aws: LocalAws, tmp_path: Path
) -> None:
    keys = enforce_world(aws, tmp_path / "state")
    proxy.plan = plan
    attempts = 8 if plan is MILD else 1
    outcomes = []
    for _ in range(2):  # scheduled runs in a bad hour
        done = keyturn(*ENFORCE_ARGS, extra=via(proxy, attempts))
        outcomes.append(done.returncode)
        if done.returncode != 0:
            clean_failure(done)
    if plan is MILD:
        assert outcomes[-1] == 0, outcomes  # retries absorb a busy account
    else:
        assert any(code != 0 for code in outcomes), outcomes
    assert sum(proxy.counts[k] for k in ("throttle", "server_error", "drop", "stall")) > 0
    proxy.calm()
    final = keyturn(*ENFORCE_ARGS, extra=via(proxy, 8))
    assert final.returncode == 0, final.stdout + final.stderr
    check_enforce_done(aws, keys)


def test_ses_rejecting_mail_defers_notices_and_deletion_until_it_accepts(
    proxy: FaultProxy, keyturn: Run, aws: LocalAws, tmp_path: Path
) -> None:
    keys = enforce_world(aws, tmp_path / "state")
    proxy.plan = FaultPlan(refuse={"SendEmail": MESSAGE_REJECTED})
    rejected = keyturn(*ENFORCE_ARGS, extra=via(proxy, 8))
    assert "MessageRejected" in clean_failure(rejected) or "not verified" in rejected.stderr
    state = enforce_state(aws, keys)
    assert mails(aws) == {}
    assert state["dora"]["keys"] == [(keys["dora"], "Inactive")]  # acted, notice still owed
    assert "told-deactivated" not in state["dora"]["marks"]
    assert state["erin"]["marks"] == []  # never claimed as notified
    assert state["fred"]["keys"] == [(keys["fred"], "Inactive")]  # not deleted untold
    proxy.calm()
    again = keyturn(*ENFORCE_ARGS, extra=via(proxy, 8))
    assert again.returncode == 0, again.stdout + again.stderr
    check_enforce_done(aws, keys)


@pytest.fixture
def lease_role(aws: LocalAws, tmp_path: Path) -> None:
    from keyturn.domain.leases import Role

    aws.client("iam").create_group(GroupName="devs")
    store(tmp_path).put_role(Role.build("dev", credential_type="iam_user", iam_groups=["devs"]))


@pytest.mark.parametrize("plan", [MILD, HOSTILE], ids=["mild", "hostile"])
def test_leases_under_faults_then_tidy_leaves_nothing_behind(
    plan: FaultPlan, proxy: FaultProxy, keyturn: Run, aws: LocalAws, tmp_path: Path, lease_role: Any
) -> None:
    proxy.plan = plan
    attempts = 8 if plan is MILD else 1
    issued, failed = [], 0
    for _ in range(4):
        done = keyturn("creds", "dev", "-f", "json", extra=via(proxy, attempts))
        if done.returncode == 0:
            issued.append(json.loads(done.stdout)["lease_id"])
        else:
            clean_failure(done)
            failed += 1
    revoke = keyturn("lease", "revoke-prefix", "aws/creds/dev", extra=via(proxy, attempts))
    if revoke.returncode != 0:
        clean_failure(revoke)
    tidy = keyturn("lease", "tidy", extra=via(proxy, attempts))
    if tidy.returncode != 0:
        clean_failure(tidy)
    if plan is HOSTILE:
        assert failed or revoke.returncode or tidy.returncode  # the faults did bite
    proxy.calm()
    # The later run: leases revoked (claims of failed attempts lapse in claim_for; here
    # the revoke-prefix is explicit and tidy has a 0 s margin) and orphans removed.
    keyturn("lease", "revoke-prefix", "aws/creds/dev", extra=via(proxy, 8))
    final = keyturn("lease", "tidy", extra=via(proxy, 8))
    assert final.returncode == 0, final.stdout + final.stderr
    states = check_lease_invariants(aws, store(tmp_path))
    assert set(states) <= {"REVOKED"}, states
    assert keyturn_users(aws) == {}


@pytest.mark.parametrize("plan", [MILD, HOSTILE], ids=["mild", "hostile"])
def test_audit_under_faults(
    plan: FaultPlan, proxy: FaultProxy, keyturn: Run, aws: LocalAws, tmp_path: Path
) -> None:
    keys = enforce_world(aws, tmp_path / "state")
    proxy.plan = plan
    attempts = 8 if plan is MILD else 1
    done = keyturn("audit", "-f", "json", "--key-ids", extra=via(proxy, attempts))
    if plan is MILD:
        assert done.returncode in (0, 3), done.stderr  # 3: keys out of policy (--check off)
        assert all(key_id in done.stdout for key_id in keys.values())
    else:
        if done.returncode not in (0, 3):
            clean_failure(done)
    proxy.calm()
    calm = keyturn("audit", "-f", "json", "--key-ids", extra=via(proxy, 8))
    assert calm.returncode in (0, 3), calm.stderr
    assert all(key_id in calm.stdout for key_id in keys.values())


class StallFirstCall(FaultProxy):
    """Stalls only the first request for `action`: the service creates, the client times
    out, botocore retries, and the retry succeeds (the case a blind retry gets wrong)."""

    def __init__(self, upstream: str, action: str) -> None:
        super().__init__(upstream)
        self.action = action

    def _decide(self, path: str, action: str | None) -> str:
        verdict = super()._decide(path, action)
        with self._lock:
            if action == self.action and not self.counts["stall"]:
                self.counts["stall"] += 1
                return "stall"
        return verdict


def test_a_stalled_create_access_key_leaves_the_lease_user_one_key(
    aws: LocalAws, keyturn: Run, tmp_path: Path, lease_role: Any
) -> None:
    """CreateAccessKey took effect but its answer never came: the retry's key is the one
    handed out, and the first key (its secret lost) must not live on until the revoke."""
    with StallFirstCall(aws.url, "CreateAccessKey") as stalling:
        stalling.plan = FaultPlan(stall_seconds=1.5)
        done = keyturn("creds", "dev", "-f", "json", extra=via(stalling, 8))
    assert stalling.counts["stall"] == 1  # the fault bit
    assert done.returncode == 0, done.stdout + done.stderr
    issued = json.loads(done.stdout)
    lease = store(tmp_path).get(issued["lease_id"])
    assert lease is not None
    assert keyturn_users(aws) == {lease.principal: [issued["access_key"]]}
    assert lease.key_id == issued["access_key"]
