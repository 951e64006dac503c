"""The fault proxy itself: a fault must look to botocore exactly like AWS's own, or the
proof and soak suites would measure a client that cannot recognise the fault."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.faults import FaultPlan, FaultProxy

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIAKEYTURNPROXYTEST",
        aws_secret_access_key="not-a-secret",
        config=NO_RETRIES,
    )


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("iam", lambda c: c.list_users(), "Throttling"),  # query protocol: XML
        ("secretsmanager", lambda c: c.list_secrets(), "ThrottlingException"),  # JSON
    ],
)
def test_a_throttle_is_written_in_the_protocol_of_the_request(
    aws: LocalAws, service: str, call: Any, code: str
) -> None:
    with (
        FaultProxy(aws.url, FaultPlan(throttle=1.0)) as proxy,
        pytest.raises(ClientError) as caught,
    ):
        call(client(service, proxy.url))
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
