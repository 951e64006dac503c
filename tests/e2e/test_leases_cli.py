"""`keyturn role/creds/lease` as a user runs them: a subprocess against moto's server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.domain.leases import LeaseState, Role
from keyturn.sandbox.aws import LocalAws
from keyturn.services.leases import ISSUE_STEPS, LeaseEngineSettings, LeaseService
from tests.conftest import run_cli

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


@pytest.fixture
def cli(aws: LocalAws, tmp_path: Path) -> Any:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        **aws.env(),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KEYTURN_LEASES_TIDY_MARGIN": "0s",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "KEYTURN_LEASES_READY_INTERVAL_SECONDS": "0",
    }

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli({**env, **(extra or {})}, *args)

    return run


@pytest.fixture
def policy_arn(aws: LocalAws) -> str:
    arn: str = aws.client("iam").create_policy(PolicyName="s3-list", PolicyDocument=POLICY)[
        "Policy"
    ]["Arn"]
    return arn


def keyturn_users(aws: LocalAws) -> list[str]:
    return [
        u["UserName"]
        for u in aws.client("iam").list_users()["Users"]
        if u["UserName"].startswith("keyturn")
    ]


def write_role(cli: Any, policy_arn: str, name: str = "dev") -> None:
    done = cli(
        "role",
        "write",
        name,
        "--credential-type",
        "iam_user",
        "--policy-arn",
        policy_arn,
        "--max-ttl",
        "2h",
        "--iam-tag",
        "team=a",
    )
    assert done.returncode == 0, done.stderr


def store(tmp_path: Path) -> SqliteLeaseStore:
    """The CLI's store, read directly: setup and checks without a process each."""
    return SqliteLeaseStore(tmp_path / "state" / "keyturn" / "leases.db")


def seed_roles(tmp_path: Path, policy_arn: str) -> None:
    roles = store(tmp_path)
    roles.put_role(
        Role.build("dev", credential_type="iam_user", policy_arns=[policy_arn], max_ttl="2h")
    )
    roles.put_role(
        Role.build(
            "full",
            credential_type="iam_user",
            policy_arns=[policy_arn],
            policy_document=POLICY,
            iam_groups=["devs"],
        )
    )


def test_creds_env_output_authenticates_and_lease_commands_work(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    write_role(cli, policy_arn)
    issued = cli("creds", "dev", "--ttl", "1h", "--format", "env")
    assert issued.returncode == 0, issued.stderr
    script = issued.stdout + '\nprintf \'%s %s\' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"'
    key_id, secret = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    who = aws.client("sts", key_id=key_id, secret=secret).get_caller_identity()
    assert ":user/keyturn-" in who["Arn"]
    lease_id = issued.stdout.split("# lease ")[1].split()[0]

    listed = cli("lease", "list", "--prefix", "aws/creds/dev", "--format", "json")
    answer = json.loads(listed.stdout)
    assert answer["schema"] == "keyturn.lease/v1"
    [record] = answer["leases"]
    assert record["status"] == "ACTIVE"
    assert record["lease_id"] == lease_id
    assert record["key_id"] == key_id
    assert secret not in listed.stdout
    db = tmp_path / "state" / "keyturn" / "leases.db"
    assert oct(db.stat().st_mode & 0o777) == "0o600"

    renewed = cli("lease", "renew", lease_id, "--increment", "3h")
    assert renewed.returncode == 0
    assert "max TTL" in renewed.stderr
    revoked = cli("lease", "revoke", lease_id)
    assert revoked.returncode == 0
    assert "revoked" in revoked.stdout
    assert keyturn_users(aws) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["creds", "nope"], "unknown role 'nope'"),
        (["creds", "dev", "--ttl", "3h"], "max_ttl 2h"),
        (["creds", "dev", "--ttl", "soon"], "not a duration"),
        (["lease", "revoke", "aws/creds/dev"], "not a lease id"),
        (["lease", "renew", "../etc/passwd"], "not a lease id"),
        (["lease", "revoke-prefix", "aws/creds/"], "must start with aws/creds/ROLE"),
        (
            [
                "role",
                "write",
                "x",
                "--credential-type",
                "iam_user",
                "--policy-document",
                "{not json",
            ],
            "not valid JSON",
        ),
        (
            [
                "role",
                "write",
                "x",
                "--credential-type",
                "iam_user",
                "--policy-document",
                "@missing.json",
            ],
            "cannot read",
        ),
        (
            [
                "role",
                "write",
                "x",
                "--credential-type",
                "iam_user",
                "--policy-arn",
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "--username-template",
                "{prefix}-{role}",
            ],
            "no {random}",
        ),
        (["role", "write", "x", "--credential-type", "magic"], "credential_type"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path, args: list[str], message: str
) -> None:
    seed_roles(tmp_path, policy_arn)
    done = cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert keyturn_users(aws) == []
    assert store(tmp_path).list_leases() == []
    assert [role.name for role in store(tmp_path).list_roles()] == ["dev", "full"]


