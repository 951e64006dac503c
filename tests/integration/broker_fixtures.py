"""A broker on moto with authentication on: the issuer (the broker) holds the admin's keys,
requesters are IAM users with no policy at all. Shared by the broker's integration tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from keyturn.adapters.broker_client import BrokerClient
from keyturn.adapters.event_log import NullSink
from keyturn.cli.broker_cmd import make_server
from keyturn.config import load_settings
from keyturn.sandbox.aws import ACCOUNT, REGION, SeededKey
from keyturn.services.caller_limits import CallerLimits
from keyturn.wiring_broker import build_broker
from tests.rotate_fixtures import AuthedAws

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def config_text(role_arn: str) -> str:
    alice, bob, ops = user_arn("alice"), user_arn("bob"), user_arn("ops")
    return f"""
[leases.roles.dev]
credential_type = "iam_user"
policy_document = '{POLICY}'
allowed_principals = ["{alice}", "{bob}"]
admin_principals = ["{ops}"]

[leases.roles.deploy]
credential_type = "assumed_role"
role_arns = ["{role_arn}"]
allowed_principals = ["arn:aws:iam::{ACCOUNT}:user/ali*"]

[leases.roles.fed]
credential_type = "federation_token"
policy_document = '{POLICY}'
allowed_principals = ["{alice}"]

[leases.roles.secret]
credential_type = "iam_user"
policy_document = '{POLICY}'
allowed_principals = ["{ops}"]

[leases.roles.nobody]
credential_type = "iam_user"
policy_document = '{POLICY}'
"""


class Events:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.seen.append(dict(event))


@dataclass
class World:
    authed: AuthedAws
    url: str
    events: Events
    keys: dict[str, SeededKey]
    server: Any

    def client(self, who: str, server_id: str | None = None) -> BrokerClient:
        key = self.keys[who]
        return BrokerClient(
            self.url,
            Credentials(key.key_id, key.secret),
            sts_url=self.authed.url,
            region=REGION,
            server_id=server_id,
        )

    def iam_users(self) -> set[str]:
        users = self.authed.client("iam").list_users()["Users"]
        return {user["UserName"] for user in users}


class ShiftedClock:
    def __init__(self) -> None:
        self.shift = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
def broker(authed: AuthedAws, tmp_path: Path) -> Iterator[World]:
    role_arn = authed.client("iam").create_role(
        RoleName="deployer", AssumeRolePolicyDocument=TRUST
    )["Role"]["Arn"]
    keys = {name: authed.seed_user(name)[0] for name in ("alice", "bob", "ops", "mallory")}
    (tmp_path / "keyturn.toml").write_text(config_text(role_arn))
    loaded = load_settings(
        path=tmp_path / "keyturn.toml",
        flags={"leases.sqlite_path": str(tmp_path / "leases.db"), "broker.caller_burst": 50},
    )
    events = Events()
    server = make_server(None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.service = build_broker(loaded, events, default_server_id=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield World(authed, url, events, keys, server)
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["CallerLimits", "NullSink", "ShiftedClock", "World", "broker"]
