"""The lease broker: one request in, one response out, the same code behind
`keyturn broker serve` (http.server) and the Lambda function URL (handlers/broker.py).

The broker holds the lease-issuer permissions; callers hold none. A request is

    POST /v1/{issue,renew,revoke,list}
    {"request": "<JSON text of the parameters>", "proof": {"headers": {...}, "body": "..."}}

where `proof` is a SigV4-signed sts:GetCallerIdentity bound to this broker and to this exact
request (keyturn.domain.broker_proof). Order of checks, cheapest first, nothing created
before the last: size, JSON, the request's fields, the proof's shape and bindings, not
already used (nor in flight), STS's verdict (who signed it), then its one use recorded
(only a proof STS verified takes memory), the caller's rate, the role's rules
(keyturn.domain.authorization), then the lease service. Each refusal is a 4xx with
`{"error": "<one line>"}` and one audit event; every request gets exactly one audit event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from keyturn.adapters.replay_dynamodb import DynamoReplayGuard
from keyturn.adapters.sts_identity import StsIdentity
from keyturn.domain.authorization import (
    Caller,
    Verdict,
    canonical_caller,
    may_issue,
    may_manage,
)
from keyturn.domain.broker_proof import Proof, ProofError, check_proof, parse_proof, request_digest
from keyturn.domain.errors import (
    AccessError,
    BadInputError,
    KeyturnError,
    NotFoundError,
)
from keyturn.domain.leases import LEASE_PREFIX, Lease, parse_duration
from keyturn.ports import Clock, EventSink
from keyturn.services.caller_limits import CallerLimits
from keyturn.services.leases import ISSUE_CALLS, IssuedCredential, LeaseService

MAX_BODY = 64 * 1024
ROUTES = ("issue", "renew", "revoke", "list")
PATH_PREFIX = "/v1/"

# What the Broker function calls (its IAM policy; keyturn.deploy.functions): issuing, renew
# (get, replace), revoke (the user sweep), list, and the one-use record of each proof.
CALLS: tuple[Callable[..., object], ...] = (*ISSUE_CALLS, DynamoReplayGuard.first_use)


class Verifier(Protocol):
    def identify(self, proof: Proof) -> StsIdentity: ...


class ReplayGuard(Protocol):
    def seen(self, key: str) -> bool:
        """True when `key` is recorded as used and not yet forgotten (a cheap early refusal;
        may say False for a used key: `first_use` is the check that counts)."""
        ...

    def first_use(self, key: str, until: datetime) -> bool:
        """Record `key` as used, atomically: True the first time (remembered at least
        until `until`), False when it was used already. Called only for a proof STS
        verified, so what it holds grows with real callers' requests, never with garbage."""
        ...


