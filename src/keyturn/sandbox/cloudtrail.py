"""A sandbox CloudTrail responder: `LookupEvents` only, for tests, the demo and the bench.

moto has no CloudTrail `LookupEvents`, and the exposed-key response (issue 15) reads what the
key did from it. This local HTTP server speaks CloudTrail's real wire protocol for that one
action, so keyturn's adapter runs unchanged through boto3 against it:

- AWS JSON 1.1: `POST /`, `Content-Type: application/x-amz-json-1.1`,
  `X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`;
  timestamps as epoch seconds; errors as HTTP 400 `{"__type": CODE, "message": ...}`;
- event history per region (the region is read from the request's SigV4 credential scope,
  as AWS routes by endpoint), newest event first, at most `MaxResults` (1-50, default 50) a
  page, with an opaque `NextToken` bound to the query it came from (another query's token is
  `InvalidNextTokenException`, as AWS's "must be passed in with the same parameters");
- one lookup attribute (AccessKeyId, EventName, EventSource, EventId, ReadOnly, Username),
  StartTime/EndTime inclusive, the validation errors the service model lists;
- optionally AWS's limit, "two per second, per account, per Region" (a token bucket per
  region): a request beyond it gets `ThrottlingException` "Rate exceeded", the shape botocore
  retries.

It is not CloudTrail: no trails, no other action (answered `UnknownOperationException`), no
Insights events. Run it on its own port and point the CloudTrail client at it
(`trail.cloudtrail_endpoint_url`), or give it moto's URL as `upstream`: then every request
that is not LookupEvents is forwarded there, and one endpoint (`AWS_ENDPOINT_URL`) serves
both. `tests/integration/test_cloudtrail_responder.py` checks its answers against botocore's
CloudTrail service model.

IAM, in front of moto. Standalone, the responder checks nothing: it answers any signature.
With an `upstream`, each LookupEvents request is first sent to moto as it came (Host kept,
so its SigV4 signature still verifies there): moto authenticates and authorizes every
action, implemented or not, before it looks for the implementation. A 401 or 403 from moto
(its own policy evaluation refusing `cloudtrail:LookupEvents`, or a bad signature) is the
caller's answer, in CloudTrail's JSON form; anything else (moto's "not implemented", with
its authentication off or the action allowed) means allowed, and the responder answers. So
the least-privilege proof (tests/integration/test_least_privilege.py) sees a missing grant
refused as AWS would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keyturn.sandbox.http_proxy import Answer, ForwardingProxy, Request, Verdict

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
LOOKUP_TARGET = TARGET_PREFIX + "LookupEvents"
JSON_11 = "application/x-amz-json-1.1"
RATE = 2.0  # AWS: LookupEvents, 2 requests per second per account per region
_KEY_ID = re.compile(r"Credential=([A-Z0-9]{16,128})/")
_SCOPE = re.compile(r"Credential=[^/\s,]+/[^/]+/([^/]+)/([^/]+)/")
_ATTRIBUTES = {
    "AccessKeyId": "access_key_id",
    "EventName": "name",
    "EventSource": "source",
    "EventId": "event_id",
    "ReadOnly": "read_only",
    "Username": "username",
}
_NO_UPSTREAM = "http://127.0.0.1:9"  # never contacted: standalone mode answers everything


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One event in the sandbox's history; `document` is the CloudTrailEvent JSON text."""

    region: str
    event_id: str
    name: str
    source: str
    time: datetime
    access_key_id: str
    username: str
    read_only: str
    document: str

    def wire(self) -> dict[str, Any]:
        """As LookupEvents writes it (JSON 1.1: timestamps are epoch seconds)."""
        return {
            "EventId": self.event_id,
            "EventName": self.name,
            "ReadOnly": self.read_only,
            "AccessKeyId": self.access_key_id,
            "EventTime": self.time.timestamp(),
            "EventSource": self.source,
            "Username": self.username,
            "Resources": [],
            "CloudTrailEvent": self.document,
        }


