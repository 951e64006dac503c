"""The broker's replay guard under a flood (hostile review): a proof takes memory only once
STS verified it, identical proofs in flight at once are one use, and the memory is bounded
(full: new proofs refused, never an unexpired one forgotten)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyturn.adapters.sts_identity import StsIdentity
from keyturn.domain.broker_proof import GET_CALLER_IDENTITY, Proof, ProofError, request_digest
from keyturn.services.broker import (
    BrokerOptions,
    BrokerRequest,
    BrokerService,
    MemoryReplayGuard,
    ReplayMemoryFullError,
)
from keyturn.services.caller_limits import CallerLimits

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SIGNED = "content-type;host;x-amz-date;x-keyturn-request-sha256;x-keyturn-server-id"
ALICE = StsIdentity("arn:aws:iam::123456789012:user/alice", "123456789012", "AIDAALICE0000000001")


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def now(self) -> datetime:
        return self.at


class Verifier:
    """STS stand-in: refuses every proof unless `accept`; can hold a call until released."""

    def __init__(self, *, accept: bool = True) -> None:
        self.accept = accept
        self.calls = 0
        self.entered = threading.Event()
        self.hold: threading.Event | None = None

    def identify(self, proof: Proof) -> StsIdentity:
        self.calls += 1
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(10)
        if not self.accept:
            raise ProofError("proof refused by STS: SignatureDoesNotMatch")
        return ALICE


class Leases:
    def list_leases(self, prefix: str) -> list[Any]:
        return []


class Sink:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.seen.append(dict(event))


def world(
    verifier: Verifier, guard: MemoryReplayGuard | None = None, clock: Clock | None = None
) -> tuple[BrokerService, MemoryReplayGuard, Clock]:
    clock = clock or Clock()
    if guard is None:
        guard = MemoryReplayGuard(now=clock.now)
    service = BrokerService(
        Leases(),  # type: ignore[arg-type]
        verifier,
        BrokerOptions(server_id="broker-1", sts_host="sts.example"),
        clock,
        CallerLimits(6000, 1000),
        guard,
        Sink(),
    )
    return service, guard, clock


def request(nonce: int, clock: Clock) -> BrokerRequest:
    text = json.dumps({"nonce": nonce})
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/sts/"
        f"aws4_request, SignedHeaders={SIGNED}, Signature=abc",
        "Host": "sts.example",
        "X-Amz-Date": clock.now().strftime("%Y%m%dT%H%M%SZ"),
        "X-Keyturn-Server-ID": "broker-1",
        "X-Keyturn-Request-SHA256": request_digest("POST", "/v1/list", text),
    }
    body = {"request": text, "proof": {"headers": headers, "body": GET_CALLER_IDENTITY}}
    return BrokerRequest("POST", "/v1/list", json.dumps(body).encode())


def test_a_flood_of_proofs_sts_refuses_takes_no_memory() -> None:
    verifier = Verifier(accept=False)
    service, guard, clock = world(verifier)
    for nonce in range(200):
        assert service.handle(request(nonce, clock)).status == 401
    assert verifier.calls == 200
    assert guard.size == 0


def test_a_refused_lookalike_does_not_burn_the_honest_proof() -> None:
    """The replay key covers the signed values, not the signature: a forged proof with the
    same ones used to be recorded first and turn the honest request away."""
    verifier = Verifier(accept=False)
    service, guard, clock = world(verifier)
    assert service.handle(request(1, clock)).status == 401
    verifier.accept = True
    assert service.handle(request(1, clock)).status == 200
    assert service.handle(request(1, clock)).status == 401  # now used: a replay
    assert guard.size == 1


def test_identical_proofs_in_flight_at_once_are_one_use() -> None:
    verifier = Verifier()
    verifier.hold = threading.Event()
    service, _, clock = world(verifier)
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(service.handle(request(7, clock)).status))
    thread.start()
    assert verifier.entered.wait(10)
    second = service.handle(request(7, clock))  # while the first is with STS
    verifier.hold.set()
    thread.join(10)
    assert (first, second.status) == ([200], 401)
    assert second.body["error"] == "proof: already used (a replayed request)"
    assert verifier.calls == 1


def test_a_full_memory_refuses_new_proofs_and_never_forgets_an_unexpired_one() -> None:
    clock = Clock()
    guard = MemoryReplayGuard(now=clock.now, capacity=2)
    service, _, _ = world(Verifier(), guard, clock)
    assert [service.handle(request(n, clock)).status for n in (1, 2)] == [200, 200]
    full = service.handle(request(3, clock))
    assert full.status == 503
    assert int(full.headers["Retry-After"]) > 0
    assert service.handle(request(1, clock)).status == 401  # still remembered: no replay
    assert guard.size == 2
    clock.at = NOW + timedelta(minutes=10, seconds=1)  # both expired (2 x the 5 min age)
    assert service.handle(request(4, clock)).status == 200
    assert guard.size == 1


def test_the_guard_forgets_oldest_expired_first_and_keeps_order_on_reuse() -> None:
    clock = Clock()
    guard = MemoryReplayGuard(now=clock.now, capacity=2)
    assert guard.first_use("a", NOW + timedelta(minutes=1))
    assert guard.first_use("b", NOW + timedelta(minutes=2))
    with pytest.raises(ReplayMemoryFullError):
        guard.first_use("c", NOW + timedelta(minutes=3))
    clock.at = NOW + timedelta(minutes=1, seconds=1)  # "a" expired, "b" not
    assert guard.first_use("a", NOW + timedelta(minutes=4))  # re-used after expiry: newest
    assert not guard.first_use("b", NOW + timedelta(minutes=5))
    assert guard.seen("a")
    assert guard.seen("b")
    clock.at = NOW + timedelta(minutes=2, seconds=1)  # "b" expired: it goes first
    assert guard.first_use("c", NOW + timedelta(minutes=6))
    assert not guard.seen("b")
    assert guard.seen("a")
