"""What a key did (keyturn.domain.activity), tested where mutation testing found it loose
(issue 18): the summary's counts as properties (every tally sums to the total, access calls
first, oldest first), the text bounds and the window as boundary tables."""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.domain.activity import (
    ACCESS_CALLS_SHOWN,
    ACCESS_CREATING_CALLS,
    AGENT_MAX,
    IP_MAX,
    NAME_MAX,
    TARGET_MAX,
    TOP,
    ActivityEvent,
    ActivitySummary,
    RegionFailure,
    Tally,
    base_name,
    clean,
    creates_access,
    summarize,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = "AKIAEXAMPLEEXAMPLE01"
ACCESS = sorted(ACCESS_CREATING_CALLS)
OTHER = ["ListUsers", "GetUser", "DescribeInstances", "GetCallerIdentity", "ListBuckets"]


def event(name: str, minute: int = 0, **kw: object) -> ActivityEvent:
    return ActivityEvent.of(
        time=T0 + timedelta(minutes=minute),
        name=name,
        source=kw.pop("source", "iam.amazonaws.com"),
        region=kw.pop("region", "us-east-1"),
        **kw,
    )


def tally_sum(tally: Tally) -> int:
    return sum(n for _, n in tally.top) + tally.other


events = st.builds(
    event,
    name=st.one_of(
        st.sampled_from(ACCESS + OTHER),
        st.sampled_from(ACCESS).map(lambda n: n + "20150331"),
        st.text(max_size=6),
    ),
    minute=st.integers(-60, 60),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-south-1", ""]),
    source_ip=st.one_of(st.none(), st.sampled_from(["198.51.100.7", "203.0.113.9", " "])),
    user_agent=st.one_of(st.none(), st.text(max_size=4)),
    error_code=st.one_of(st.none(), st.just("AccessDenied"), st.just("")),
)


@given(st.lists(events, max_size=40), st.integers(1, 6))
def test_every_tally_sums_to_the_total_and_access_calls_come_first(
    found: list[ActivityEvent], top: int
) -> None:
    s = summarize(found, key_id=KEY, start=T0, end=T0, top=top)
    assert s.total_events == len(found)
    for tally in (s.by_action, s.by_source_ip, s.by_region, s.by_user_agent):
        assert tally_sum(tally) == len(found)
    for tally in (s.by_source_ip, s.by_region, s.by_user_agent):
        assert len(tally.top) == min(top, tally.distinct)
    assert s.by_action.distinct == len({e.name for e in found})
    assert s.by_region.distinct == len({e.region for e in found})
    assert s.failed_calls == sum(1 for e in found if e.error_code)
    access = [e for e in found if e.creates_access]
    assert s.access_calls_total == len(access)
    assert sorted(s.access_calls, key=lambda e: (e.time, e.name, e.region)) == list(s.access_calls)
    assert Counter(s.access_calls) == Counter(access)
    # in by_action: every access-creating action first, then at most `top` others
    kinds = [creates_access(name) for name, _ in s.by_action.top]
    assert kinds == sorted(kinds, reverse=True)
    assert sum(kinds) == len({e.name for e in access})
    assert len(kinds) - sum(kinds) <= top
    assert s.first_seen == min((e.time for e in found), default=None)
    assert s.last_seen == max((e.time for e in found), default=None)


def test_access_actions_beyond_the_shown_cap_are_still_counted() -> None:
    """More distinct access-creating names than `ACCESS_CALLS_SHOWN`: the ones not shown are
    counted in `other`, so the tally still sums to the total (they were dropped)."""
    found = [event(f"CreateUser{i:08d}", i % 60) for i in range(ACCESS_CALLS_SHOWN + 50)]
    found.append(event("GetUser"))
    s = summarize(found, key_id=KEY, start=T0, end=T0)
    assert len(s.by_action.top) == ACCESS_CALLS_SHOWN + 1
    assert s.by_action.other == 50
    assert tally_sum(s.by_action) == s.total_events
    assert len(s.access_calls) == ACCESS_CALLS_SHOWN
    assert s.access_calls_total == ACCESS_CALLS_SHOWN + 50


def test_the_default_top_is_the_module_constant() -> None:
    found = [
        event("GetUser", user_agent=f"agent-{i:03d}", source_ip=f"ip-{i}", region=f"r-{i}")
        for i in range(TOP + 5)
    ]
    s = summarize(found, key_id=KEY, start=T0, end=T0)
    for tally in (s.by_user_agent, s.by_source_ip, s.by_region):
        assert len(tally.top) == TOP
        assert tally.other == 5
    assert len(Tally.of(Counter({f"v{i:03d}": 1 for i in range(TOP + 3)})).top) == TOP


def test_tally_ranks_by_count_then_value() -> None:
    tally = Tally.of(Counter({"b": 2, "a": 2, "c": 5, "d": 1}), top=3)
    assert tally == Tally(top=(("c", 5), ("a", 2), ("b", 2)), distinct=4, other=1)
    assert tally.to_dict() == {
        "top": [{"value": "c", "count": 5}, {"value": "a", "count": 2}, {"value": "b", "count": 2}],
        "distinct": 4,
        "other": 1,
    }
    assert Tally.of(Counter()) == Tally()


def test_access_calls_tie_break_on_name_then_region() -> None:
    found = [
        event("RunInstances", region="us-east-1"),
        event("CreateUser", region="us-east-1"),
        event("CreateUser", region="eu-west-1"),
    ]
    s = summarize(found, key_id=KEY, start=T0, end=T0)
    assert [(e.name, e.region) for e in s.access_calls] == [
        ("CreateUser", "eu-west-1"),
        ("CreateUser", "us-east-1"),
        ("RunInstances", "us-east-1"),
    ]


def test_only_the_first_shown_access_calls_are_kept_oldest_first() -> None:
    found = [event("CreateUser", i) for i in range(ACCESS_CALLS_SHOWN + 3, 0, -1)]
    s = summarize(found, key_id=KEY, start=T0, end=T0)
    assert len(s.access_calls) == ACCESS_CALLS_SHOWN
    assert s.access_calls[0].time == T0 + timedelta(minutes=1)
    assert s.access_calls[-1].time == T0 + timedelta(minutes=ACCESS_CALLS_SHOWN)


# -- texts: cleaned and bounded --------------------------------------------------------------


@given(st.text(max_size=300), st.integers(1, 50))
def test_clean_is_one_bounded_printable_line(value: str, limit: int) -> None:
    text = clean(value, limit)
    if text is None:
        return
    assert 1 <= len(text) <= limit
    assert text == text.strip()
    assert "  " not in text
    assert all(not ch.isspace() or ch == " " for ch in text)
    assert all(unicodedata.category(ch)[0] != "C" for ch in text)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("abc", 3, "abc"),  # exactly the limit: kept whole
        ("abcd", 3, "ab…"),  # one over: cut, with the ellipsis inside the limit
        ("abcdef", 1, "…"),
        ("a", 1, "a"),
        ("abc", 0, None),
        ("abc", -1, None),
        ("", 5, None),
        (" \t\n ", 5, None),
        ("  a  b  ", 10, "a b"),
        ("a\u200bb", 10, "a?b"),  # zero-width space: a formatting character
        ("a\u202eb", 10, "a?b"),  # right-to-left override
        ("a\x00b\x7fc", 10, "a?b?c"),
        ("\x00", 5, "?"),
        ("é日本", 5, "é日本"),  # printable non-ASCII is kept
        (7, 5, None),
        (["a"], 5, None),
        (None, 5, None),
    ],
)
def test_clean_table(value: object, limit: int, expected: str | None) -> None:
    assert clean(value, limit) == expected


