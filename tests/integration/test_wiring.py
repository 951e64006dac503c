"""Client wiring against moto: adaptive retries, and --role-arn really assumes the role."""

from __future__ import annotations

import json

from keyturn.config import load_settings
from keyturn.sandbox.aws import ACCOUNT, LocalAws
from keyturn.wiring import build_aws


def test_clients_use_adaptive_retries(aws: LocalAws) -> None:
    client = build_aws(load_settings(environ={}).settings).iam()
    assert client.meta.config.retries["mode"] == "adaptive"


def test_role_arn_is_assumed_before_any_call(aws: LocalAws) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    aws.client("iam").create_role(RoleName="auditor", AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/auditor"
    settings = load_settings(environ={}, flags={"aws.role_arn": role_arn}).settings
    identity = build_aws(settings).sts().get_caller_identity()
    assert ":assumed-role/auditor/" in identity["Arn"]