# Calls a stolen key makes, in a plausible mix: mostly reconnaissance, a few that create
# access (keyturn.domain.activity.ACCESS_CREATING_CALLS) so a summary has something to list.
_READS = (
    ("GetCallerIdentity", "sts.amazonaws.com"),
    ("ListBuckets", "s3.amazonaws.com"),
    ("ListUsers", "iam.amazonaws.com"),
    ("DescribeInstances", "ec2.amazonaws.com"),
    ("ListSecrets", "secretsmanager.amazonaws.com"),
    ("GetAccountAuthorizationDetails", "iam.amazonaws.com"),
)
_GRANTS = (
    ("CreateUser", "iam.amazonaws.com", {"userName": "backup-svc"}),
    ("CreateAccessKey", "iam.amazonaws.com", {"userName": "backup-svc"}),
    (
        "AttachUserPolicy",
        "iam.amazonaws.com",
        {"userName": "backup-svc", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    ),
    ("CreateLoginProfile", "iam.amazonaws.com", {"userName": "backup-svc"}),
    ("RunInstances", "ec2.amazonaws.com", {"instanceType": "p3.16xlarge"}),
)
_AGENTS = ("aws-cli/2.15.30 Python/3.11.8", "Boto3/1.34.0 Python/3.12", "TruffleHog", "curl/8.4.0")
_IPS = ("198.51.100.7", "203.0.113.9", "192.0.2.44")


def generate_events(
    key_id: str,
    count: int,
    regions: Sequence[str],
    *,
    end: datetime,
    span: timedelta = timedelta(hours=23),
    user: str = "exposed-user",
    account: str = "123456789012",
    grants_every: int = 97,
    seed: int = 15,
) -> list[TrailEvent]:
    """`count` events made with `key_id`, spread round-robin over `regions` and evenly over
    `span` before `end`; every `grants_every`-th is an access-creating call. Deterministic."""
    chooser = random.Random(seed)  # noqa: S311 - sandbox data, not security
    events: list[TrailEvent] = []
    step = span / max(1, count)
    for n in range(count):
        region = regions[n % len(regions)]
        when = (end - span + step * n).replace(microsecond=0)
        parameters: dict[str, str] | None = None
        if grants_every and n % grants_every == grants_every - 1:
            name, source, parameters = _GRANTS[(n // grants_every) % len(_GRANTS)]
            read_only = "false"
        else:
            name, source = _READS[chooser.randrange(len(_READS))]
            read_only = "true"
        event_id = f"00000000-0000-4000-8000-{n:012d}"
        document = {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEEXAMPLE",
                "arn": f"arn:aws:iam::{account}:user/{user}",
                "accountId": account,
                "accessKeyId": key_id,
                "userName": user,
            },
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": _IPS[chooser.randrange(len(_IPS))],
            "userAgent": _AGENTS[chooser.randrange(len(_AGENTS))],
            "requestParameters": parameters,
            "responseElements": None,
            "readOnly": read_only == "true",
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventID": event_id,
        }
        events.append(
            TrailEvent(
                region=region,
                event_id=event_id,
                name=name,
                source=source,
                time=when,
                access_key_id=key_id,
                username=user,
                read_only=read_only,
                document=json.dumps(document),
            )
        )
    return events


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.capacity, self.tokens, self.last = rate, max(1.0, burst), burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Usage:
    """What the responder saw: LookupEvents requests and throttles per region."""

    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)


class _NotImplementedLookup(logging.Filter):
    """Drops the traceback an in-process moto server logs (werkzeug's "Error on request")
    for the authorization check's "not implemented" answer: expected, it is how the
    responder learns the call is allowed. Other errors are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, NotImplementedError) and "lookup_events" in str(error):
            return False  # Flask's "Exception on /"
        # werkzeug's "Error on request", the traceback formatted into the message
        return "The lookup_events action has not been implemented" not in record.getMessage()


_QUIET = _NotImplementedLookup()


def _quiet_moto_lookup() -> None:
    for name in ("werkzeug", "moto"):  # the server's, and Flask("moto")'s app logger
        found = logging.getLogger(name)
        if _QUIET not in found.filters:
            found.addFilter(_QUIET)


class CloudTrailResponder(ForwardingProxy):
    """`with CloudTrailResponder(events, throttle=True) as trail: trail.url`.

    `upstream`: moto's URL to forward every other request to, and to ask whether the caller
    may call LookupEvents (see the module docstring); None answers other requests
    `UnknownOperationException` and checks no permission (standalone). `throttle`: enforce
    AWS's 2 requests a second per region (`rate`, bucket of one second's worth). `latency`:
    seconds added to every LookupEvents answer, refusals included (a round trip to a
    region, as in the rotation bench's latency model).
    """

    keep_host = True  # forwarded requests keep their signature valid under moto's auth

    def __init__(
        self,
        events: Iterable[TrailEvent] = (),
        *,
        upstream: str | None = None,
        throttle: bool = False,
        rate: float = RATE,
        latency: float = 0.0,
    ) -> None:
        super().__init__(upstream or _NO_UPSTREAM)
        self._standalone = upstream is None
        if not self._standalone:
            _quiet_moto_lookup()
        self._lock = threading.Lock()
        self._history: dict[str, list[TrailEvent]] = {}
        self.throttle = throttle
        self.rate = rate
        self.latency = latency
        self._buckets: dict[str, _Bucket] = {}
        self._allowed: set[str] = set()  # access key ids moto authorized for LookupEvents
        self.usage = Usage()
        self.add(events)

    def add(self, events: Iterable[TrailEvent]) -> None:
        with self._lock:
            for event in events:
                self._history.setdefault(event.region, []).append(event)
            for history in self._history.values():
                history.sort(key=lambda e: (e.time, e.event_id), reverse=True)  # newest first

    def clear(self) -> None:
        with self._lock:
            self._history.clear()
            self._buckets.clear()
            self.usage = Usage()

    # -- serving ----------------------------------------------------------------------------

    def serve(self, request: Request) -> Verdict:
        target = request.headers.get("X-Amz-Target", "")
        if target != LOOKUP_TARGET:
            if self._standalone or target.startswith(TARGET_PREFIX):
                return _error(
                    "UnknownOperationException",
                    f"{target or 'this request'} is not served by the sandbox CloudTrail responder",
                )
            return self.forward(request)
        region = _region(request.headers.get("Authorization", ""))
        if self.latency > 0:
            time.sleep(self.latency)
        if not self._standalone:
            refused = self._refused_upstream(request)
            if refused is not None:
                return refused
        with self._lock:
            self.usage.requests[region] += 1
            if self.throttle and not self._bucket(region).take(time.monotonic()):
                self.usage.throttled[region] += 1
                return _error("ThrottlingException", "Rate exceeded")
        try:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise _Refused("SerializationException", "the request body is not an object")
            return _ok(self._lookup(region, body))
        except _Refused as refused:
            return _error(refused.code, refused.message)
        except ValueError:
            return _error("SerializationException", "the request body is not JSON")

    def _refused_upstream(self, request: Request) -> Answer | None:
        """moto's refusal of this request (authentication or IAM), as CloudTrail writes an
        error; None when moto let it through to its missing implementation.

        An access key moto allowed once is not asked about again while this responder runs
        (a lookup pages through hundreds of requests, and moto's "not implemented" answer
        is slow: it cost the 10,000-event bench a fifth of its time); a refusal is never
        remembered. A policy taken away mid-run is therefore seen only by a new responder."""
        found = _KEY_ID.search(request.headers.get("Authorization", ""))
        key_id = found.group(1) if found else None
        with self._lock:
            if key_id is not None and key_id in self._allowed:
                return None
        answer = self.forward(request)
        if answer.status not in (401, 403):
            if key_id is not None:
                with self._lock:
                    self._allowed.add(key_id)
            return None
        text = answer.body.decode("utf-8", "replace")
        code = _between(text, "Code") or "AccessDenied"
        message = _between(text, "Message") or "refused by the emulator's IAM"
        code = _JSON_CODES.get(code, code)
        payload = json.dumps({"__type": code, "message": message}).encode()
        return Answer(answer.status, payload, [("Content-Type", JSON_11)])

    def _bucket(self, region: str) -> _Bucket:
        bucket = self._buckets.get(region)
        if bucket is None:
            bucket = self._buckets[region] = _Bucket(self.rate, self.rate, time.monotonic())
        return bucket

    def _lookup(self, region: str, body: dict[str, Any]) -> dict[str, Any]:
        attributes = body.get("LookupAttributes") or []
        if not isinstance(attributes, list) or len(attributes) > 1:
            raise _Refused("InvalidLookupAttributesException", "only one lookup attribute")
        wanted: tuple[str, str] | None = None
        if attributes:
            attribute = attributes[0]
            key = attribute.get("AttributeKey") if isinstance(attribute, dict) else None
            value = attribute.get("AttributeValue") if isinstance(attribute, dict) else None
            if key not in _ATTRIBUTES or not isinstance(value, str) or not value:
                raise _Refused("InvalidLookupAttributesException", "unsupported lookup attribute")
            wanted = (_ATTRIBUTES[key], value)
        start = _when(body.get("StartTime"), datetime.min.replace(tzinfo=UTC))
        end = _when(body.get("EndTime"), datetime.max.replace(tzinfo=UTC))
        if start > end:
            raise _Refused("InvalidTimeRangeException", "StartTime is after EndTime")
        size = body.get("MaxResults", 50)
        if not isinstance(size, int) or not 1 <= size <= 50:
            raise _Refused("InvalidMaxResultsException", "MaxResults must be 1 to 50")
        query = hashlib.sha256(
            json.dumps([region, wanted, start.isoformat(), end.isoformat()]).encode()
        ).hexdigest()[:16]
        offset = _offset(body.get("NextToken"), query)
        with self._lock:
            matching = [
                e
                for e in self._history.get(region, [])
                if start <= e.time <= end and (wanted is None or getattr(e, wanted[0]) == wanted[1])
            ]
        page = matching[offset : offset + size]
        answer: dict[str, Any] = {"Events": [e.wire() for e in page]}
        if offset + size < len(matching):
            answer["NextToken"] = base64.urlsafe_b64encode(
                f"{query}:{offset + size}".encode()
            ).decode()
        return answer


# moto writes a refusal in the query protocol's words; JSON 1.1 services spell these so.
_JSON_CODES = {
    "AccessDenied": "AccessDeniedException",
    "InvalidClientTokenId": "UnrecognizedClientException",
}


def _between(xml: str, tag: str) -> str | None:
    found = re.search(f"<{tag}>([^<]{{1,1000}})</{tag}>", xml)
    return found.group(1) if found else None


def _region(authorization: str) -> str:
    found = _SCOPE.search(authorization)
    return found.group(1) if found else "us-east-1"


def _when(value: object, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("SerializationException", "timestamps are epoch seconds")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _Refused("InvalidTimeRangeException", "timestamp out of range") from exc


def _offset(token: object, query: str) -> int:
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(token).encode()).decode()
        bound, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused("InvalidNextTokenException", "invalid NextToken") from exc
    if bound != query or offset < 0:
        raise _Refused("InvalidNextTokenException", "NextToken is for other parameters")
    return offset


def _ok(payload: dict[str, Any]) -> Answer:
    return Answer(200, json.dumps(payload).encode(), [("Content-Type", JSON_11)])


def _error(code: str, message: str) -> Answer:
    payload = json.dumps({"__type": code, "message": message}).encode()
    return Answer(400, payload, [("Content-Type", JSON_11)])
