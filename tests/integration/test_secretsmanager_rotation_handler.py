"""The Secrets Manager rotation function, driven step by step with real event payloads.

moto cannot invoke a Lambda (no docker), so the test plays Secrets Manager: it sends the
four events Secrets Manager sends, with one ClientRequestToken, each step twice (Secrets
Manager retries), and checks the secret and IAM after each. The secrets are named as the
deployment names them (`rotate.path` = keyturn/{account}/{user}): the name binds the user.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from keyturn.domain.errors import BadInputError, ConfigError
from keyturn.handlers.secretsmanager_rotation import BindingRefusedError, handler, parse_event
from tests.rotate_fixtures import AuthedAws

ACCOUNT = "123456789012"
TEMPLATE = "keyturn/{account}/{user}"


def secret_of(user: str) -> str:
    return TEMPLATE.format(account=ACCOUNT, user=user)


@pytest.fixture(autouse=True)
def fast_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", TEMPLATE)


def seed_secret(authed: AuthedAws, user: str) -> tuple[str, str]:
    (old,) = authed.seed_user(user)
    doc = {"UserName": user, "AccessKeyId": old.key_id, "SecretAccessKey": old.secret}
    arn = authed.client("secretsmanager").create_secret(
        Name=secret_of(user), SecretString=json.dumps(doc)
    )["ARN"]
    return arn, old.key_id


def event(arn: str, token: str, step: str) -> dict[str, Any]:
    return {"SecretId": arn, "ClientRequestToken": token, "Step": step}


def stage_doc(authed: AuthedAws, stage: str, user: str = "svc-app") -> dict[str, Any]:
    found = authed.client("secretsmanager").get_secret_value(
        SecretId=secret_of(user), VersionStage=stage
    )
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
    secret = stage_doc(authed, "AWSCURRENT", "svc-log")["SecretAccessKey"]
    captured = capsys.readouterr()
    assert secret not in json.dumps(results)
    assert secret not in captured.out + captured.err


def test_secret_of_the_wrong_shape_fails_clearly(authed: AuthedAws) -> None:
    authed.seed_user("svc-bad")
    arn = authed.client("secretsmanager").create_secret(
        Name=secret_of("svc-bad"), SecretString=json.dumps({"user": "svc-bad"})
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


# -- the attacker: whoever may PutSecretValue on their own rotated secret ----------------

STEP_NAMES = ("createSecret", "setSecret", "testSecret", "finishSecret")
CONSUMER_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "iam:ListAccessKeys",
                ],
                "Resource": "*",
            }
        ],
    }
)


def as_alice(authed: AuthedAws) -> tuple[str, Any]:
    """alice's rotated secret, and a Secrets Manager client signed with alice's own key
    (she may read and write her secret, and list keys: that is all the attack needs)."""
    arn, old = seed_secret(authed, "alice")
    authed.client("iam").put_user_policy(
        UserName="alice", PolicyName="consumer", PolicyDocument=CONSUMER_POLICY
    )
    key = authed.known[old]
    return arn, authed.server.client("secretsmanager", key_id=key.key_id, secret=key.secret)


def labels(authed: AuthedAws, user: str) -> dict[str, list[str]]:
    found = authed.client("secretsmanager").describe_secret(SecretId=secret_of(user))
    return {v: sorted(stages) for v, stages in found["VersionIdsToStages"].items()}


def tags(authed: AuthedAws, user: str) -> dict[str, str]:
    found = authed.client("iam").list_user_tags(UserName=user)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in found}


@pytest.mark.parametrize("forge_key_id", [False, True], ids=["UserName", "UserName+AccessKeyId"])
def test_rewritten_user_name_steals_no_key(
    authed: AuthedAws,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    forge_key_id: bool,
) -> None:
    """Issue 12 item 1: alice writes {"UserName": "admin"} into her own secret. Every step
    is refused with one clear error and a `refused` event; admin's keys, tags and alice's
    secret stay exactly as they were: no key is created for admin, none is retired."""
    (admin_key,) = authed.seed_user("admin")
    arn, sm = as_alice(authed)
    forged = stage_doc(authed, "AWSCURRENT", "alice") | {"UserName": "admin"}
    if forge_key_id:
        forged["AccessKeyId"] = admin_key.key_id  # key ids are not secret (ListAccessKeys)
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps(forged))
    before = (authed.keys("admin"), authed.keys("alice"), labels(authed, "alice"))
    token = str(uuid.uuid4())

    for step in STEP_NAMES:
        with pytest.raises(BindingRefusedError) as caught:
            handler(event(arn, token, step))
        message = str(caught.value)
        assert "\n" not in message
        assert f"secret {secret_of('alice')}: refused" in message
        assert f"keyturn's secret for 'admin' is {secret_of('admin')}" in message
        assert (authed.keys("admin"), authed.keys("alice"), labels(authed, "alice")) == before
    assert authed.keys("admin") == {admin_key.key_id: "Active"}
    assert tags(authed, "admin") == {}  # no journal: nothing was even begun for admin
    refusals = [r for r in caplog.records if r.getMessage().endswith("bind refused")]
    assert [getattr(r, "step", None) for r in refusals] == list(STEP_NAMES)
    assert {getattr(r, "secret", None) for r in refusals} == {secret_of("alice")}
    assert {getattr(r, "claimed_user", None) for r in refusals} == {"'admin'"}
    assert admin_key.secret not in caplog.text + capsys.readouterr().out


@pytest.mark.parametrize("claim", ["alice/../admin", "admin\nforged line", "x" * 300])
def test_claims_with_no_valid_secret_name_are_refused(authed: AuthedAws, claim: str) -> None:
    (admin_key,) = authed.seed_user("admin")
    arn, sm = as_alice(authed)
    forged = stage_doc(authed, "AWSCURRENT", "alice") | {"UserName": claim}
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps(forged))
    with pytest.raises(BindingRefusedError, match="refused") as caught:
        handler(event(arn, str(uuid.uuid4()), "createSecret"))
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 600
    assert authed.keys("admin") == {admin_key.key_id: "Active"}


def test_secret_not_named_by_the_template_is_refused(authed: AuthedAws) -> None:
    """A secret outside keyturn's names (its creator is unknown) rotates nobody's key."""
    (key,) = authed.seed_user("svc-other")
    doc = {"UserName": "svc-other", "AccessKeyId": key.key_id, "SecretAccessKey": key.secret}
    arn = authed.client("secretsmanager").create_secret(
        Name="prod/app/iam-key", SecretString=json.dumps(doc)
    )["ARN"]
    with pytest.raises(BindingRefusedError, match="prod/app/iam-key: refused"):
        handler(event(arn, str(uuid.uuid4()), "createSecret"))
    assert authed.keys("svc-other") == {key.key_id: "Active"}


def test_template_without_user_is_a_config_error(
    authed: AuthedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn, old = seed_secret(authed, "svc-fixed")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", "keyturn/shared-key")
    with pytest.raises(ConfigError, match=r"no \{user\}"):
        handler(event(arn, str(uuid.uuid4()), "createSecret"))
    assert authed.keys("svc-fixed") == {old: "Active"}


def test_pending_label_leaves_the_promoted_version(authed: AuthedAws) -> None:
    """Issue 13 item 10: after finishSecret (and its retry) AWSPENDING is on no version."""
    arn, old = seed_secret(authed, "svc-labels")
    token = str(uuid.uuid4())
    for step in STEP_NAMES:
        handler(event(arn, token, step))
    handler(event(arn, token, "finishSecret"))
    found = labels(authed, "svc-labels")
    assert found[token] == ["AWSCURRENT"]
    assert not any("AWSPENDING" in stages for stages in found.values())
    assert stage_doc(authed, "AWSPREVIOUS", "svc-labels")["AccessKeyId"] == old
