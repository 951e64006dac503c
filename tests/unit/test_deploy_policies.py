"""The deployment artifacts agree with the code: policies from @requires, scoped resources
that IAM accepts (parliament), a SAM template that is current and valid (cfn-lint)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from parliament import analyze_policy_string, iam_definition

from keyturn.cli.main import main
from keyturn.deploy import render
from keyturn.deploy.functions import (
    FUNCTIONS,
    FunctionUnavailable,
    fill,
    member_role_document,
    policy_document,
)
from keyturn.deploy.resources import REFERENCE_NAME, RESOURCE_KIND

ROOT = Path(__file__).resolve().parents[2]
CONCRETE = {"AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1"}


def available() -> list[str]:
    names = []
    for name, function in FUNCTIONS.items():
        try:
            function.actions()
        except FunctionUnavailable:
            continue
        names.append(name)
    return names


def reference(action: str) -> list[str]:
    service, name = action.split(":")
    for entry in iam_definition:
        if entry["prefix"] == service:
            for privilege in entry["privileges"]:
                if privilege["privilege"].lower() == name.lower():
                    return [r["resource_type"] for r in privilege["resource_types"]]
    raise AssertionError(f"{action} is not an IAM action (AWS reference, via parliament)")


@pytest.mark.parametrize("action", sorted(RESOURCE_KIND))
def test_resource_kinds_match_the_aws_reference(action: str) -> None:
    kind = RESOURCE_KIND[action]
    types = [t.rstrip("*") for t in reference(action)]
    if kind == "":
        # "*" is right only when no resource type is required
        assert all(not t.endswith("*") for t in reference(action)), reference(action)
    else:
        assert REFERENCE_NAME[kind] in types, (action, kind, types)


@pytest.mark.parametrize("name", available())
def test_every_declared_action_has_a_known_resource(name: str) -> None:
    actions = FUNCTIONS[name].actions()
    assert actions, f"{name} declares no actions"
    assert set(actions) <= set(RESOURCE_KIND)


@pytest.mark.parametrize("name", [*available(), "member-role"])
def test_parliament_finds_nothing(name: str) -> None:
    document = member_role_document() if name == "member-role" else policy_document(FUNCTIONS[name])
    policy = analyze_policy_string(json.dumps(fill(document, CONCRETE)))
    assert [(f.issue, f.detail) for f in policy.findings] == []


def test_scoped_where_iam_allows() -> None:
    enforce = fill(policy_document(FUNCTIONS["enforce"]), CONCRETE)
    by_sid = {s["Sid"]: s for s in enforce["Statement"]}
    assert by_sid["Users"]["Resource"] == "arn:aws:iam::123456789012:user/*"
    assert by_sid["SesIdentities"]["Resource"] == "arn:aws:ses:eu-west-1:123456789012:identity/*"
    assert by_sid["AccountWide"]["Action"] == sorted(
        a for a in FUNCTIONS["enforce"].actions() if RESOURCE_KIND[a] == ""
    )
    leases = fill(policy_document(FUNCTIONS["leases"]), CONCRETE)
    by_sid = {s["Sid"]: s for s in leases["Statement"]}
    assert by_sid["Users"]["Resource"] == "arn:aws:iam::123456789012:user/keyturn*"
    assert by_sid["LeaseTable"]["Resource"].endswith(":table/keyturn-leases")
    assert "dynamodb:CreateTable" not in json.dumps(leases)  # the template creates it
    worker = fill(policy_document(FUNCTIONS["fanout-worker"]), CONCRETE)
    roles = [s for s in worker["Statement"] if s["Sid"] == "Roles"]
    assert roles[0]["Resource"] == "arn:aws:iam::*:role/keyturn-member"


def test_keyturn_policy_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "enforce", "--account", "123456789012", "--code-only"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    actions = {a for s in printed["Statement"] for a in s["Action"]}
    assert actions == set(FUNCTIONS["enforce"].actions())


def test_keyturn_policy_unknown_name_exits_2_with_the_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policy", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown function 'nope'" in err
    assert "enforce" in err
    assert "fanout-worker" in err


def test_template_is_generated_from_the_code() -> None:
    """Fails when a @requires or a function changed and the template was not re-rendered:
    run `python -m keyturn.deploy.render`."""
    assert render.main(["--check"]) == 0


def test_template_has_the_policies_of_the_registry() -> None:
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "deploy" / "template.yaml").read_text()
    loaded = yaml.safe_load(text)
    for name in available():
        function = FUNCTIONS[name]
        if not function.is_lambda:
            continue
        role = loaded["Resources"][f"{function.logical_id}Role"]
        stated = role["Properties"]["Policies"][0]["PolicyDocument"]
        assert stated == render.cfn_document(policy_document(function))


def test_cfn_lint_passes() -> None:
    lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert lint, "cfn-lint is in the dev extra"
    result = subprocess.run(
        [lint, str(ROOT / "deploy" / "template.yaml"), str(ROOT / "deploy" / "member-role.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_that_seals_may_use_the_journal_key_and_no_member_role_may() -> None:
    """Enforcement state is sealed with the central JournalKey: the enforce function and the
    fan-out worker hold GenerateMac/VerifyMac on it and are named in its key policy, with
    KEYTURN_TRUST_MAC_KEY set; the member-account role never holds a KMS action."""
    key = render.journal_key()["Properties"]["KeyPolicy"]["Statement"][1]
    allowed = json.dumps(key["Condition"]["ArnEquals"]["aws:PrincipalArn"])
    resources = render.template()[0]["Resources"]
    for name in render.SEALERS:
        function = FUNCTIONS[name]
        assert {"kms:GenerateMac", "kms:VerifyMac"} <= set(function.actions()), name
        assert f"role/${{AWS::StackName}}-{name}" in allowed, name  # exact, no wildcard
        role = resources[f"{function.logical_id}Role"]["Properties"]
        assert role["RoleName"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}, name
        variables = resources[f"{function.logical_id}Function"]["Properties"]["Environment"]
        assert "KEYTURN_TRUST_MAC_KEY" in variables["Variables"], name
    assert {"enforce", "fanout-worker"} <= set(render.SEALERS)
    member = {a for s in member_role_document()["Statement"] for a in s["Action"]}
    assert not any(action.startswith("kms:") for action in member)
