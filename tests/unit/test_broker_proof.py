"""The broker's checks on a proof before STS sees it (keyturn.domain.broker_proof), as
boundary tables; and one use per proof."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyturn.domain.broker_proof import (
    GET_CALLER_IDENTITY,
    ProofError,
    check_proof,
    parse_proof,
    request_digest,
)
from keyturn.services.broker import MemoryReplayGuard

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SIGNED = "content-type;host;x-amz-date;x-keyturn-request-sha256;x-keyturn-server-id"
DIGEST = request_digest("POST", "/v1/issue", "{}")


def headers(**changes: Any) -> dict[str, str]:
    found = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/aws4_request, "
        f"SignedHeaders={SIGNED}, Signature=abc",
        "Host": "sts.example",
        "X-Amz-Date": NOW.strftime("%Y%m%dT%H%M%SZ"),
        "X-Keyturn-Server-ID": "broker-1",
        "X-Keyturn-Request-SHA256": DIGEST,
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


def check(
    proof_headers: dict[str, str], body: str = GET_CALLER_IDENTITY, *, now: datetime = NOW
) -> None:
    check_proof(
        parse_proof({"headers": proof_headers, "body": body}),
        server_id="broker-1",
        digest=DIGEST,
        sts_host="sts.example",
        now=now,
        max_age=timedelta(seconds=300),
    )


@pytest.mark.parametrize(
    ("skew", "ok"),
    [(0, True), (300, True), (301, False), (-300, True), (-301, False), (86400, False)],
)
def test_freshness_boundary(skew: int, ok: bool) -> None:
    later = NOW + timedelta(seconds=skew)
    if ok:
        check(headers(), now=later)
    else:
        with pytest.raises(ProofError, match="expired or clock skew"):
            check(headers(), now=later)


@pytest.mark.parametrize(
    ("changes", "body", "says"),
    [
        ({}, GET_CALLER_IDENTITY + "&Extra=1", "exactly"),
        ({}, "Action=GetCallerIdentity&Version=2011-06-15 ", "exactly"),
        ({"Authorization": None}, GET_CALLER_IDENTITY, "not signed"),
        ({"Authorization": "AWS4-HMAC-SHA1 x"}, GET_CALLER_IDENTITY, "not signed"),
        (
            {"Authorization": "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=a"},
            GET_CALLER_IDENTITY,
            "signed headers",
        ),
        ({"Host": "169.254.169.254"}, GET_CALLER_IDENTITY, "STS host"),
        ({"X-Keyturn-Server-ID": "broker-2"}, GET_CALLER_IDENTITY, "another server"),
        ({"X-Keyturn-Server-ID": None}, GET_CALLER_IDENTITY, "another server"),
        ({"X-Keyturn-Request-SHA256": "0" * 64}, GET_CALLER_IDENTITY, "different request"),
        ({"X-Amz-Date": "yesterday"}, GET_CALLER_IDENTITY, "not a timestamp"),
    ],
)
def test_each_binding_is_checked(changes: dict[str, Any], body: str, says: str) -> None:
    with pytest.raises(ProofError, match=says):
        check(headers(**changes), body)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "x",
        {"headers": [], "body": ""},
        {"headers": {"a": 1}, "body": ""},
        {"headers": {"a": "b\r\nInjected: 1"}, "body": ""},
        {"headers": {"Host": "a", "host": "b"}, "body": ""},
        {"headers": {str(i): "v" for i in range(30)}, "body": ""},
    ],
)
def test_malformed_proofs_are_refused(data: Any) -> None:
    with pytest.raises(ProofError):
        parse_proof(data)


def test_a_proof_is_used_once_while_it_could_still_pass() -> None:
    clock = [NOW]
    guard = MemoryReplayGuard(now=lambda: clock[0])
    until = NOW + timedelta(minutes=10)
    assert guard.first_use("sig", until)
    assert not guard.first_use("sig", until)
    assert guard.first_use("other", until)
    clock[0] = until + timedelta(seconds=1)  # too old for the age check by then
    assert guard.first_use("sig", until + timedelta(minutes=10))