def test_bad_role_in_config_file_is_a_config_error(cli: Any, aws: LocalAws, tmp_path: Path) -> None:
    config = tmp_path / "k.toml"
    config.write_text(
        '[leases.roles.dev]\ncredential_type = "iam_user"\npolicy_document = "{oops"\n'
    )
    done = cli("--config", str(config), "creds", "dev")
    assert done.returncode == 2
    assert "[leases.roles.dev]" in done.stderr
    assert "not valid JSON" in done.stderr
    assert keyturn_users(aws) == []


def test_role_declared_in_config_issues(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    config = tmp_path / "k.toml"
    config.write_text(
        f'[leases.roles.cfg]\ncredential_type = "iam_user"\n'
        f'policy_arns = ["{policy_arn}"]\ndefault_ttl = "30m"\n'
    )
    listed = cli("--config", str(config), "role", "list")
    assert "cfg" in listed.stdout
    assert str(config) in listed.stdout
    issued = cli("--config", str(config), "creds", "cfg", "--format", "json")
    assert issued.returncode == 0, issued.stderr
    assert json.loads(issued.stdout)["lease_duration"] == "30m"
    refused = cli("--config", str(config), "role", "delete", "cfg")
    assert refused.returncode == 2
    assert "declared in" in refused.stderr


@pytest.mark.parametrize("step", ISSUE_STEPS)
def test_sigkill_at_each_issue_step_then_tidy_leaves_no_user(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path, step: str
) -> None:
    seed_roles(tmp_path, policy_arn)
    aws.client("iam").create_group(GroupName="devs")
    crashed = cli("creds", "full", extra={"KEYTURN_TEST_CRASH_AFTER": step})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "aws_secret" not in crashed.stdout.lower()
    tidied = cli("lease", "tidy")
    assert tidied.returncode == 0, tidied.stdout + tidied.stderr
    if step == "active":  # the lease was complete: tidy keeps it until it expires
        assert len(keyturn_users(aws)) == 1
        assert cli("lease", "revoke-prefix", "aws/creds/full").returncode == 0
    assert keyturn_users(aws) == []
    assert {lease.state for lease in store(tmp_path).list_leases()} == {LeaseState.REVOKED}


def test_two_processes_revoking_the_same_leases(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    seed_roles(tmp_path, policy_arn)
    issuer = LeaseService(
        store(tmp_path),
        IamLeaseAdmin(aws.client("iam")),
        StsLeaseIssuer(aws.client("sts")),
        SystemClock(),
        LeaseEngineSettings(),
    )
    for _ in range(10):
        issuer.issue("dev")
    env_cmd = [
        sys.executable,
        "-c",
        "from keyturn.cli.main import run; run()",
        "lease",
        "revoke-prefix",
        "aws/creds/dev",
    ]
    env = {**os.environ, **aws.env(), "XDG_STATE_HOME": str(tmp_path / "state")}
    procs = [
        subprocess.Popen(env_cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    revoked_lines = [
        line for out in outputs for line in out.splitlines() if line.endswith(": revoked")
    ]
    assert len(revoked_lines) == 10  # each lease revoked by exactly one process
    assert keyturn_users(aws) == []


# -- trust and operator experience (issues 12 and 13) ---------------------------------------


def test_tidy_leaves_a_look_alike_with_copied_tags_and_says_so_in_one_line(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    write_role(cli, policy_arn)
    issued = json.loads(cli("creds", "dev", "--format", "json").stdout)
    iam = aws.client("iam")
    tags = iam.list_user_tags(UserName=issued["principal"])["Tags"]
    iam.create_user(UserName="keyturn-deployer", Tags=tags)
    key = iam.create_access_key(UserName="keyturn-deployer")["AccessKey"]["AccessKeyId"]
    assert cli("lease", "revoke", issued["lease_id"]).returncode == 0

    events = tmp_path / "events.jsonl"
    tidied = cli("lease", "tidy", "--events", str(events))

    assert tidied.returncode == 0, tidied.stdout + tidied.stderr
    [line] = [x for x in tidied.stdout.splitlines() if "keyturn-deployer" in x]
    assert "not provably keyturn's" in line
    assert "left untouched" in line
    assert keyturn_users(aws) == ["keyturn-deployer"]
    found = iam.list_access_keys(UserName="keyturn-deployer")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in found] == [key]
    [event] = [json.loads(x) for x in events.read_text().splitlines()]
    assert event["event"] == "lease.tidy.not_ours"
    as_json = json.loads(cli("lease", "tidy", "--format", "json").stdout)
    assert as_json["schema"] == "keyturn.lease/v1"
    assert len(as_json["not_ours"]) == 1


def test_revoke_prefix_takes_whole_segments(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    for role in ("dev", "dev-admin", "developers"):
        write_role(cli, policy_arn, role)
        assert cli("creds", role, "--format", "json").returncode == 0
    done = cli("lease", "revoke-prefix", "aws/creds/dev", "--format", "json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["schema"] == "keyturn.lease/v1"
    assert answer["ok"] is True
    [outcome] = answer["outcomes"]
    assert outcome["lease_id"].startswith("aws/creds/dev/")
    live = {lease.role for lease in store(tmp_path).list_leases() if lease.state.value == "ACTIVE"}
    assert live == {"dev-admin", "developers"}
    assert len(keyturn_users(aws)) == 2


def test_an_expired_lease_lists_as_expired_not_active(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    write_role(cli, policy_arn)
    issued = json.loads(cli("creds", "dev", "--format", "json").stdout)
    leases = store(tmp_path)
    lease = leases.get(issued["lease_id"])
    assert lease is not None
    past = datetime.now(UTC) - timedelta(minutes=1)
    assert leases.replace(lease, replace(lease, expires=past)) is not None

    table = cli("lease", "list")
    [row] = [x for x in table.stdout.splitlines() if issued["principal"][:20] in x]
    assert "EXPIRED" in row
    assert "ACTIVE" not in row
    [record] = json.loads(cli("lease", "list", "--format", "json").stdout)["leases"]
    assert (record["state"], record["status"]) == ("ACTIVE", "EXPIRED")


def test_renew_without_increment_never_moves_the_expiry_earlier(
    cli: Any, aws: LocalAws, policy_arn: str
) -> None:
    done = cli(
        "role", "write", "dev", "--credential-type", "iam_user", "--policy-arn", policy_arn,
        "--default-ttl", "1h", "--max-ttl", "8h",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    issued = json.loads(cli("creds", "dev", "--ttl", "4h", "--format", "json").stdout)
    renewed = cli("lease", "renew", issued["lease_id"], "--format", "json")
    assert renewed.returncode == 0, renewed.stderr
    answer = json.loads(renewed.stdout)
    assert answer["lease"]["expires"] == issued["lease_expires"]
    assert "never shortens" in answer["warning"]
    plain = cli("lease", "renew", issued["lease_id"])
    assert "never shortens" in plain.stderr


def test_tidy_names_the_lease_it_holds_back(
    cli: Any, aws: LocalAws, policy_arn: str, tmp_path: Path
) -> None:
    seed_roles(tmp_path, policy_arn)
    margin = {"KEYTURN_LEASES_TIDY_MARGIN": "15m"}
    crashed = cli("creds", "dev", extra={**margin, "KEYTURN_TEST_CRASH_AFTER": "create_user"})
    assert crashed.returncode == -signal.SIGKILL
    [pending] = store(tmp_path).list_leases()
    tidied = cli("lease", "tidy", extra=margin)
    assert tidied.returncode == 0
    assert "no expired or abandoned leases" not in tidied.stdout
    [line] = [x for x in tidied.stdout.splitlines() if pending.lease_id in x]
    assert "15m tidy margin" in line
    assert keyturn_users(aws) == [pending.principal]  # held back, not removed


@pytest.fixture(scope="module")
def aws_with_managed_policies() -> Any:
    with LocalAws(aws_managed_policies=True) as server:
        yield server


def test_the_readme_role_example_works_in_the_sandbox(
    aws_with_managed_policies: LocalAws, tmp_path: Path
) -> None:
    sandbox = aws_with_managed_policies
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        **sandbox.env(),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    done = run_cli(
        env,
        "role", "write", "dev", "--credential-type", "iam_user",
        "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "--default-ttl", "1h", "--max-ttl", "8h",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    issued = run_cli(env, "creds", "dev", "--format", "json")
    assert issued.returncode == 0, issued.stderr
    user = json.loads(issued.stdout)["principal"]
    attached = sandbox.client("iam").list_attached_user_policies(UserName=user)
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == ["ReadOnlyAccess"]
    assert run_cli(env, "lease", "revoke-prefix", "aws/creds/dev").returncode == 0
