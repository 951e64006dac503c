"""The pacer on real clients against moto: every request takes a token from its service's
bucket (an operation's own bucket first), retries included, with the thread's priority."""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from keyturn.adapters.pacing import SES_SEND, Pacer
from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.faults import FaultPlan, FaultProxy
from keyturn.wiring import Aws


def paced_aws(url: str, pacer: Pacer, attempts: int = 1) -> Aws:
    session = boto3.session.Session(
        region_name="us-east-1",
        aws_access_key_id="AKIAEXAMPLE000000000",
        aws_secret_access_key="x",
    )
    config = Config(retries={"mode": "standard", "max_attempts": attempts})
    return Aws(session=session, config=config, endpoint_url=url, pacer=pacer)


def test_every_call_takes_a_token_from_its_services_bucket(aws: LocalAws) -> None:
    pacer = Pacer({"iam": 1000.0, "sts": 1000.0})
    iam = paced_aws(aws.url, pacer).iam()
    for _ in range(3):
        iam.list_users()
    assert pacer.requests == {"iam": 3}


def test_a_retry_takes_a_token_too(aws: LocalAws) -> None:
    """AWS counts every attempt: a throttled call and its retry are two requests."""
    pacer = Pacer({"iam": 1000.0})
    plan = FaultPlan(throttle=1.0, only_actions=frozenset({"ListUsers"}))
    with FaultProxy(aws.url, plan) as proxy:
        iam = paced_aws(proxy.url, pacer, attempts=3).iam()
        with contextlib.suppress(ClientError):  # throttled every time, as planned
            iam.list_users()
        sent = proxy.counts["requests"]
    assert sent > 1
    assert pacer.requests == {"iam": sent}


def test_an_operation_bucket_wins_over_its_service(aws: LocalAws) -> None:
    pacer = Pacer({})
    pacer.limit_send_rate(1000.0, cap=None)
    ses: Any = paced_aws(aws.url, pacer).client("ses")
    ses.verify_email_identity(EmailAddress="a@example.com")
    ses.send_email(
        Source="a@example.com",
        Destination={"ToAddresses": ["b@example.com"]},
        Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}},
    )
    ses.get_send_quota()  # SES's other calls have no bucket here
    assert pacer.requests == {f"{SES_SEND}@us-east-1": 1}


class Recording(Pacer):
    """Records the (bucket key, region, priority) each request waited with."""

    def __init__(self, rates: dict[str, float]) -> None:
        super().__init__(rates)
        self.taken: list[tuple[str, str | None, int]] = []

    def acquire(
        self, service: str, operation: str, region: str | None = None, priority: int = 2
    ) -> None:
        self.taken.append((service, region, priority))
        super().acquire(service, operation, region, priority)


def test_a_priority_is_the_next_calls_only(aws: LocalAws) -> None:
    """A call nobody gave a priority waits at the default, never at the one an earlier call
    of its thread was given (rotation's calls were paced at a stale priority)."""
    pacer = Recording({"iam": 1000.0})
    iam = paced_aws(aws.url, pacer).iam()
    iam.list_users()
    pacer.prioritised("iam").acquire(0)
    iam.list_users()
    iam.list_users()
    assert [priority for _, _, priority in pacer.taken] == [2, 0, 2]


def test_regional_services_have_a_bucket_per_region_iam_one_for_all(aws: LocalAws) -> None:
    """AWS limits CloudTrail's LookupEvents (and STS, SES, Secrets Manager) per account and
    region: a lookup over two regions may send 2 a second to each. IAM is global."""
    pacer = Pacer({"iam": 1000.0, "sts": 1000.0})
    paced = paced_aws(aws.url, pacer)
    for region in ("us-east-1", "eu-west-1"):
        paced.client("sts", region_name=region).get_caller_identity()
        paced.client("iam", region_name=region).list_users()
    assert pacer.requests == {"sts@us-east-1": 1, "sts@eu-west-1": 1, "iam": 2}
    assert len(pacer._buckets) == 3
