"""CloudTrail LookupEvents through botocore's Stubber (moto has no LookupEvents): pagination,
throttling, regions in parallel, a failing region, hostile event documents, the event cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from keyturn import wiring
from keyturn.adapters.cloudtrail import (
    PAGE_SIZE,
    CloudTrailActivity,
    EnabledRegions,
    FixedRegions,
    Regions,
)
from keyturn.adapters.pacing import LOOKUP_EVENTS, Pacer
from keyturn.domain.activity import AGENT_MAX
from keyturn.domain.errors import BadInputError

KEY = "AKIAEXAMPLEEXAMPLE01"
END = datetime(2024, 5, 2, tzinfo=UTC)
START = END - timedelta(hours=24)


def _client(service: str, region: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name=region,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


@pytest.fixture
def stubs() -> Iterator[dict[str, Stubber]]:
    made: dict[str, Stubber] = {}
    yield made
    for stub in made.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def stub_for(stubs: dict[str, Stubber], region: str) -> Stubber:
    if region not in stubs:
        stubs[region] = Stubber(_client("cloudtrail", region))
        stubs[region].activate()
    return stubs[region]


def raw_event(n: int, name: str = "ListUsers", **detail: Any) -> dict[str, Any]:
    document = {
        "eventTime": "2024-05-01T10:00:00Z",
        "eventName": name,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        **detail,
    }
    return {
        "EventId": f"e{n}",
        "EventName": name,
        "EventSource": "iam.amazonaws.com",
        "EventTime": START + timedelta(minutes=n),
        "ReadOnly": "true",
        "AccessKeyId": KEY,
        "CloudTrailEvent": json.dumps(document),
    }


def params(token: str | None = None) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": KEY}],
        "StartTime": START,
        "EndTime": END,
        "MaxResults": PAGE_SIZE,
    }
    if token:
        expected["NextToken"] = token
    return expected


def activity(stubs: dict[str, Stubber], regions: list[str], **kw: Any) -> CloudTrailActivity:
    for region in regions:
        stub_for(stubs, region)
    return CloudTrailActivity(
        lambda region: stubs[region].client,
        FixedRegions(regions),
        sleep=kw.pop("sleep", lambda _s: None),
        **kw,
    )


def test_every_page_is_read_by_access_key_id(stubs: dict[str, Stubber]) -> None:
    stub = stub_for(stubs, "us-east-1")
    stub.add_response(
        "lookup_events", {"Events": [raw_event(i) for i in range(50)], "NextToken": "p2"}, params()
    )
    stub.add_response(
        "lookup_events",
        {"Events": [raw_event(50 + i, "CreateUser") for i in range(3)]},
        params("p2"),
    )
    summary = activity(stubs, ["us-east-1"]).summary(KEY, START, END)
    assert summary.total_events == 53
    assert summary.access_calls_total == 3
    assert summary.complete
    assert summary.regions_searched == ("us-east-1",)


class Counting(Pacer):
    made: ClassVar[list[Counting]] = []

    def __init__(self, rates: Any) -> None:
        super().__init__(rates)
        Counting.made.append(self)


@pytest.mark.parametrize("paced", [True, False])
def test_lookup_clients_are_paced_per_region_whether_pacing_is_on_or_off(
    paced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One mechanism: the run's pacer, per region, at the lower of `trail.rate` and
    `pacing.cloudtrail_lookup`; with `pacing.enabled = false`, a pacer for LookupEvents alone
    (its 2/s per region is hard: a lookup that outran it would lose regions)."""
    monkeypatch.setattr(wiring, "Pacer", Counting)
    Counting.made.clear()
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    run = Pacer({LOOKUP_EVENTS: 2.0, "iam": 10.0}) if paced else None
    aws = wiring.Aws(session=session, config=Config(), endpoint_url=None, pacer=run)
    client_for = wiring.lookup_clients(aws, 1.5, None)
    for region in ("us-east-1", "eu-west-1", "eu-west-1"):
        client: Any = client_for(region)
        # What botocore emits before a LookupEvents request (a Stubber would answer first).
        client.meta.events.emit(
            "before-call.cloudtrail.LookupEvents",
            model=client.meta.service_model.operation_model("LookupEvents"),
            params={},
            context={},
        )
    pacer = run if run is not None else Counting.made[0]
    assert len(Counting.made) == (0 if paced else 1)
    assert pacer.rate(LOOKUP_EVENTS) == 1.5
    assert pacer.requests == {
        f"{LOOKUP_EVENTS}@us-east-1": 1,
        f"{LOOKUP_EVENTS}@eu-west-1": 2,
    }


