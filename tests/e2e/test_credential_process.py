"""`creds --format process` as the AWS SDK runs it, `exec`, and the credential cache:
`.venv/bin/keyturn` against moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyturn.sandbox.aws import LocalAws
from tests.e2e.conftest import KEYTURN
from tests.e2e.test_leases_cli import keyturn_users, store, write_role


@pytest.fixture
def world(aws: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the SDK (and so credential_process) runs in; role dev written."""
    for name in [n for n in os.environ if n.startswith("KEYTURN_")]:
        monkeypatch.delenv(name)
    env = {
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "KEYTURN_LEASES_READY_INTERVAL_SECONDS": "0",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "aws-config").write_text(
        "[profile leased]\n"
        f"credential_process = {KEYTURN} creds dev --format process\n"
        "region = us-east-1\n"
    )
    arn = aws.client("iam").create_policy(
        PolicyName="s3-list",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    write_role(cli_for(), arn)
    return env


def cli_for() -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEYTURN, *args], capture_output=True, text=True, timeout=120, check=False
        )

    return run


def caller(aws: LocalAws) -> str:
    session = boto3.Session(profile_name="leased")
    who = session.client("sts", endpoint_url=aws.url).get_caller_identity()
    return str(who["Arn"])


def cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "keyturn").glob("*.json"))


def test_sdk_profile_works_and_its_second_start_reuses_the_cached_lease(
    world: dict[str, str], aws: LocalAws, tmp_path: Path
) -> None:
    first = caller(aws)
    assert ":user/keyturn-" in first
    assert caller(aws) == first  # a second SDK start: same user, no new lease
    assert len(keyturn_users(aws)) == 1
    assert len(store(tmp_path).list_leases()) == 1
    [entry] = cache_files(tmp_path)
    assert oct(entry.stat().st_mode & 0o777) == "0o600"
    assert oct(entry.parent.stat().st_mode & 0o777) == "0o700"

    printed = cli_for()("creds", "dev", "--format", "process")
    answer = json.loads(printed.stdout)
    assert answer["Version"] == 1
    assert set(answer) == {"Version", "AccessKeyId", "SecretAccessKey", "Expiration"}
    assert answer["Expiration"].endswith("Z")
    assert printed.stderr == ""

    fresh = cli_for()("creds", "dev", "--format", "process", "--no-cache")
    assert json.loads(fresh.stdout)["AccessKeyId"] != answer["AccessKeyId"]
    assert len(keyturn_users(aws)) == 2


def test_a_cache_file_others_could_read_is_refused_and_replaced(
    world: dict[str, str], aws: LocalAws, tmp_path: Path
) -> None:
    first = cli_for()("creds", "dev", "--format", "process")
    [entry] = cache_files(tmp_path)
    entry.chmod(0o644)
    second = cli_for()("creds", "dev", "--format", "process")
    assert second.returncode == 0
    assert "refused cache entry" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    old = json.loads(first.stdout)
    assert old["SecretAccessKey"] not in second.stderr
    assert json.loads(second.stdout)["AccessKeyId"] != old["AccessKeyId"]
    assert oct(entry.stat().st_mode & 0o777) == "0o600"  # replaced by a private one


def test_revoke_invalidates_the_cache(world: dict[str, str], aws: LocalAws, tmp_path: Path) -> None:
    caller(aws)
    [lease] = store(tmp_path).list_leases()
    assert cli_for()("lease", "revoke", lease.lease_id).returncode == 0
    assert cache_files(tmp_path) == []
    caller(aws)
    assert len(keyturn_users(aws)) == 1  # the revoked one is gone, a new one issued
    assert len(store(tmp_path).list_leases()) == 2


def test_errors_are_one_line_on_stderr_and_nothing_on_stdout(world: dict[str, str]) -> None:
    done = cli_for()("creds", "nope", "--format", "process")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "unknown role 'nope'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_exec_runs_the_command_with_the_lease_and_propagates_status(
    world: dict[str, str], aws: LocalAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "leased")  # would steer the child's SDK: removed
    script = (
        "import os, boto3; "
        f"print(boto3.client('sts', endpoint_url='{aws.url}').get_caller_identity()['Arn']); "
        "print(os.environ.get('AWS_PROFILE')); print(os.environ['AWS_CREDENTIAL_EXPIRATION'])"
    )
    done = cli_for()("exec", "dev", "--", sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    arn, profile, expiration = done.stdout.split()
    assert ":user/keyturn-" in arn
    assert profile == "None"
    assert expiration.endswith("Z")
    assert cli_for()("exec", "dev", "--", "sh", "-c", "exit 7").returncode == 7
    assert len(keyturn_users(aws)) == 1  # both runs used the cached lease
    killed = cli_for()("exec", "dev", "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == -15
    missing = cli_for()("exec", "dev", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert "command not found" in missing.stderr


def test_exec_revoke_on_exit_revokes_and_caches_nothing(
    world: dict[str, str], aws: LocalAws, tmp_path: Path
) -> None:
    done = cli_for()("exec", "dev", "--revoke-on-exit", "--", "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr
    assert keyturn_users(aws) == []
    assert {lease.state.value for lease in store(tmp_path).list_leases()} == {"REVOKED"}
    assert cache_files(tmp_path) == []
