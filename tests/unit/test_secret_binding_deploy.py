"""The deployment keeps the Secrets Manager rotation function's binding sound.

The function binds a secret to its IAM user by the secret's name (rotate.path rendered for
the user), which holds only while nobody but keyturn can create secrets under the prefix.
The generated template must therefore grant CreateSecret to keyturn's scheduled Rotate
function alone, scoped to `${SecretPrefix}*`; the rotation function itself gets none, and
its rotate.path lies under that prefix and names {user}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIXED = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}*"
)


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "deploy" / "template.yaml").read_text()
    found: dict[str, Any] = yaml.safe_load(text)["Resources"]
    return found


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement a role can hold, both branches of a conditional one included
    (`Fn::If [condition, statement, AWS::NoValue]`, e.g. the probe's grant)."""
    policies = resource.get("Properties", {}).get("Policies", [])
    found: list[dict[str, Any]] = []
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                found += [s for s in statement["Fn::If"][1:] if "Action" in s]
            else:
                found.append(statement)
    return found


def grants(statement: dict[str, Any], action: str) -> bool:
    actions = statement["Action"]
    actions = [actions] if isinstance(actions, str) else actions
    service = action.split(":")[0]
    return any(a in (action, f"{service}:*", "*") for a in actions)


def test_only_rotate_may_create_secrets_and_only_under_the_prefix(
    resources: dict[str, Any],
) -> None:
    creators = {
        name: statement
        for name, resource in resources.items()
        for statement in statements(resource)
        if grants(statement, "secretsmanager:CreateSecret")
    }
    assert set(creators) == {"RotateRole"}
    assert creators["RotateRole"]["Resource"] == {"Fn::Sub": PREFIXED}


def test_rotation_function_reads_only_the_prefix_and_renders_names_under_it(
    resources: dict[str, Any],
) -> None:
    role = resources["SecretsManagerRotationRole"]
    secrets = [s for s in statements(role) if any("secretsmanager:" in a for a in s["Action"])]
    assert [s["Resource"] for s in secrets] == [{"Fn::Sub": PREFIXED}]
    variables = resources["SecretsManagerRotationFunction"]["Properties"]["Environment"]
    path = variables["Variables"]["KEYTURN_ROTATE_PATH"]["Fn::Sub"]
    assert path.startswith("${SecretPrefix}")
    assert "{user}" in path