def test_a_throttle_that_outlived_botocore_is_asked_again(stubs: dict[str, Stubber]) -> None:
    stub = stub_for(stubs, "us-east-1")
    stub.add_client_error(
        "lookup_events", "ThrottlingException", "Rate exceeded", 400, expected_params=params()
    )
    stub.add_client_error("lookup_events", "ThrottlingException", "Rate exceeded", 400)
    stub.add_response("lookup_events", {"Events": [raw_event(1)]}, params())
    slept: list[float] = []
    summary = activity(stubs, ["us-east-1"], sleep=slept.append).summary(KEY, START, END)
    assert summary.total_events == 1
    assert summary.complete
    assert len(slept) == 2


def test_endless_throttling_fails_that_region_only(stubs: dict[str, Stubber]) -> None:
    throttled = stub_for(stubs, "eu-west-1")
    for _ in range(5):
        throttled.add_client_error("lookup_events", "ThrottlingException", "Rate exceeded", 400)
    stub_for(stubs, "us-east-1").add_response("lookup_events", {"Events": [raw_event(1)]})
    summary = activity(stubs, ["eu-west-1", "us-east-1"]).summary(KEY, START, END)
    assert summary.total_events == 1
    assert [f.region for f in summary.regions_failed] == ["eu-west-1"]
    assert "ThrottlingException" in summary.regions_failed[0].reason


def test_regions_are_searched_each_and_counted(stubs: dict[str, Stubber]) -> None:
    regions = ["ap-southeast-2", "eu-west-1", "us-east-1"]
    for n, region in enumerate(regions, start=1):
        stub_for(stubs, region).add_response(
            "lookup_events", {"Events": [raw_event(i) for i in range(n)]}, params()
        )
    summary = activity(stubs, regions).summary(KEY, START, END)
    assert dict(summary.by_region.top) == {"ap-southeast-2": 1, "eu-west-1": 2, "us-east-1": 3}
    assert summary.regions_searched == tuple(regions)


def test_a_failing_region_is_reported_and_never_fails_the_lookup(
    stubs: dict[str, Stubber],
) -> None:
    stub_for(stubs, "us-east-1").add_response("lookup_events", {"Events": [raw_event(1)]})
    stub_for(stubs, "ap-east-1").add_client_error(
        "lookup_events", "UnrecognizedClientException", "The security token is invalid", 400
    )
    denied = stub_for(stubs, "eu-west-1")
    denied.add_response("lookup_events", {"Events": [raw_event(2)], "NextToken": "t"})
    denied.add_client_error("lookup_events", "AccessDeniedException", "not authorized", 400)
    summary = activity(stubs, ["ap-east-1", "eu-west-1", "us-east-1"]).summary(KEY, START, END)
    assert not summary.complete
    failed = {f.region: f.reason for f in summary.regions_failed}
    assert set(failed) == {"ap-east-1", "eu-west-1"}
    assert "AccessDeniedException" in failed["eu-west-1"]
    assert "after 1 event(s), kept" in failed["eu-west-1"]
    assert summary.total_events == 2  # the failing region's first page is kept
    assert summary.regions_searched == ("us-east-1",)


