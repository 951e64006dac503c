"""Parsing the IAM credential report: real AWS's shape, its placeholders, and bad input."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.adapters.credential_report import fetch_report, parse_report
from keyturn.domain.errors import AccessDeniedError, ReportError
from keyturn.domain.model import ROOT_USER, KeyStatus

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)
# Rows as real AWS writes them: root, a user with two keys, one with none, one never used.
REPORT = "\n".join(
    [
        HEADER,
        "<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,"
        "2026-11-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,"
        "false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        "alice,arn:aws:iam::111122223333:user/eng/alice,2024-01-01T00:00:00+00:00,true,"
        "no_information,2024-01-01T00:00:00+00:00,N/A,true,true,2026-10-01T08:00:00+00:00,"
        "2026-11-20T10:00:00+00:00,eu-west-1,s3,false,2026-11-10T08:00:00+00:00,N/A,N/A,N/A,"
        "false,N/A,false,N/A",
        "bob,arn:aws:iam::111122223333:user/bob,2024-01-01T00:00:00+00:00,false,N/A,N/A,N/A,"
        "false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        "carol,arn:aws:iam::111122223333:user/carol,2024-01-01T00:00:00+00:00,false,N/A,N/A,"
        "N/A,false,true,2026-06-01T00:00:00Z,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,"
        "N/A",
    ]
).encode()


def test_one_key_per_used_slot_with_every_field() -> None:
    keys = list(parse_report(REPORT))
    assert [(k.user, k.slot) for k in keys] == [("alice", 1), ("alice", 2), ("carol", 1)]
    first, second, carol = keys
    assert first.account == "111122223333"
    assert first.status is KeyStatus.ACTIVE
    assert first.created == datetime(2026, 10, 1, 8, tzinfo=UTC)
    assert first.last_used is not None
    assert (first.last_used.service, first.last_used.region) == ("s3", "eu-west-1")
    assert second.status is KeyStatus.INACTIVE
    assert second.last_used is None
    assert carol.created == datetime(2026, 6, 1, tzinfo=UTC)
    assert carol.last_used is None
    assert all(k.key_id is None for k in keys)


def test_root_keys_are_reported() -> None:
    row = (
        "<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,not_supported,"
        "N/A,not_supported,not_supported,true,true,2021-01-01T00:00:00+00:00,N/A,N/A,N/A,"
        "false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
    )
    keys = list(parse_report(f"{HEADER}\n{row}\n".encode()))
    assert [(k.user, k.slot, k.active) for k in keys] == [(ROOT_USER, 1, True)]


def test_extra_columns_are_ignored_and_order_does_not_matter() -> None:
    content = (
        b"future_column,access_key_2_last_rotated,access_key_2_active,access_key_1_active,"
        b"access_key_1_last_rotated,arn,user\n"
        b"x,N/A,false,true,2026-01-01T00:00:00+00:00,arn:aws:iam::111122223333:user/dan,dan\n"
    )
    (only,) = parse_report(content)
    assert only.user == "dan"
    assert only.last_used is None  # last-used columns absent: unknown, not an error


def test_bom_and_crlf_are_accepted() -> None:
    content = b"\xef\xbb\xbf" + REPORT.replace(b"\n", b"\r\n")
    assert len(list(parse_report(content))) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"user,arn\nalice,arn:aws:iam::1:user/alice\n", "lacks column"),
        (REPORT.replace(b"alice,arn:aws:iam::111122223333", b"alice,not-an-arn"), "not an ARN"),
        (REPORT.replace(b"true,2026-10-01T08", b"yes,2026-10-01T08"), "true or false"),
        (REPORT.replace(b"2026-10-01T08:00:00+00:00", b"yesterday"), "not a date"),
        (REPORT.replace(b"2026-10-01T08:00:00+00:00", b"2026-10-01T08:00:00"), "time zone"),
    ],
)
def test_malformed_reports_name_the_problem(content: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        list(parse_report(content))


def test_error_names_the_line() -> None:
    bad = REPORT.replace(b"true,2026-06-01", b"maybe,2026-06-01")
    with pytest.raises(ReportError, match="line 5"):
        list(parse_report(bad))


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(REPORT)), max_size=20))
def test_chunked_stream_parses_like_the_whole(cuts: list[int]) -> None:
    points = sorted({0, len(REPORT), *cuts})
    chunks = [REPORT[a:b] for a, b in itertools.pairwise(points)]
    assert list(parse_report(iter(chunks))) == list(parse_report(REPORT))


class FakeIam:
    """Answers GenerateCredentialReport with a scripted sequence of states."""

    def __init__(self, states: list[str], content: bytes = REPORT) -> None:
        self.states = states
        self.content = content
        self.calls: list[str] = []

    def generate_credential_report(self) -> dict[str, Any]:
        self.calls.append("generate")
        return {"State": self.states.pop(0) if len(self.states) > 1 else self.states[0]}

    def get_credential_report(self) -> dict[str, Any]:
        self.calls.append("get")
        return {"Content": self.content, "ReportFormat": "text/csv"}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_fetch_polls_until_complete_with_backoff() -> None:
    iam = FakeIam(["STARTED", "INPROGRESS", "INPROGRESS", "COMPLETE"])
    clock = FakeTime()
    content = fetch_report(iam, sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
    assert content == REPORT
    assert iam.calls == ["generate"] * 4 + ["get"]
    assert clock.sleeps == sorted(clock.sleeps)  # backing off, never hammering


def test_fetch_gives_up_after_the_bounded_wait() -> None:
    iam = FakeIam(["INPROGRESS"])
    clock = FakeTime()
    with pytest.raises(ReportError, match="not ready after 10s"):
        fetch_report(
            iam,  # type: ignore[arg-type]
            max_wait_seconds=10,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    assert clock.now <= 10
    assert "get" not in iam.calls


def test_fetch_translates_access_denied() -> None:
    from botocore.exceptions import ClientError

    class Denied(FakeIam):
        def generate_credential_report(self) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not allowed"}},
                "GenerateCredentialReport",
            )

    with pytest.raises(AccessDeniedError, match="iam:GenerateCredentialReport"):
        fetch_report(Denied(["COMPLETE"]))  # type: ignore[arg-type]
