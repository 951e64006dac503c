"""The sandbox CloudTrail responder speaks CloudTrail's wire protocol as botocore's service
model describes it, and keyturn's adapter reads a key's activity through it end to end
(region discovery from moto's ec2:DescribeRegions, pagination, AWS's 2 req/s limit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import Shape
from botocore.parsers import create_parser

from keyturn.config import Settings
from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.cloudtrail import CloudTrailResponder, generate_events
from keyturn.wiring import build_activity, build_aws

KEY = "AKIAEXPOSEDEXAMPLE01"
END = datetime(2024, 5, 2, tzinfo=UTC)
START = END - timedelta(hours=24)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def cloudtrail(url: str, region: str = "us-east-1", config: Config = NO_RETRIES) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        "cloudtrail",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="AKIAKEYTURNSANDBOX00",
        aws_secret_access_key="not-a-secret",
        config=config,
    )


def conforms(value: Any, shape: Shape, path: str = "$") -> None:
    """`value` (decoded JSON 1.1) is exactly what `shape` allows: no unknown member, the
    required ones present, each of the model's type (timestamps as epoch seconds)."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        members = shape.members  # type: ignore[attr-defined]
        for name, member in value.items():
            assert name in members, f"{path}.{name} is not in the model"
            if member is not None:
                conforms(member, members[name], f"{path}.{name}")
        for name in shape.required_members:  # type: ignore[attr-defined]
            assert name in value, f"{path}.{name} is required"
    elif kind == "list":
        assert isinstance(value, list), path
        for n, item in enumerate(value):
            conforms(item, shape.member, f"{path}[{n}]")  # type: ignore[attr-defined]
    elif kind == "string":
        assert isinstance(value, str), path
        if shape.enum:
            assert value in shape.enum, path
    elif kind == "timestamp":
        assert isinstance(value, int | float), path
        assert not isinstance(value, bool), path
    elif kind in ("integer", "long"):
        assert isinstance(value, int), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    else:  # pragma: no cover - LookupEvents uses no other type
        raise AssertionError(f"{path}: unexpected model type {kind}")


class Captured:
    """The raw HTTP answers a client received (botocore's `before-parse` event)."""

    def __init__(self, client: Any) -> None:
        self.answers: list[dict[str, Any]] = []
        client.meta.events.register("before-parse.cloudtrail.LookupEvents", self._keep)

    def _keep(self, response_dict: dict[str, Any], **_: Any) -> None:
        self.answers.append(dict(response_dict))


@pytest.fixture
def responder() -> Iterator[CloudTrailResponder]:
    events = generate_events(KEY, 120, ["us-east-1", "eu-west-1"], end=END - timedelta(hours=1))
    with CloudTrailResponder(events) as server:
        yield server


def test_answers_follow_the_cloudtrail_service_model(responder: CloudTrailResponder) -> None:
    client = cloudtrail(responder.url)
    captured = Captured(client)
    operation = client.meta.service_model.operation_model("LookupEvents")
    query = {
        "LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": KEY}],
        "StartTime": START,
        "EndTime": END,
        "MaxResults": 50,
    }
    first = client.lookup_events(**query)
    second = client.lookup_events(**query, NextToken=first["NextToken"])
    assert len(first["Events"]) == 50
    assert len(second["Events"]) == 10  # 60 of the 120 are in us-east-1
    assert "NextToken" not in second
    parser = create_parser("json")
    for answer in captured.answers:
        assert answer["headers"]["content-type"] == "application/x-amz-json-1.1"
        conforms(json.loads(answer["body"]), operation.output_shape)
        parsed = parser.parse(answer, operation.output_shape)
        for event in parsed["Events"]:
            assert event["EventTime"].tzinfo is not None
            assert event["AccessKeyId"] == KEY
            json.loads(event["CloudTrailEvent"])
    times = [e["EventTime"] for e in first["Events"] + second["Events"]]
    assert times == sorted(times, reverse=True)  # newest first, as CloudTrail lists them


def test_errors_are_the_services_own(responder: CloudTrailResponder) -> None:
    client = cloudtrail(responder.url)
    query: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": KEY}],
    }
    token = client.lookup_events(**query)["NextToken"]
    with pytest.raises(ClientError) as other_query:
        client.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}],
            NextToken=token,
        )
    assert other_query.value.response["Error"]["Code"] == "InvalidNextTokenException"
    with pytest.raises(ClientError) as backwards:
        client.lookup_events(**query, StartTime=END, EndTime=START)
    assert backwards.value.response["Error"]["Code"] == "InvalidTimeRangeException"
    with pytest.raises(ClientError) as other_action:
        client.describe_trails()
    assert other_action.value.response["Error"]["Code"] == "UnknownOperationException"


