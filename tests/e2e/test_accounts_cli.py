"""`keyturn audit|enforce|rotate --org / --accounts` against moto's Organizations and STS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from moto.backends import get_backend

from keyturn.sandbox.aws import ACCOUNT, MEMBER_ROLE, LocalAws
from tests.e2e.conftest import Run, assert_one_clean_error

ROLE = MEMBER_ROLE


@pytest.fixture
def org(aws: LocalAws) -> list[str]:
    members = aws.create_organization("prod", "dev")
    for account in members:
        iam = aws.client_in_account("iam", account)
        iam.create_user(UserName=f"u-{account}", Tags=[{"Key": "Contact", "Value": "a@b.io"}])
        iam.create_access_key(UserName=f"u-{account}")
    return members


def age_keys(account: str, days: int) -> None:
    for user in get_backend("iam")[account]["global"].users.values():
        for key in user.access_keys:
            key.create_date = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None)


def test_audit_org_reports_every_account(keyturn: Run, org: list[str]) -> None:
    result = keyturn("audit", "--org", "--role-name", ROLE, "--format", "json")
    assert result.returncode == 0, result.stderr
    keys = json.loads(result.stdout)["keys"]
    assert sorted({(k["account"], k["user"]) for k in keys}) == sorted(
        (account, f"u-{account}") for account in org
    )


def test_enforce_one_failing_account_does_not_stop_the_others(
    keyturn: Run, aws: LocalAws, org: list[str]
) -> None:
    good, bad = org
    age_keys(good, 40)
    age_keys(bad, 40)
    # the bad account lacks the configured exempt group (a bad tag no longer fails a run:
    # it flags one user and the run goes on, issue 12)
    aws.client("iam").create_group(GroupName="break-glass")
    aws.client_in_account("iam", good).create_group(GroupName="break-glass")

    result = keyturn(
        "enforce",
        "--accounts",
        f"{good},{bad},{ACCOUNT}",
        "--role-name",
        ROLE,
        "--json",
        env={"SOURCEMAIL": "keys@example.com", "KEYTURN_POLICY_EXEMPT_GROUPS": "break-glass"},
    )
    assert result.returncode == 1, result.stderr
    shown = json.loads(result.stdout)
    assert sorted(shown["accounts"]) == sorted([good, ACCOUNT])
    assert [step["user"] for step in shown["accounts"][good]["steps"]] == [f"u-{good}"]
    assert list(shown["failed_accounts"]) == [bad]
    assert "1 account(s) failed" in result.stderr
    assert bad in result.stderr
    assert "Traceback" not in result.stderr


def test_enforce_org_check_fails_when_any_account_needs_action(
    keyturn: Run, aws: LocalAws, org: list[str]
) -> None:
    """`--check` under --org: one due key in one account is a finding (exit 3), never 0;
    `--json` is one keyturn.enforce/v1 document with one per account inside."""
    due, fresh = org
    age_keys(due, 40)
    aws.client_in_account("ses", due).verify_email_identity(EmailAddress="keys@example.com")
    env = {"SOURCEMAIL": "keys@example.com", "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never"}
    args = ("enforce", "--org", "--role-name", ROLE, "--check")
    result = keyturn(*args, "--json", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["schema"] == "keyturn.enforce/v1"
    assert {doc["schema"] for doc in shown["accounts"].values()} == {"keyturn.enforce/v1"}
    assert [step["action"] for step in shown["accounts"][due]["steps"]] == ["notify"]
    assert shown["accounts"][fresh]["steps"] == []
    assert f"1 account(s) need action: {due}" in result.stderr
    # acted on (sealed notices in the member account), the plan is empty again: a pass
    applied = keyturn("enforce", "--org", "--role-name", ROLE, "--apply", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "1 notified" in applied.stdout
    again = keyturn(*args, "--json", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["accounts"][due]["ignored_tags"] == []  # its seal holds


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--accounts", "12345"), "12-digit"),
        (("--accounts", "111111111111", "--org"), "give one of them"),
    ],
)
def test_bad_account_flags_exit_2(
    keyturn: Run, aws: LocalAws, args: tuple[str, ...], said: str
) -> None:
    line = assert_one_clean_error(keyturn("audit", *args), 2)
    assert said in line


def test_rotate_across_accounts_stores_each_key_in_its_own_account(
    keyturn: Run, aws: LocalAws, org: list[str]
) -> None:
    env = {
        "KEYTURN_ROTATE_STORE": "secretsmanager",
        "KEYTURN_ROTATE_PATH": "iam/{account}/{user}",
        "KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS": "0",
        "KEYTURN_ROTATE_ENROLL_HOLD_DAYS": "0",
    }
    for account in org:
        age_keys(account, 40)
    skipped = keyturn("rotate", "--org", "--role-name", ROLE, "--due", env=env)
    assert skipped.returncode == 0, skipped.stderr + skipped.stdout
    assert "due, not enrolled" in skipped.stderr
    for account in org:  # an operator enrolls each account's user (its first rotation)
        enrolled = keyturn(
            "enroll", f"u-{account}", "--accounts", account, "--role-name", ROLE, env=env
        )
        assert enrolled.returncode == 0, enrolled.stderr + enrolled.stdout
        age_keys(account, 40)
    result = keyturn("rotate", "--org", "--role-name", ROLE, "--due", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    for account in org:
        assert f"{account}/u-{account}" in result.stdout
        secrets = aws.client_in_account("secretsmanager", account)
        stored = json.loads(
            secrets.get_secret_value(
                SecretId=f"iam/{account}/u-{account}", VersionStage="AWSCURRENT"
            )["SecretString"]
        )
        keys = aws.client_in_account("iam", account).list_access_keys(UserName=f"u-{account}")
        active = [k["AccessKeyId"] for k in keys["AccessKeyMetadata"] if k["Status"] == "Active"]
        assert active == [stored["AccessKeyId"]]


def test_rotate_rollback_is_one_account_at_a_time(keyturn: Run, aws: LocalAws) -> None:
    line = assert_one_clean_error(keyturn("rotate", "--org", "--rollback", "alice"), 2)
    assert "one account at a time" in line


def test_a_refused_role_is_named_as_such(keyturn: Run, aws: LocalAws, org: list[str]) -> None:
    """The caller may not assume the member role: the failure says AssumeRole, not IAM."""
    iam = aws.client("iam")
    iam.create_user(UserName="no-assume")
    iam.put_user_policy(
        UserName="no-assume",
        PolicyName="iam-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="no-assume")["AccessKey"]
    aws.set_authentication(True)
    try:
        result = keyturn(
            "audit",
            "--accounts",
            org[0],
            "--role-name",
            ROLE,
            "--format",
            "json",
            env={
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
        )
    finally:
        aws.set_authentication(False)
    assert result.returncode == 1, result.stderr
    assert "sts:AssumeRole" in result.stderr
    assert f"role {ROLE} in {org[0]}" in result.stderr
    assert "GenerateCredentialReport" not in result.stderr


# -- no false green (issue 13 item 1) ------------------------------------------------------


def suspend_every_account() -> None:
    backend = get_backend("organizations")[ACCOUNT]["global"]
    for account in backend.accounts:
        account.status = account.state = "SUSPENDED"


@pytest.mark.parametrize(
    "command",
    [
        ("audit", "--org", "--check", "--format", "json"),
        ("enforce", "--org", "--check", "--json"),
    ],
)
def test_an_org_run_over_no_account_is_never_a_pass(
    keyturn: Run, aws: LocalAws, command: tuple[str, ...]
) -> None:
    aws.create_organization("prod")
    suspend_every_account()
    result = keyturn(*command, "--role-name", ROLE, env={"SOURCEMAIL": "keys@example.com"})
    line = assert_one_clean_error(result, 1)
    assert "no ACTIVE account: nothing was checked" in line


def test_an_org_audit_that_reached_no_account_prints_no_empty_report(
    keyturn: Run, aws: LocalAws, org: list[str]
) -> None:
    """Every AssumeRole refused: an error, not `"source": "none", "keys": []` and exit 0."""
    iam = aws.client("iam")
    iam.create_user(UserName="no-assume")
    iam.put_user_policy(
        UserName="no-assume",
        PolicyName="no-sts",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["iam:*", "organizations:*"], "Resource": "*"}
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="no-assume")["AccessKey"]
    aws.set_authentication(True)
    try:
        result = keyturn(
            "audit",
            "--org",
            "--check",
            "--format",
            "json",
            "--role-name",
            ROLE,
            env={
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
        )
    finally:
        aws.set_authentication(False)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "account(s) failed" in result.stderr
    assert "error: no account was audited" in result.stderr
    assert "Traceback" not in result.stderr
