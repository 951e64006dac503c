"""Client wiring against moto: adaptive retries, and --role-arn really assumes the role."""

from __future__ import annotations

import json

from keyturn.adapters.pacing import Pacer
from keyturn.adapters.sns import RunNotice
from keyturn.config import load_settings
from keyturn.sandbox.aws import ACCOUNT, LocalAws
from keyturn.wiring import build_aws, build_notices


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


def test_the_assume_role_client_is_paced_by_the_source_account(aws: LocalAws) -> None:
    """AWS counts AssumeRole against the caller's STS rate: it takes the run's STS token."""
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
    aws.client("iam").create_role(RoleName="pacer", AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/pacer"
    settings = load_settings(environ={}, flags={"aws.role_arn": role_arn}).settings
    built = build_aws(settings)
    built.sts().get_caller_identity()
    assert built.pacer is not None
    assert built.pacer.requests == {"sts@us-east-1": 2}  # AssumeRole, GetCallerIdentity


def test_the_notice_client_is_made_like_every_other(aws: LocalAws) -> None:
    """The SNS client carries the run's pacer (and deadline): SNS has no bucket by default,
    a rate given to it applies."""
    arn = aws.client("sns").create_topic(Name="paced")["TopicArn"]
    settings = load_settings(environ={}, flags={"notify.sns_topic_arn": arn}).settings
    built = build_aws(settings)
    built.pacer = Pacer({"sns": 1000.0})
    notices = build_notices(settings, built)
    assert notices is not None
    notices.publish(RunNotice(event="keyturn.enforce", outcome="ok"))
    assert built.pacer.requests == {"sns@us-east-1": 1}
