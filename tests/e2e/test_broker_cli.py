"""Acceptance: `keyturn broker serve` runs with the issuer's keys; a requester whose IAM user
has no policy at all (moto checks, authentication on) leases iam_user, assumed_role and
federation_token credentials through it with `keyturn creds --broker`, uses them, renews,
lists and revokes its own lease, and is refused another principal's lease and a role it is
not allowed on. The requester's process holds only its own key, never the issuer's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyturn.sandbox.aws import REGION
from tests.conftest import run_cli
from tests.e2e.conftest import assert_one_clean_error
from tests.integration.broker_fixtures import TRUST, config_text, user_arn
from tests.rotate_fixtures import AuthedAws


@pytest.fixture
def served(authed: AuthedAws, tmp_path: Path) -> Iterator[dict[str, Any]]:
    role_arn = authed.client("iam").create_role(
        RoleName="deployer", AssumeRolePolicyDocument=TRUST
    )["Role"]["Arn"]
    keys = {name: authed.seed_user(name)[0] for name in ("alice", "bob")}
    config = tmp_path / "broker.toml"
    config.write_text(config_text(role_arn))
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYTURN_", "AWS_ACCESS", "AWS_SECRET"))
    }
    issuer_env = {
        **base,
        **authed.env(),
        "KEYTURN_CONFIG": str(config),
        "XDG_STATE_HOME": str(tmp_path / "broker-state"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from keyturn.cli.main import run; run()",
            "broker",
            "serve",
            "--port",
            "0",
        ],
        env=issuer_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first + (process.stderr.read() if process.poll() else "")
        url = first.split("listening on ")[1].split()[0]

        def as_user(name: str) -> dict[str, str]:
            env = {
                **base,
                "AWS_ENDPOINT_URL": authed.url,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": keys[name].key_id,
                "AWS_SECRET_ACCESS_KEY": keys[name].secret,
                "XDG_STATE_HOME": str(tmp_path / f"{name}-state"),
            }
            assert authed.admin.secret not in json.dumps(env)  # only its own key
            return env

        yield {"url": url, "as_user": as_user, "authed": authed, "config": str(config)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def creds(
    served: dict[str, Any], who: str, role: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        served["as_user"](who), "creds", role, "--broker", served["url"], "-f", "json", *extra
    )


def sts_arn(url: str, found: dict[str, Any]) -> str:
    return str(
        boto3.client(
            "sts",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=found["access_key"],
            aws_secret_access_key=found["secret_key"],
            aws_session_token=found["session_token"],
        ).get_caller_identity()["Arn"]
    )


def test_a_requester_without_iam_rights_leases_uses_renews_and_revokes(
    served: dict[str, Any],
) -> None:
    alice = served["as_user"]("alice")
    url = served["url"]
    # alice alone cannot create a user: the permission is the broker's
    direct = run_cli({**alice, "KEYTURN_CONFIG": served["config"]}, "creds", "dev", "-f", "json")
    assert direct.returncode != 0
    assert "iam:CreateUser" in direct.stderr

    made = creds(served, "alice", "dev")
    assert made.returncode == 0, made.stderr
    found = json.loads(made.stdout)
    assert sts_arn(served["authed"].url, found).endswith(f":user/{found['principal']}")
    lease_id = found["lease_id"]

    for role in ("deploy", "fed"):
        sts = creds(served, "alice", role)
        assert sts.returncode == 0, sts.stderr
        assert json.loads(sts.stdout)["session_token"]
    assumed = json.loads(creds(served, "alice", "deploy").stdout)
    assert ":assumed-role/deployer/" in sts_arn(served["authed"].url, assumed)

    listed = run_cli(alice, "lease", "list", "--broker", url, "-f", "json")
    assert listed.returncode == 0, listed.stderr
    leases = json.loads(listed.stdout)["leases"]
    assert {lease["owner"] for lease in leases} == {user_arn("alice")}
    assert lease_id in {lease["lease_id"] for lease in leases}

    renewed = run_cli(alice, "lease", "renew", lease_id, "--broker", url, "--increment", "2h")
    assert renewed.returncode == 0, renewed.stderr

    bob = served["as_user"]("bob")
    stolen = run_cli(bob, "lease", "revoke", lease_id, "--broker", url)
    line = assert_one_clean_error(stolen, 4)
    assert "not" in line
    assert "bob" in line

    revoked = run_cli(alice, "lease", "revoke", lease_id, "--broker", url)
    assert revoked.returncode == 0, revoked.stderr
    users = {u["UserName"] for u in served["authed"].client("iam").list_users()["Users"]}
    assert found["principal"] not in users


def test_a_role_the_requester_is_not_allowed_on_is_refused(served: dict[str, Any]) -> None:
    line = assert_one_clean_error(creds(served, "bob", "secret"), 4)
    assert "not allowed to lease role secret" in line


def test_the_broker_url_setting_routes_creds_through_the_broker(served: dict[str, Any]) -> None:
    env = {**served["as_user"]("alice"), "KEYTURN_BROKER_URL": served["url"]}
    made = run_cli(env, "creds", "fed", "-f", "json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["session_token"]


def test_broker_serve_refuses_a_public_bind(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    result = run_cli(env, "broker", "serve", "--host", "0.0.0.0", "--port", "0")  # noqa: S104
    assert "--allow-remote" in assert_one_clean_error(result, 2)
