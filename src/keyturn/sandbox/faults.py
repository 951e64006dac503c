"""A fault-injecting HTTP proxy for the local AWS emulator (tests and `make soak` only).

Point keyturn's `AWS_ENDPOINT_URL` at the proxy instead of moto and a deterministic share
of AWS API calls fails the way AWS fails in the field: `Throttling` (HTTP 400, "Rate
exceeded"), `ServiceUnavailable` (HTTP 503), a dropped connection, or a stall after the
request reached the service (the client times out although the call took effect, the
hardest case for idempotency). Chosen actions can be refused outright, e.g. SES
`SendEmail` with `MessageRejected`. Everything goes through the real client stack:
botocore's retries, keyturn's error translation, the CLI's exit codes.

Only the query protocol (IAM, STS, SES: form bodies with `Action=`) is recognised by
action name; other requests can still be faulted at random. A refusal is written in the
protocol the request used (XML for the query protocol, JSON with `__type` for JSON-protocol
services such as Secrets Manager), because botocore recognises a throttle only when it can
parse the error code: a wrong format turns a retryable throttle into a hard failure.

A latency model (bench/bench_rotate.py's "as on real AWS"), all off by default:

- `latency`: seconds added to every AWS call, as the round trip to a region would;
- `rate_limits`: requests per second per service (`{"iam": 20.0}`), a token bucket each;
  a request beyond it is answered as AWS does, HTTP 400 `Throttling` "Rate exceeded", and
  never reaches the service. The service is read from the SigV4 credential scope;
- `propagation`: a key created through the proxy (its id is read from the CreateAccessKey
  response) is refused with 403 `InvalidClientTokenId` for that many seconds, as a new IAM
  key is until it has propagated (DESIGN.md: 5-15 s in the field).

`counts` holds how often each behaviour was injected; `calls` every AWS request the proxy
received per `service:Operation`, refused ones included (what AWS's limiter would see).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

from keyturn.sandbox.http_proxy import DROP, Answer, ForwardingProxy, Request, Verdict

ERROR_XML = (
    "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
    "</Error><RequestId>keyturn-fault-proxy</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    json_code: str | None = None  # the code JSON-protocol services use, when it differs


THROTTLING = Refusal(400, "Throttling", "Rate exceeded", json_code="ThrottlingException")
UNAVAILABLE = Refusal(503, "ServiceUnavailable", "Service is unavailable, try again")
MESSAGE_REJECTED = Refusal(400, "MessageRejected", "Email address is not verified.")
UNPROPAGATED = Refusal(
    403, "InvalidClientTokenId", "The security token included in the request is invalid."
)

# SigV4: `Authorization: AWS4-HMAC-SHA256 Credential=KEYID/DATE/REGION/SERVICE/aws4_request`.
_SCOPE = re.compile(r"Credential=([^/\s,]+)/[^/]+/[^/]+/([^/]+)/")
_NEW_KEY_ID = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")


@dataclass
class FaultPlan:
    """Shares of API calls (0..1) to fault, by kind; `refuse` always refuses an action."""

    throttle: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 2.0
    refuse: dict[str, Refusal] = field(default_factory=dict)
    only_actions: frozenset[str] | None = None  # random faults only for these actions
    # -- the latency model (deterministic; see the module docstring) --
    latency: float = 0.0  # seconds added to every AWS call
    rate_limits: dict[str, float] = field(default_factory=dict)  # service -> requests/s
    # Bucket size per service (requests that may arrive at once); default: one second's worth.
    rate_bursts: dict[str, float] = field(default_factory=dict)
    propagation: float = 0.0  # seconds a new key is refused with InvalidClientTokenId


class _Bucket:
    """Token bucket that answers at once (AWS does not queue a request, it refuses it)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.last = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class FaultProxy(ForwardingProxy):
    """Use as a context manager; `.url` is the endpoint to give keyturn."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, seed: int = 7) -> None:
        super().__init__(upstream)
        self.plan = plan or FaultPlan()
        self._random = random.Random(seed)  # noqa: S311 - fault choice, not security
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._buckets: dict[str, _Bucket] = {}
        self._young_keys: dict[str, float] = {}  # new key id -> when it starts to work
        self._monotonic = time.monotonic
        # When the first AWS call arrived and the last was answered (time.monotonic): a
        # bench tells the client's own time before and after its calls from them.
        self.first_call_at: float | None = None
        self.last_answer_at: float | None = None

    def calm(self) -> None:
        """No more faults from now on (the "later run" that completes the work)."""
        self.plan = FaultPlan()

    # -- the latency model ------------------------------------------------------------------

    def _model(self, authorization: str, action: str | None, target: str | None) -> Refusal | None:
        """Count the call; the refusal the model answers it with, if any."""
        scope = _SCOPE.search(authorization)
        key_id, service = (scope.group(1), scope.group(2)) if scope else ("", "unsigned")
        operation = action or (target.rsplit(".", 1)[-1] if target else "?")
        plan = self.plan
        now = self._monotonic()
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            ready_at = self._young_keys.get(key_id)
            if ready_at is not None:
                if now < ready_at:
                    self.counts["unpropagated"] += 1
                    return UNPROPAGATED
                del self._young_keys[key_id]
            rate = plan.rate_limits.get(service)
            if rate is not None:
                bucket = self._buckets.get(service)
                if bucket is None or bucket.rate != rate:
                    burst = plan.rate_bursts.get(service, rate)
                    bucket = self._buckets[service] = _Bucket(rate, burst, now)
                if not bucket.take(now):
                    self.counts[f"throttled {service}"] += 1
                    return THROTTLING
        return None

    def _created(self, answer: bytes) -> None:
        """A CreateAccessKey answer passed: its key works only after the propagation delay."""
        found = _NEW_KEY_ID.search(answer)
        if found is None or self.plan.propagation <= 0:
            return
        with self._lock:
            self._young_keys[found.group(1).decode()] = self._monotonic() + self.plan.propagation
            self.counts["keys delayed"] += 1

    def _count(self, behaviour: str) -> None:
        with self._lock:
            self.counts[behaviour] += 1

    # -- deciding -------------------------------------------------------------------------

    def _decide(self, path: str, action: str | None) -> str:
        plan = self.plan
        with self._lock:
            self.counts["requests"] += 1
            if path.startswith("/moto-api"):
                return "pass"
            if action is not None and action in plan.refuse:
                self.counts[f"refused {action}"] += 1
                return "refuse"
            if plan.only_actions is not None and action not in plan.only_actions:
                return "pass"
            roll = self._random.random()
            for kind in ("throttle", "server_error", "drop", "stall"):
                share: float = getattr(plan, kind)
                if roll < share:
                    self.counts[kind] += 1
                    return kind
                roll -= share
            return "pass"

    # -- serving --------------------------------------------------------------------------

    def serve(self, request: Request) -> Verdict:
        action = _action(request.body)
        is_aws = not request.path.startswith("/moto-api")
        json_protocol = "X-Amz-Target" in request.headers
        if is_aws:
            arrived = time.monotonic()
            with self._lock:
                if self.first_call_at is None:
                    self.first_call_at = arrived
                self.last_answer_at = max(
                    self.last_answer_at or arrived, arrived + self.plan.latency
                )
        if is_aws and self.plan.latency > 0:
            # Before anything else, refusals included: AWS's answer, whatever it is, takes
            # a round trip.
            time.sleep(self.plan.latency)
            self._count("latency")
        if is_aws:
            modelled = self._model(
                request.headers.get("Authorization", ""),
                action,
                request.headers.get("X-Amz-Target"),
            )
            if modelled is not None:
                return _refusal(modelled, json_protocol=json_protocol)
        verdict = self._decide(request.path, action)
        if verdict == "drop":
            return DROP
        if verdict in ("throttle", "server_error", "refuse"):
            refusal = {"throttle": THROTTLING, "server_error": UNAVAILABLE}.get(
                verdict
            ) or self.plan.refuse[action or ""]
            return _refusal(refusal, json_protocol=json_protocol)
        answer = self.forward(request)
        if action == "CreateAccessKey" and answer.status == 200:
            self._created(answer.body)
        if verdict == "stall":
            # The service did the work; the client never hears about it.
            time.sleep(self.plan.stall_seconds)
            return DROP
        return answer


def _refusal(refusal: Refusal, *, json_protocol: bool) -> Answer:
    """`refusal` as the service would write it, in the protocol the request used."""
    if json_protocol:
        code = refusal.json_code or refusal.code
        payload = json.dumps({"__type": code, "message": refusal.message}).encode()
        return Answer(refusal.status, payload, [("Content-Type", "application/x-amz-json-1.1")])
    kind = "Receiver" if refusal.status >= 500 else "Sender"
    payload = ERROR_XML.format(kind=kind, code=refusal.code, message=refusal.message).encode()
    return Answer(refusal.status, payload, [("Content-Type", "text/xml")])


def _action(body: bytes) -> str | None:
    if not body.startswith(b"Action=") and b"&Action=" not in body:
        return None
    found = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
    return found[0] if found else None