def test_clean_reads_at_most_four_times_the_limit() -> None:
    assert clean("a" * 40 + "b", 10) == "a" * 9 + "…"
    assert clean(" " * 40 + "b", 10) is None  # the part past 4 x limit is never walked
    assert clean(" " * 39 + "b", 10) == "b"


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("name", NAME_MAX),
        ("source", NAME_MAX),
        ("region", NAME_MAX),
        ("source_ip", IP_MAX),
        ("user_agent", AGENT_MAX),
        ("error_code", NAME_MAX),
        ("target", TARGET_MAX),
    ],
)
def test_each_field_has_its_bound(field: str, limit: int) -> None:
    raw = {"name": "GetUser", "source": "iam", "region": "us-east-1"}
    exact = ActivityEvent.of(time=T0, **{**raw, field: "x" * limit})
    over = ActivityEvent.of(time=T0, **{**raw, field: "x" * (limit + 1)})
    assert getattr(exact, field) == "x" * limit
    assert getattr(over, field) == "x" * (limit - 1) + "…"


def test_the_bounds_are_the_documented_ones() -> None:
    assert (NAME_MAX, IP_MAX, AGENT_MAX, TARGET_MAX, TOP, ACCESS_CALLS_SHOWN) == (
        128,
        64,
        200,
        160,
        25,
        200,
    )