def test_the_limit_throttles_as_aws_does_and_botocore_retries_it(
    responder: CloudTrailResponder,
) -> None:
    responder.throttle = True
    hasty = cloudtrail(responder.url, "eu-west-1")
    codes = []
    for _ in range(6):  # well above 2 a second
        try:
            hasty.lookup_events()
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    assert "ThrottlingException" in codes
    assert responder.usage.throttled["eu-west-1"] >= 1
    patient = cloudtrail(
        responder.url, "eu-west-1", Config(retries={"mode": "adaptive", "max_attempts": 10})
    )
    for _ in range(6):
        patient.lookup_events()  # retried by botocore until the bucket has a token


def _settings(**sections: dict[str, Any]) -> Settings:
    return Settings.model_validate(sections)


def test_the_adapter_reads_a_keys_activity_beside_moto(aws: LocalAws) -> None:
    """One endpoint for everything: moto answers ec2:DescribeRegions, the responder
    LookupEvents, throttled at AWS's 2 requests a second per region."""
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    events = generate_events(KEY, 300, regions, end=END - timedelta(minutes=5))
    with CloudTrailResponder(events, upstream=aws.url, throttle=True) as trail:
        settings = _settings(aws={"endpoint_url": trail.url, "region": "eu-west-1"})
        run = build_aws(settings)
        summary = build_activity(settings, run).summary(KEY, START, END)
    # paced per region by the adapter, never by the run's one LookupEvents bucket (which
    # would hold all regions together to AWS's per-region rate)
    assert run.pacer is not None
    assert run.pacer.requests["cloudtrail:LookupEvents"] == 0
    assert summary.total_events == 300
    assert summary.complete, summary.lines()
    assert set(regions) <= set(summary.regions_searched)
    # moto ignores AllRegions=False (it lists not-opted-in regions, and cn-* and us-gov-*):
    # the adapter keeps only enabled regions of its own partition.
    enabled = {
        r["RegionName"]
        for r in aws.client("ec2").describe_regions(AllRegions=False)["Regions"]
        if r["OptInStatus"] != "not-opted-in"
    }
    assert set(summary.regions_searched) == {
        r for r in enabled if not r.startswith(("cn-", "us-gov-"))
    }
    assert dict(summary.by_region.top) == {region: 100 for region in regions}
    assert summary.access_calls_total == 300 // 97
    assert summary.access_calls[0].name == "CreateUser"
    assert summary.access_calls[0].target == "backup-svc"
    assert trail.usage.throttled.total() == 0  # paced under the limit, not retried into it


def test_the_cloudtrail_endpoint_alone_can_point_at_the_responder(aws: LocalAws) -> None:
    events = generate_events(KEY, 60, ["us-east-1"], end=END - timedelta(minutes=5))
    with CloudTrailResponder(events) as trail:
        settings = _settings(
            aws={"endpoint_url": aws.url},
            trail={"cloudtrail_endpoint_url": trail.url, "regions": ["us-east-1", "eu-west-1"]},
        )
        summary = build_activity(settings, build_aws(settings)).summary(KEY, START, END)
        assert trail.usage.requests == {"us-east-1": 2, "eu-west-1": 1}
    assert summary.total_events == 60
    assert summary.regions_searched == ("eu-west-1", "us-east-1")
    assert summary.complete


def test_in_front_of_moto_the_callers_iam_permission_is_checked(aws: LocalAws) -> None:
    """moto authorizes LookupEvents before finding it unimplemented: the responder asks it
    first, so a caller without cloudtrail:LookupEvents is refused as by AWS."""
    iam = aws.client("iam")
    allowed = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}]}  # fmt: skip
    keys = {}
    for name, policy in (("reader", allowed), ("nobody", None)):
        iam.create_user(UserName=name)
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        keys[name] = iam.create_access_key(UserName=name)["AccessKey"]
    events = generate_events(KEY, 10, ["us-east-1"], end=END - timedelta(minutes=5))
    with CloudTrailResponder(events, upstream=aws.url) as trail:
        aws.set_authentication(True)
        try:
            clients = {
                name: boto3.client(  # type: ignore[call-overload]
                    "cloudtrail",
                    endpoint_url=trail.url,
                    region_name="us-east-1",
                    aws_access_key_id=key["AccessKeyId"],
                    aws_secret_access_key=key["SecretAccessKey"],
                    config=NO_RETRIES,
                )
                for name, key in keys.items()
            }
            found = clients["reader"].lookup_events(StartTime=START, EndTime=END)["Events"]
            with pytest.raises(ClientError) as refused:
                clients["nobody"].lookup_events(StartTime=START, EndTime=END)
        finally:
            aws.set_authentication(False)
    assert len(found) == 10
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "not authorized to perform: cloudtrail:LookupEvents" in error["Message"]