class ReplayMemoryFullError(KeyturnError):
    """The in-memory guard holds `capacity` unexpired proofs: new proofs are refused (503)
    until the oldest expire, rather than forgetting one that could still be replayed."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(
            f"broker busy: {capacity} recent requests remembered against replay; "
            f"retry in {retry_after}s"
        )
        self.retry_after = retry_after


# ~200 bytes an entry (a 64-char key, a datetime, the dict slot): 100 000 is ~20 MB, and
# with the default 5-minute proof age (remembered 10) about 160 verified requests a second
# sustained, far above one broker's caller limits.
REPLAY_CAPACITY = 100_000


class MemoryReplayGuard:
    """One process's memory of used proofs (`broker serve`; one warm Lambda instance with
    the SQLite store).

    Bounded: at most `capacity` entries. Every entry lives the same time (twice the proof
    age), so insertion order is expiry order and the oldest expired entries are forgotten
    first, one at a time (amortised O(1)). When every entry is still unexpired, a new proof
    is *refused* (ReplayMemoryFullError, a 503 with Retry-After) rather than the oldest
    forgotten: forgetting an unexpired proof would let a captured one be replayed, and an
    attacker who can fill the memory could pick which one. Filling it takes `capacity`
    proofs STS verified (only those are recorded), from principals AWS knows.
    """

    def __init__(
        self,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        capacity: int = REPLAY_CAPACITY,
    ) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._now = now
        self.capacity = capacity

    @property
    def size(self) -> int:
        """How many proofs are remembered. (Deliberately not `__len__`: an empty guard would
        be falsy, and `memory or MemoryReplayGuard()` would drop the shared one.)"""
        return len(self._seen)

    def seen(self, key: str) -> bool:
        with self._lock:
            until = self._seen.get(key)
            return until is not None and until > self._now()

    def first_use(self, key: str, until: datetime) -> bool:
        with self._lock:
            now = self._now()
            self._forget_expired(now)
            known = self._seen.get(key)
            if known is not None and known > now:
                return False
            if len(self._seen) >= self.capacity:
                oldest = next(iter(self._seen.values()))
                wait = max(1, int((oldest - now).total_seconds() + 0.999))
                raise ReplayMemoryFullError(self.capacity, wait)
            self._seen.pop(key, None)  # re-inserted at the end: order stays expiry order
            self._seen[key] = until
            return True

    def _forget_expired(self, now: datetime) -> None:
        """Drop expired entries from the oldest end. A clock stepped back can leave an
        expired entry behind an unexpired one: kept a little longer, never wrongly dropped."""
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest] > now:
                return
            del self._seen[oldest]


class InFlight:
    """Proofs being checked by STS right now in this process: a second identical proof
    arriving meanwhile is refused as a replay, though nothing is recorded yet. Bounded by
    the requests served at once (`broker serve`'s connection cap; one in a Lambda)."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys.add(key)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._keys.discard(key)


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    server_id: str
    sts_host: str
    proof_max_age: timedelta = timedelta(minutes=5)
    max_body: int = MAX_BODY


@dataclass(frozen=True, slots=True)
class BrokerRequest:
    method: str
    path: str
    body: bytes


@dataclass(frozen=True, slots=True)
class BrokerResponse:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the body of an issue carries a secret
        return f"BrokerResponse(status={self.status})"


class Refused(Exception):
    """A request the broker answers with a 4xx; `message` is the one line the caller sees."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class BrokerService:
    def __init__(
        self,
        leases: LeaseService,
        verifier: Verifier,
        options: BrokerOptions,
        clock: Clock,
        limits: CallerLimits,
        replay: ReplayGuard,
        sink: EventSink,
    ) -> None:
        self._leases = leases
        self._verifier = verifier
        self._options = options
        self._clock = clock
        self._limits = limits
        self._replay = replay
        self._sink = sink
        self._in_flight = InFlight()

    def handle(self, request: BrokerRequest) -> BrokerResponse:
        audit: dict[str, Any] = {"event": "broker.request", "path": request.path[:100]}
        try:
            status, body = self._handle(request, audit)
        except Refused as refused:
            self._emit(audit, refused.status, refused.message)
            return BrokerResponse(refused.status, {"error": refused.message}, refused.headers)
        except KeyturnError as exc:
            status = _status_of(exc)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # The operator's log keeps the whole text (an AWS error's detail can follow the
            # first line); the caller gets the one line.
            self._emit(audit, status, str(exc)[:2000] or message)
            return BrokerResponse(status, {"error": message})
        except Exception as exc:
            self._emit(audit, 500, f"internal error ({type(exc).__name__})")
            return BrokerResponse(500, {"error": "internal error; see the broker's log"})
        self._emit(audit, status, "ok")
        return BrokerResponse(status, body)

    def _emit(self, audit: dict[str, Any], status: int, outcome: str) -> None:
        audit["status"] = status
        audit["outcome"] = outcome
        audit["decision"] = "allowed" if status < 400 else "denied" if status < 500 else "error"
        self._sink.emit(audit)

    # -- the checks, in order ------------------------------------------------------------

    def _handle(self, request: BrokerRequest, audit: dict[str, Any]) -> tuple[int, Any]:
        if request.method != "POST":
            raise Refused(405, f"use POST (not {request.method[:10]})")
        action = request.path[len(PATH_PREFIX) :] if request.path.startswith(PATH_PREFIX) else ""
        if action not in ROUTES:
            raise Refused(
                404, f"no such endpoint {request.path[:100]!r} (POST /v1/{'|'.join(ROUTES)})"
            )
        audit["action"] = action
        if len(request.body) > self._options.max_body:
            raise Refused(413, f"request body is larger than {self._options.max_body} bytes")
        envelope = _json_object(request.body, "request body")
        text = envelope.get("request")
        if not isinstance(text, str):
            raise Refused(400, "request body: 'request' must be a string holding a JSON object")
        params = _json_object(text.encode(), "request")
        try:
            proof = parse_proof(envelope.get("proof"))
            check_proof(
                proof,
                server_id=self._options.server_id,
                digest=request_digest(request.method, request.path, text),
                sts_host=self._options.sts_host,
                now=self._clock.now(),
                max_age=self._options.proof_max_age,
            )
        except ProofError as exc:
            raise Refused(401, str(exc)) from None
        identity = self._verified_once(proof)
        audit["caller_arn"] = identity.arn
        try:
            caller = canonical_caller(identity.arn, identity.user_id)
        except BadInputError as exc:
            raise Refused(403, str(exc)) from None
        audit["caller"] = caller.arn
        audit["caller_id"] = caller.unique_id
        wait = self._limits.take(caller.arn)
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
            raise Refused(
                429,
                f"{caller.arn}: too many requests; retry in {seconds}s",
                {"Retry-After": str(seconds)},
            )
        handler = getattr(self, f"_{action}")
        result: tuple[int, Any] = handler(caller, params, audit)
        return result

    def _verified_once(self, proof: Proof) -> StsIdentity:
        """STS's verdict on the proof, and its one use. A proof is recorded as used only
        after STS verified it, so well-formed garbage costs one STS call and no memory; an
        identical proof arriving while the first is with STS is refused (in flight), and one
        arriving after is refused by the record."""
        key = proof.replay_key
        used = Refused(401, "proof: already used (a replayed request)")
        if self._replay.seen(key) or not self._in_flight.claim(key):
            raise used
        try:
            try:
                identity = self._verifier.identify(proof)
            except ProofError as exc:
                raise Refused(401, str(exc)) from None
            until = self._clock.now() + 2 * self._options.proof_max_age
            try:
                first = self._replay.first_use(key, until)
            except ReplayMemoryFullError as exc:
                raise Refused(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
            if not first:
                raise used
            return identity
        finally:
            self._in_flight.release(key)

    # -- the actions ---------------------------------------------------------------------

    def _issue(self, caller: Caller, params: Mapping[str, Any], audit: dict[str, Any]) -> Any:
        name = _string(params, "role")
        audit["role"] = name
        ttl_text = _optional_string(params, "ttl")
        role = self._role(name)
        verdict = may_issue(caller, name, role.allowed_principals, role.admin_principals)
        if not verdict.allowed:
            raise Refused(403, verdict.reason)
        ttl = parse_duration(ttl_text, "ttl") if ttl_text else None
        issued = self._leases.issue(
            name, ttl, caller.display_name, owner=caller.arn, owner_id=caller.unique_id
        )
        audit["lease_id"] = issued.lease.lease_id
        audit["key_id"] = issued.access_key_id
        return 200, issued_json(issued)

    def _renew(self, caller: Caller, params: Mapping[str, Any], audit: dict[str, Any]) -> Any:
        lease = self._owned(caller, params, audit)
        increment_text = _optional_string(params, "increment")
        increment = parse_duration(increment_text, "increment") if increment_text else None
        renewed, warning = self._leases.renew(lease.lease_id, increment)
        return 200, {"lease": renewed.to_dict(), "warning": warning}

    def _revoke(self, caller: Caller, params: Mapping[str, Any], audit: dict[str, Any]) -> Any:
        lease = self._owned(caller, params, audit)
        outcome = self._leases.revoke(lease.lease_id)
        return 200, {
            "lease_id": outcome.lease_id,
            "result": outcome.result.value,
            "ok": outcome.ok,
            "detail": outcome.detail,
        }

    def _list(self, caller: Caller, params: Mapping[str, Any], audit: dict[str, Any]) -> Any:
        prefix = _optional_string(params, "prefix") or LEASE_PREFIX
        seen = [
            lease
            for lease in self._leases.list_leases(prefix)
            if self._may_manage(caller, lease).allowed
        ]
        audit["count"] = len(seen)
        return 200, {"leases": [lease.to_dict() for lease in seen]}

    # -- helpers ----------------------------------------------------------------------------

    def _role(self, name: str) -> Any:
        try:
            return self._leases.role(name)
        except BadInputError:
            # Not the service's message: it lists every role, which callers need not learn.
            raise Refused(404, f"unknown role {name[:64]!r}") from None

    def _admins(self, role: str) -> tuple[str, ...]:
        try:
            return tuple(self._leases.role(role).admin_principals)
        except BadInputError:
            return ()  # role deleted: only the owner manages its leases

    def _may_manage(self, caller: Caller, lease: Lease) -> Verdict:
        admins = self._admins(lease.role)
        return may_manage(caller, lease.lease_id, lease.owner, admins, lease.owner_id)

    def _owned(self, caller: Caller, params: Mapping[str, Any], audit: dict[str, Any]) -> Lease:
        lease_id = _string(params, "lease_id")
        audit["lease_id"] = lease_id[:200]
        lease = self._leases.get(lease_id)
        verdict = self._may_manage(caller, lease)
        if not verdict.allowed:
            raise Refused(403, verdict.reason)
        return lease


def issued_json(issued: IssuedCredential) -> dict[str, Any]:
    return {
        "lease": issued.lease.to_dict(),
        "access_key_id": issued.access_key_id,
        "secret_access_key": issued.secret_access_key,
        "session_token": issued.session_token,
        "warnings": list(issued.warnings),
    }


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, f"{what} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(parsed, dict):
        raise Refused(400, f"{what} must be a JSON object")
    return parsed


def _string(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise Refused(400, f"request: {name!r} must be a non-empty string")
    return value


def _optional_string(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise Refused(400, f"request: {name!r} must be a string")
    return value


def _status_of(exc: KeyturnError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, BadInputError):
        return 400
    if isinstance(exc, AccessError):
        return 502  # the broker could not reach or use AWS: not the caller's fault
    return 502
