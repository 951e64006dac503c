"""retire = "when-quiet" in the scheduled rotation Lambda against moto (issue 16): over
several scheduled runs, an old key a consumer keeps using is never deactivated within the
bound; a quiet one is; the bound escalates or deactivates as configured.

Time passes by moving the rotation's sealed promotion time back (re-sealed with keyturn's
own key, as keyturn would have written it), and a consumer's use by setting the key's
last-used record in moto's backend (keyturn.sandbox.aws.LocalAws.set_last_used)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from keyturn.domain.errors import OperationFailedError
from keyturn.domain.rotation import RotationRecord
from keyturn.handlers.rotate import handler
from keyturn.sandbox.aws import REGION
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"q{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("KEYTURN_ROTATE_RETIRE", "when-quiet")
    monkeypatch.setenv("KEYTURN_ROTATE_QUIET_HOURS", "5")
    monkeypatch.setenv("KEYTURN_ROTATE_MAX_OVERLAP_DAYS", "2")
    authed.enroll_with = os.environ


def journal() -> object:
    from keyturn.adapters.iam_rotation import IamTagJournal
    from keyturn.config import load_settings
    from keyturn.wiring import build_authenticator, build_aws

    settings = load_settings().settings
    aws = build_aws(settings)
    return IamTagJournal(aws.iam(), build_authenticator(settings, aws), aws.account_id())


def hours_pass(user: str, hours: float) -> RotationRecord:
    """The rotation's times, moved `hours` into the past (sealed, as keyturn writes them)."""
    from keyturn.adapters.iam_rotation import IamTagJournal

    tags = journal()
    assert isinstance(tags, IamTagJournal)
    record = tags.read(user)
    assert isinstance(record, RotationRecord)
    assert record.promoted_at is not None
    back = timedelta(hours=hours)
    moved = replace(
        record, intent_at=record.intent_at - back, promoted_at=record.promoted_at - back
    )
    tags.write(moved)
    return moved


def message(result: dict[str, object], user: str) -> str:
    found = [r for r in result["results"] if r["user"] == user]  # type: ignore[attr-defined]
    assert len(found) == 1, result
    return str(found[0]["message"])


def test_a_used_old_key_waits_across_runs_escalates_at_the_bound_then_retires_once_quiet(
    authed: AuthedAws,
) -> None:
    (old,) = authed.seed_user("alice")
    first = handler({"users": ["alice"]})
    new = first["results"][0]["new_key_id"]
    assert "old key not used since promotion" in message(first, "alice")
    assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}

    # the consumer keeps calling with the old key; every scheduled run waits
    for run, hours in enumerate((1, 20, 20)):
        hours_pass("alice", hours)
        authed.server.set_last_used(old.key_id, 0, service="sqs", region=REGION)
        later = handler({"due": run == 0})  # the first: alice's old key is "due"
        assert message(later, "alice").startswith(f"old key still used by sqs in {REGION} ")
        assert message(later, "alice").endswith(" min ago, waiting")
        assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}

    # past the 2-day bound, still used: escalated, never deactivated
    hours_pass("alice", 8)
    authed.server.set_last_used(old.key_id, 0, service="sqs", region=REGION)
    with pytest.raises(OperationFailedError, match=f"alice: old key still used by sqs in {REGION}"):
        handler({"due": False})
    assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}

    # the consumer moved: 6 h without use (quiet is 5 h) retires the old key
    authed.server.set_last_used(old.key_id, 6 / 24, service="sqs", region=REGION)
    done = handler({"due": False})
    assert [r["state"] for r in done["results"]] == ["old_deactivated"]
    assert authed.keys("alice") == {old.key_id: "Inactive", new: "Active"}


def test_a_quiet_old_key_is_retired_once_the_quiet_period_passed(authed: AuthedAws) -> None:
    (old,) = authed.seed_user("alice")
    new = handler({"users": ["alice"]})["results"][0]["new_key_id"]
    hours_pass("alice", 4)
    assert "waiting" in message(handler({"due": False}), "alice")
    assert authed.keys("alice") == {old.key_id: "Active", new: "Active"}
    hours_pass("alice", 1)
    handler({"due": False})
    assert authed.keys("alice") == {old.key_id: "Inactive", new: "Active"}


def test_at_the_bound_deactivate_retires_a_used_key_and_says_so(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_ON_MAX_OVERLAP", "deactivate")
    (old,) = authed.seed_user("alice")
    new = handler({"users": ["alice"]})["results"][0]["new_key_id"]
    hours_pass("alice", 48)
    authed.server.set_last_used(old.key_id, 0)
    result = handler({"due": False})
    assert "deactivating it anyway" in " ".join(result["results"][0]["warnings"])
    assert authed.keys("alice") == {old.key_id: "Inactive", new: "Active"}