def test_hostile_or_malformed_event_documents_never_break_the_summary(
    stubs: dict[str, Stubber],
) -> None:
    good = raw_event(0, "CreateAccessKey", requestParameters={"userName": "x" * 5000})
    events = [
        good,
        {**raw_event(1), "CloudTrailEvent": "{not json"},
        {**raw_event(2), "CloudTrailEvent": "[1, 2, 3]"},
        {**raw_event(3), "CloudTrailEvent": "[" * 100_000 + "]" * 100_000},
        {**raw_event(4), "CloudTrailEvent": json.dumps({"userAgent": {"a": 1}, "readOnly": 3})},
        raw_event(5, userAgent="\u202e<img src=x onerror=alert(1)>\x1b[2J" + "A" * 9000),
        {k: v for k, v in raw_event(6).items() if k != "EventTime"},  # time from the document
        {
            **{k: v for k, v in raw_event(7).items() if k != "EventTime"},
            "CloudTrailEvent": json.dumps({"eventTime": "yesterday"}),
        },  # no usable time: left out
    ]
    stub_for(stubs, "us-east-1").add_response("lookup_events", {"Events": events})
    summary = activity(stubs, ["us-east-1"]).summary(KEY, START, END)
    assert summary.total_events == 7
    assert any("1 event(s) could not be read" in note for note in summary.notes)
    agents = [agent for agent, _ in summary.by_user_agent.top]
    assert all(len(agent) <= AGENT_MAX for agent in agents)
    assert all(agent.isprintable() for agent in agents)
    call = summary.access_calls[0]
    assert call.target is not None
    assert len(call.target) <= 160
    json.dumps(summary.to_dict())


def test_the_event_cap_stops_the_lookup_and_says_so(stubs: dict[str, Stubber]) -> None:
    stub = stub_for(stubs, "us-east-1")
    for page in range(3):
        stub.add_response(
            "lookup_events",
            {"Events": [raw_event(page * 50 + i) for i in range(50)], "NextToken": f"t{page}"},
        )  # a 4th page exists; it must not be asked for
    summary = activity(stubs, ["us-east-1"], max_events=120).summary(KEY, START, END)
    assert summary.total_events == 120
    assert summary.truncated
    assert not summary.complete
    assert any("event cap" in note for note in summary.notes)


def test_a_repeated_next_token_ends_the_region(stubs: dict[str, Stubber]) -> None:
    stub = stub_for(stubs, "us-east-1")
    stub.add_response("lookup_events", {"Events": [raw_event(1)], "NextToken": "same"})
    stub.add_response("lookup_events", {"Events": [raw_event(2)], "NextToken": "same"})
    summary = activity(stubs, ["us-east-1"]).summary(KEY, START, END)
    assert summary.regions_failed[0].reason == "LookupEvents repeated a NextToken"


def test_bad_key_id_or_window_is_refused_before_any_call(stubs: dict[str, Stubber]) -> None:
    source = activity(stubs, ["us-east-1"])
    with pytest.raises(BadInputError):
        source.summary("alice", START, END)
    with pytest.raises(BadInputError):
        source.summary(KEY, END, START)


def test_discovery_keeps_enabled_regions_of_the_home_partition() -> None:
    ec2 = _client("ec2", "eu-west-1")
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_regions",
            {
                "Regions": [
                    {"RegionName": "eu-west-1", "OptInStatus": "opt-in-not-required"},
                    {"RegionName": "af-south-1", "OptInStatus": "opted-in"},
                    {"RegionName": "ap-east-1", "OptInStatus": "not-opted-in"},
                    {"RegionName": "cn-north-1", "OptInStatus": "opt-in-not-required"},
                    {"RegionName": "us-gov-west-1"},
                ]
            },
            {"AllRegions": False},
        )
        found = EnabledRegions(ec2, "eu-west-1")()
    assert found == Regions(("af-south-1", "eu-west-1"))


def test_discovery_failing_searches_the_fallback_and_says_so() -> None:
    ec2 = _client("ec2", "eu-west-1")
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_regions", "UnauthorizedOperation", "no", 403)
        found = EnabledRegions(ec2, "eu-west-1", fallback=["eu-west-1", "eu-central-1"])()
    assert found.names == ("eu-west-1", "eu-central-1")
    assert found.failure is not None
    assert "UnauthorizedOperation" in found.failure.reason
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_regions", "UnauthorizedOperation", "no", 403)
        assert EnabledRegions(ec2, "eu-west-1")().names == ("eu-west-1", "us-east-1")


def test_discovery_failure_makes_the_summary_incomplete(stubs: dict[str, Stubber]) -> None:
    from keyturn.domain.activity import RegionFailure

    stub_for(stubs, "us-east-1").add_response("lookup_events", {"Events": []})
    source = CloudTrailActivity(
        lambda region: stubs[region].client,
        lambda: Regions(("us-east-1",), RegionFailure("(others)", "discovery failed")),
    )
    summary = source.summary(KEY, START, END)
    assert not summary.complete
    assert summary.total_events == 0
