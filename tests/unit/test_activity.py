"""The pure summary of what a key did (keyturn.domain.activity)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from keyturn.domain.activity import (
    ACCESS_CREATING_CALLS,
    AGENT_MAX,
    ActivityEvent,
    RegionFailure,
    clean,
    creates_access,
    summarize,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "AKIAEXAMPLEEXAMPLE01"


def event(name: str, minute: int = 0, **kw: object) -> ActivityEvent:
    return ActivityEvent.of(
        time=T0 + timedelta(minutes=minute),
        name=name,
        source=kw.pop("source", "iam.amazonaws.com"),
        region=kw.pop("region", "us-east-1"),
        **kw,
    )


def test_the_documented_access_calls_are_in_the_constant() -> None:
    for name in (
        "CreateUser",
        "CreateAccessKey",
        "AttachUserPolicy",
        "PutUserPolicy",
        "AttachRolePolicy",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "AssumeRole",
        "GetFederationToken",
        "GetSessionToken",
        "RunInstances",
        "CreateRole",
        "PutRolePolicy",
    ):
        assert name in ACCESS_CREATING_CALLS
    assert creates_access("CreateFunction20150331")
    assert creates_access("UpdateFunctionCode20150331v2")
    assert not creates_access("ListBuckets")


def test_summary_counts_and_lists_access_calls_first() -> None:
    events = [
        event("ListUsers", 5, source_ip="198.51.100.7", user_agent="aws-cli/2.15"),
        event("ListUsers", 6, source_ip="198.51.100.7", user_agent="aws-cli/2.15"),
        event("ListUsers", 7, source_ip="203.0.113.9", user_agent="aws-cli/2.15"),
        event("CreateUser", 9, source_ip="203.0.113.9", target="backdoor"),
        event(
            "RunInstances",
            1,
            source="ec2.amazonaws.com",
            region="eu-west-1",
            error_code="Client.UnauthorizedOperation",
        ),
        event("GetCallerIdentity", 0, source="sts.amazonaws.com", read_only="true"),
    ]
    s = summarize(
        events, key_id=KEY, start=T0, end=T0 + timedelta(hours=1), regions_searched=["us-east-1"]
    )
    assert s.total_events == 6
    assert s.failed_calls == 1
    assert s.first_seen == T0
    assert s.last_seen == T0 + timedelta(minutes=9)
    assert [e.name for e in s.access_calls] == ["RunInstances", "CreateUser"]  # oldest first
    assert s.access_calls[1].target == "backdoor"
    names = [v for v, _ in s.by_action.top]
    assert set(names[:2]) == {"CreateUser", "RunInstances"}
    assert names[2] == "ListUsers"
    assert dict(s.by_source_ip.top) == {"198.51.100.7": 2, "203.0.113.9": 2, "(none)": 2}
    assert dict(s.by_region.top) == {"us-east-1": 5, "eu-west-1": 1}
    assert s.complete
    doc = s.to_dict()
    assert list(doc)[:2] == ["key_id", "access_calls"]
    json.dumps(doc)  # JSON-ready


def test_tallies_are_bounded_and_count_the_rest() -> None:
    events = [event("ListUsers", i % 60, user_agent=f"agent-{i}") for i in range(1000)]
    s = summarize(events, key_id=KEY, start=T0, end=T0, top=10)
    assert len(s.by_user_agent.top) == 10
    assert s.by_user_agent.distinct == 1000
    assert s.by_user_agent.other == 990


def test_failed_region_or_cap_make_it_incomplete() -> None:
    s = summarize([], key_id=KEY, start=T0, end=T0, regions_failed=[RegionFailure("x", "no")])
    assert not s.complete
    assert any("region x not searched" in line for line in s.lines())
    assert not summarize([], key_id=KEY, start=T0, end=T0, truncated=True).complete


def test_hostile_text_is_bounded_and_printable() -> None:
    hostile = "curl\u202e<script>alert(1)</script>\x00\x1b[31m" + "A" * 10_000
    e = event("ListUsers", user_agent=hostile, source_ip={"not": "a string"}, read_only=7)
    assert e.user_agent is not None
    assert len(e.user_agent) <= AGENT_MAX
    assert all(ch.isprintable() for ch in e.user_agent)
    assert "\u202e" not in e.user_agent
    assert "\x1b" not in e.user_agent
    assert e.source_ip is None
    assert e.read_only is None
    assert clean("  \n\t ", 10) is None
    assert clean("a\n\nb", 10) == "a b"