def test_missing_texts_get_placeholders() -> None:
    e = ActivityEvent.of(time=T0, name=None, source=3, region="  ")
    assert (e.name, e.source, e.region) == ("(unnamed)", "(unknown)", "(unknown)")
    assert (e.source_ip, e.user_agent, e.error_code, e.target) == (None, None, None, None)


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("false", False),
        ("yes", None),
        ("", None),
        (1, None),
        (0, None),
        (None, None),
    ],
)
def test_read_only_is_a_bool_or_unknown(raw: object, flag: bool | None) -> None:
    assert event("GetUser", read_only=raw).read_only is flag


@pytest.mark.parametrize(
    ("name", "base", "grants"),
    [
        ("CreateFunction20150331", "CreateFunction", True),
        ("UpdateFunctionCode20150331v2", "UpdateFunctionCode", True),
        ("CreateFunction2015033", "CreateFunction2015033", False),  # 7 digits: no suffix
        ("20150331", "20150331", False),  # nothing but a suffix: kept
        ("CreateUser", "CreateUser", True),
        ("CreateUserX", "CreateUserX", False),
        ("createuser", "createuser", False),
        ("ListUsers", "ListUsers", False),
    ],
)
def test_base_name_and_access_table(name: str, base: str, grants: bool) -> None:
    assert base_name(name) == base
    assert creates_access(name) is grants
    assert event(name).creates_access is grants


def test_an_event_dict_says_why_a_call_creates_access() -> None:
    e = event(
        "CreateFunction20150331",
        3,
        source_ip="203.0.113.9",
        user_agent="boto3",
        error_code="AccessDenied",
        read_only=False,
        target="fn",
    )
    assert e.to_dict() == {
        "time": "2024-05-01T12:03:00+00:00",
        "name": "CreateFunction20150331",
        "source": "iam.amazonaws.com",
        "region": "us-east-1",
        "source_ip": "203.0.113.9",
        "user_agent": "boto3",
        "error_code": "AccessDenied",
        "read_only": False,
        "target": "fn",
        "why": "a Lambda function",
    }
    assert event("GetUser").to_dict()["why"] is None


# -- the summary as people and JSON read it -------------------------------------------------


def summary(**kw: object) -> ActivitySummary:
    found = [
        event("GetUser", 0),
        event("CreateUser", 2, target="backdoor", source_ip="203.0.113.9", error_code="Denied"),
        event("AssumeRole", 1, region="eu-west-1"),
    ]
    return summarize(
        found,
        key_id=KEY,
        start=T0 - timedelta(hours=1),
        end=T0 + timedelta(hours=1),
        regions_searched=["us-east-1", "eu-west-1", "us-east-1"],
        **kw,  # type: ignore[arg-type]
    )


def test_lines_name_the_totals_and_each_access_call() -> None:
    assert summary().lines() == [
        f"{KEY}: 3 CloudTrail event(s) in 2 region(s), "
        "2024-05-01T12:00:00+00:00 .. 2024-05-01T12:02:00+00:00",
        "2 call(s) that create access:",
        "  2024-05-01T12:01:00+00:00 eu-west-1 AssumeRole",
        "  2024-05-01T12:02:00+00:00 us-east-1 CreateUser backdoor from 203.0.113.9 (Denied)",
    ]


