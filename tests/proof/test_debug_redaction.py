"""DEBUG logs with session credentials (issue 12 item 11): botocore, urllib3 and hvac log
every request at DEBUG; what signs a request (the STS session token, the SigV4 signature,
the `Authorization` header, the Vault token) must not reach the log.

The CLI runs as a subprocess with root logging at DEBUG on stderr and signs with temporary
credentials from moto's STS, as a person on SSO or a Lambda role would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.vault import LocalVault
from tests.conftest import run_cli

# A SigV4 signature, wherever botocore prints it: `Signature=<hex>` or `Signature:\n<hex>`.
SIGNATURE = re.compile(r"(?i)signature[=:]\s*[0-9a-f]{16,}")


def session_env(aws: LocalAws, tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The CLI's environment signing with STS temporary credentials, and those credentials."""
    credentials = aws.client("sts").get_session_token()["Credentials"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        **aws.env(),
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    return env, {
        "secret": credentials["SecretAccessKey"],
        "session token": credentials["SessionToken"],
    }


def assert_clean(log: str, secrets: dict[str, str]) -> None:
    for name, value in secrets.items():
        assert value not in log, f"the {name} is in the DEBUG log"
    assert not SIGNATURE.search(log), SIGNATURE.search(log)


def test_debug_log_of_an_aws_run_holds_no_token_and_no_signature(
    aws: LocalAws, tmp_path: Path
) -> None:
    aws.create_user("alice", tags={"Contact": "alice@example.com"})
    aws.add_key("alice", age_days=40)
    env, secrets = session_env(aws, tmp_path)
    done = run_cli(env, "audit", debug=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # DEBUG really ran, signed with the session token, and the log names what it masked
    assert "botocore.auth" in done.stderr
    assert "x-amz-security-token:***" in done.stderr
    assert "'Authorization': b'***'" in done.stderr
    assert_clean(done.stdout + done.stderr, secrets)


@pytest.fixture
def vault_server() -> Iterator[LocalVault]:
    from tests.conftest import started_vault

    yield from started_vault()


def test_debug_log_of_a_vault_run_holds_no_vault_token(
    aws: LocalAws, vault_server: LocalVault, tmp_path: Path
) -> None:
    aws.create_user("alice")
    aws.add_key("alice", age_days=40)
    env, secrets = session_env(aws, tmp_path)
    env.update(vault_server.env())
    secrets["Vault token"] = vault_server.token
    done = run_cli(
        env, "rotate", "alice", "--enroll", "--dry-run", "--path", "aws/{user}", debug=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "urllib3.connectionpool" in done.stderr  # hvac's requests were logged
    assert_clean(done.stdout + done.stderr, secrets)
