"""Issue 17: a default deployment rotates nobody until an operator enrolls a user.

The Rotate function runs with the environment deploy/template.yaml gives it, rendered with
the template's own parameter defaults (StoreKind secretsmanager, DryRun true, ...), against
moto's server: the KMS key the template creates is made in moto, everything else is the
template's. The schedule sends `{}`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from keyturn.adapters.iam_rotation import JOURNAL_TAG
from keyturn.domain.enrollment import ENROLL_TAG
from keyturn.handlers.rotate import handler
from tests.rotate_fixtures import AuthedAws

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"


def _condition(name: str, params: dict[str, str], conditions: dict[str, Any]) -> bool:
    """A template condition at the parameters' values (Equals, Not, And, Or, Condition)."""

    def value(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((op, arg),) = node.items()
            if op == "Ref":
                return params[arg]
            if op == "Fn::Equals":
                return value(arg[0]) == value(arg[1])
            if op == "Fn::Not":
                return not value(arg[0])
            if op == "Fn::And":
                return all(value(a) for a in arg)
            if op == "Fn::Or":
                return any(value(a) for a in arg)
            if op == "Condition":
                return value(conditions[arg])
            raise AssertionError(f"unexpected {op} in a condition")
        return node

    return bool(value(conditions[name]))


def _resolve(
    value: Any, params: dict[str, str], atts: dict[str, str], conditions: dict[str, Any]
) -> Any:
    """The few intrinsic functions the function environment uses, at parameter defaults."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return params.get(arg, "\0")  # a resource's Ref (the notice topic): left out
        if name == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], arg)
        if name == "Fn::GetAtt":
            return atts[".".join(arg)]
        if name == "Fn::If":
            condition, yes, no = arg
            chosen = yes if _condition(condition, params, conditions) else no
            return _resolve(chosen, params, atts, conditions)
    return value


def template_environment(function: str, atts: dict[str, str]) -> dict[str, str]:
    document = yaml.safe_load(TEMPLATE.read_text())
    params = {name: str(p.get("Default", "")) for name, p in document["Parameters"].items()}
    conditions = document.get("Conditions", {})
    params.update({"AWS::NoValue": "\0", "AWS::Region": "us-east-1"})
    variables = document["Resources"][function]["Properties"]["Environment"]["Variables"]
    found = {}
    for name, raw in variables.items():
        value = _resolve(raw, params, atts, conditions)
        if value != "\0":
            found[name] = str(value)
    return found


@pytest.fixture
def deployed(authed: AuthedAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key = authed.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    env = template_environment("RotateFunction", {"JournalKey.Arn": key["KeyMetadata"]["Arn"]})
    assert env["KEYTURN_ROTATE_STORE"] == "secretsmanager"  # the template's default
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "keyturn-rotate")  # as in Lambda
    return env


def secrets(authed: AuthedAws) -> list[str]:
    return [s["Name"] for s in authed.client("secretsmanager").list_secrets()["SecretList"]]


def test_a_fresh_default_deployment_rotates_nobody(authed: AuthedAws, deployed: Any) -> None:
    (stale,) = authed.seed_user("stale", age_days=45)
    (older,) = authed.seed_user("older", age_days=400)
    result = handler({})
    assert result["results"] == []
    assert result["due_not_enrolled"] == ["older", "stale"]
    assert authed.keys("stale") == {stale.key_id: "Active"}
    assert authed.keys("older") == {older.key_id: "Active"}
    assert secrets(authed) == []  # no store entry made for anyone


def test_an_event_naming_a_user_cannot_enroll_it(authed: AuthedAws, deployed: Any) -> None:
    (key,) = authed.seed_user("stale", age_days=45)
    result = handler({"users": ["stale"], "due": False})
    assert result["results"] == []
    assert result["due_not_enrolled"] == ["stale"]
    assert authed.keys("stale") == {key.key_id: "Active"}


def test_an_enrolled_due_user_is_rotated_and_the_rest_reported(
    authed: AuthedAws, deployed: Any
) -> None:
    (enrolled_key,) = authed.seed_user("enrolled", age_days=45)
    (other_key,) = authed.seed_user("other", age_days=45)
    authed.enroll("enrolled")  # sealed with the deployment's KMS key
    result = handler({})
    (done,) = result["results"]
    assert done["user"] == "enrolled"
    assert done["old_key_id"] == enrolled_key.key_id
    assert authed.keys("enrolled")[done["new_key_id"]] == "Active"
    assert result["due_not_enrolled"] == ["other"]
    assert authed.keys("other") == {other_key.key_id: "Active"}


@pytest.mark.parametrize(
    "forged",
    [
        "v1:secretsmanager:1700000000:" + "A" * 43,  # the shape, any seal
        "v1:secretsmanager:1700000000",  # no seal at all
        "yes",
        "true",
    ],
)
def test_a_tag_claiming_enrollment_enrolls_nobody(
    authed: AuthedAws, deployed: Any, forged: str
) -> None:
    (key,) = authed.seed_user("mallory", age_days=45, tags={ENROLL_TAG: forged})
    result = handler({})
    assert result["results"] == []
    assert result["due_not_enrolled"] == ["mallory"]
    (line,) = [item["message"] for item in result["untrusted"]]
    assert line.startswith("mallory: ignored keyturn state")
    assert authed.keys("mallory") == {key.key_id: "Active"}
    assert JOURNAL_TAG not in {
        t["Key"] for t in authed.client("iam").list_user_tags(UserName="mallory")["Tags"]
    }


def test_an_enrollment_copied_from_another_user_enrolls_nobody(
    authed: AuthedAws, deployed: Any
) -> None:
    authed.seed_user("alice", age_days=45)
    authed.enroll("alice")
    tags = authed.client("iam").list_user_tags(UserName="alice")["Tags"]
    sealed = next(t["Value"] for t in tags if t["Key"] == ENROLL_TAG)
    (key,) = authed.seed_user("mallory", age_days=45, tags={ENROLL_TAG: sealed})
    result = handler({})
    assert [r["user"] for r in result["results"]] == ["alice"]
    assert authed.keys("mallory") == {key.key_id: "Active"}
    assert "mallory" in json.dumps(result["untrusted"])


def test_a_lambda_without_the_kms_key_refuses_to_start(
    authed: AuthedAws, deployed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyturn.domain.errors import ConfigError

    monkeypatch.delenv("KEYTURN_TRUST_MAC_KEY")
    authed.seed_user("stale", age_days=45)
    with pytest.raises(ConfigError, match="KMS"):
        handler({})
    assert os.environ["AWS_LAMBDA_FUNCTION_NAME"]
