"""The Secrets Manager rotation function, driven step by step with real event payloads.

moto cannot invoke a Lambda (no docker), so the test plays Secrets Manager: it sends the
four events Secrets Manager sends, with one ClientRequestToken, each step twice (Secrets
Manager retries), and checks the secret and IAM after each.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from keyturn.domain.errors import BadInputError
from keyturn.handlers.secretsmanager_rotation import handler, parse_event
from tests.rotate_fixtures import AuthedAws

SECRET = "prod/app/iam-key"


@pytest.fixture(autouse=True)
def fast_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")


def seed_secret(authed: AuthedAws, user: str) -> tuple[str, str]:
    (old,) = authed.seed_user(user)
    doc = {"UserName": user, "AccessKeyId": old.key_id, "SecretAccessKey": old.secret}
    arn = authed.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(doc))[
        "ARN"
    ]
    return arn, old.key_id


def event(arn: str, token: str, step: str) -> dict[str, Any]:
    return {"SecretId": arn, "ClientRequestToken": token, "Step": step}


def stage_doc(authed: AuthedAws, stage: str) -> dict[str, Any]:
    found = authed.client("secretsmanager").get_secret_value(SecretId=SECRET, VersionStage=stage)
    doc: dict[str, Any] = json.loads(found["SecretString"])
    return doc


def test_four_steps_each_twice(authed: AuthedAws) -> None:
    arn, old = seed_secret(authed, "svc-app")
    token = str(uuid.uuid4())

    first = handler(event(arn, token, "createSecret"))
    again = handler(event(arn, token, "createSecret"))
    new = first["access_key_id"]
    assert again["access_key_id"] == new
    assert stage_doc(authed, "AWSPENDING")["AccessKeyId"] == new
    assert stage_doc(authed, "AWSCURRENT")["AccessKeyId"] == old  # not yet verified
    assert authed.keys("svc-app") == {old: "Active", new: "Active"}

    for _ in range(2):
        handler(event(arn, token, "setSecret"))
        handler(event(arn, token, "testSecret"))
    assert stage_doc(authed, "AWSCURRENT")["AccessKeyId"] == old

    for _ in range(2):
        done = handler(event(arn, token, "finishSecret"))
    assert done["access_key_id"] == new
    current = stage_doc(authed, "AWSCURRENT")
    assert current["AccessKeyId"] == new
    assert current["UserName"] == "svc-app"
    assert authed.authenticates(current["AccessKeyId"], current["SecretAccessKey"])
    assert stage_doc(authed, "AWSPREVIOUS")["AccessKeyId"] == old
    assert authed.keys("svc-app") == {old: "Inactive", new: "Active"}


def test_return_values_and_logs_hold_no_secret(
    authed: AuthedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    arn, _ = seed_secret(authed, "svc-log")
    token = str(uuid.uuid4())
    results = [
        handler(event(arn, token, step))
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret")
    ]
    secret = stage_doc(authed, "AWSCURRENT")["SecretAccessKey"]
    captured = capsys.readouterr()
    assert secret not in json.dumps(results)
    assert secret not in captured.out + captured.err


def test_secret_of_the_wrong_shape_fails_clearly(authed: AuthedAws) -> None:
    authed.seed_user("svc-bad")
    arn = authed.client("secretsmanager").create_secret(
        Name="bad-shape", SecretString=json.dumps({"user": "svc-bad"})
    )["ARN"]
    with pytest.raises(BadInputError, match="wrong shape"):
        handler(event(arn, str(uuid.uuid4()), "createSecret"))
    assert len(authed.keys("svc-bad")) == 1  # nothing created


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"ClientRequestToken": "x" * 36, "Step": "createSecret"},
        {"SecretId": "s", "ClientRequestToken": "short", "Step": "createSecret"},
        {"SecretId": "s", "ClientRequestToken": "x" * 36, "Step": "deleteSecret"},
    ],
)
def test_malformed_events_are_bad_input(bad: Any) -> None:
    with pytest.raises(BadInputError):
        parse_event(bad)
