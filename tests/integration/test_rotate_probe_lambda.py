"""The consumer probe (issue 16) through the scheduled Rotate Lambda against moto: the
probe is a real Lambda function on moto's server (its Docker-less Lambda answers each
Invoke with a queued text), invoked over the wire by keyturn's adapter."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from keyturn.domain.errors import OperationFailedError
from keyturn.handlers.rotate import handler
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"pr{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    authed.enroll_with = os.environ


def probe(authed: AuthedAws, monkeypatch: pytest.MonkeyPatch, *answers: str) -> str:
    name = f"consumer-check-{uuid.uuid4().hex[:6]}"
    arn = authed.server.probe_function(
        name, *answers, key_id=authed.admin.key_id, secret=authed.admin.secret
    )
    monkeypatch.setenv("KEYTURN_ROTATE_PROBE", arn)
    return arn


def test_a_yes_lets_the_rotation_promote(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe(authed, monkeypatch, json.dumps({"ok": True}))
    (old,) = authed.seed_user("alice")
    (done,) = handler({"users": ["alice"]})["results"]
    assert authed.keys("alice") == {old.key_id: "Inactive", done["new_key_id"]: "Active"}


def test_a_no_stops_before_promotion_new_key_deleted_pending_discarded(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = probe(authed, monkeypatch, json.dumps({"ok": False, "reason": "WAF pins\nthe key"}))
    (old,) = authed.seed_user("alice")
    with pytest.raises(OperationFailedError) as failed:
        handler({"users": ["alice"]})
    line = str(failed.value)
    assert f"consumer probe {arn} said no: not ok" in line
    assert "'WAF pins?the key'" in line  # another principal's text: one quoted line
    assert authed.keys("alice") == {old.key_id: "Active"}  # new key deleted, old untouched
    name = f"{os.environ['KEYTURN_ROTATE_PATH'].split('/')[0]}/alice"
    stages = authed.client("secretsmanager").describe_secret(SecretId=name)["VersionIdsToStages"]
    assert not [v for v, labels in stages.items() if "AWSPENDING" in labels]
    # the next scheduled run finds nothing half-done, and rotates once the probe says yes
    authed.server.queue_probe_answers(json.dumps({"ok": True}))
    again = handler({"users": ["alice"]})
    assert [r["state"] for r in again["results"]] == ["old_deactivated"]


@pytest.mark.parametrize("answer", ['{"ok": "true"}', "ok", '[{"ok": true}]'])
def test_an_answer_not_in_the_documented_shape_is_a_no(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    probe(authed, monkeypatch, answer)
    (old,) = authed.seed_user("alice")
    with pytest.raises(OperationFailedError, match="said no"):
        handler({"users": ["alice"]})
    assert authed.keys("alice") == {old.key_id: "Active"}


def test_a_probe_name_that_is_not_a_function_is_refused_before_any_write(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyturn.domain.errors import KeyturnError

    (old,) = authed.seed_user("alice")
    monkeypatch.setenv("KEYTURN_ROTATE_PROBE", "arn:aws:s3:::not-a-function")
    with pytest.raises(KeyturnError, match=r"rotate\.probe"):
        handler({"users": ["alice"]})
    assert authed.keys("alice") == {old.key_id: "Active"}