def test_lines_of_an_incomplete_summary_say_so_and_why() -> None:
    s = summary(
        regions_failed=[RegionFailure("ap-south-1", "AccessDenied"), RegionFailure("af", "x")],
        truncated=True,
        notes=["a note"],
    )
    assert s.lines()[0].endswith(" (incomplete)")
    assert s.lines()[-4:] == [
        "region af not searched: x",
        "region ap-south-1 not searched: AccessDenied",
        "stopped at 3 events (the event cap)",
        "a note",
    ]
    empty = summarize([], key_id=KEY, start=T0, end=T0)
    assert empty.lines() == [f"{KEY}: 0 CloudTrail event(s) in 0 region(s), no events"]


def test_lines_show_at_most_twenty_access_calls() -> None:
    s = summarize([event("CreateUser", i) for i in range(30)], key_id=KEY, start=T0, end=T0)
    assert len(s.lines()) == 2 + 20
    assert s.lines()[1] == "30 call(s) that create access:"


@pytest.mark.parametrize(
    ("failed", "truncated", "complete"),
    [((), False, True), ((RegionFailure("x", "y"),), False, False), ((), True, False)],
)
def test_complete_only_when_every_region_answered_and_nothing_was_cut(
    failed: tuple[RegionFailure, ...], truncated: bool, complete: bool
) -> None:
    s = summarize([], key_id=KEY, start=T0, end=T0, regions_failed=failed, truncated=truncated)
    assert s.complete is complete
    assert s.to_dict()["complete"] is complete


def test_the_json_form_holds_every_field() -> None:
    s = summary(regions_failed=[RegionFailure("af", "x")], notes=["n"], truncated=True)
    doc = s.to_dict()
    assert list(doc) == [
        "key_id",
        "access_calls",
        "access_calls_total",
        "window",
        "complete",
        "truncated",
        "regions_searched",
        "regions_failed",
        "total_events",
        "failed_calls",
        "first_seen",
        "last_seen",
        "by_action",
        "by_source_ip",
        "by_region",
        "by_user_agent",
        "notes",
    ]
    assert doc["key_id"] == KEY
    assert [c["name"] for c in doc["access_calls"]] == ["AssumeRole", "CreateUser"]
    assert doc["access_calls_total"] == 2
    assert doc["window"] == {
        "start": "2024-05-01T11:00:00+00:00",
        "end": "2024-05-01T13:00:00+00:00",
    }
    assert (doc["complete"], doc["truncated"]) == (False, True)
    assert doc["regions_searched"] == ["eu-west-1", "us-east-1"]
    assert doc["regions_failed"] == [{"region": "af", "reason": "x"}]
    assert (doc["total_events"], doc["failed_calls"]) == (3, 1)
    assert doc["first_seen"] == "2024-05-01T12:00:00+00:00"
    assert doc["last_seen"] == "2024-05-01T12:02:00+00:00"
    assert doc["by_action"] == s.by_action.to_dict()
    assert doc["by_source_ip"] == s.by_source_ip.to_dict()
    assert doc["by_region"] == {
        "top": [{"value": "us-east-1", "count": 2}, {"value": "eu-west-1", "count": 1}],
        "distinct": 2,
        "other": 0,
    }
    assert doc["by_user_agent"] == s.by_user_agent.to_dict()
    assert doc["notes"] == ["n"]
    none = summarize([], key_id=KEY, start=T0, end=T0).to_dict()
    assert (none["first_seen"], none["last_seen"]) == (None, None)


def test_the_summary_keeps_what_it_was_given() -> None:
    s = summary(notes=("a", "b"))
    assert (s.key_id, s.start, s.end) == (KEY, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert s.notes == ("a", "b")
    assert not s.truncated
    assert s.regions_failed == ()
    assert dict(s.by_source_ip.top) == {"(none)": 2, "203.0.113.9": 1}
    assert dict(s.by_user_agent.top) == {"(none)": 3}
