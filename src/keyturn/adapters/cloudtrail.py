"""What an access key did, from CloudTrail event history (`cloudtrail:LookupEvents`).

One lookup per enabled region, by `AccessKeyId` (not by user name, as aws-health-tools'
reference response does: a user's other keys and console sessions are not this key's doing,
and a key's calls are found even when the user was renamed or deleted). Event history is
regional, so every region the account has enabled is searched; IAM's and the global STS
endpoint's events land in us-east-1.

Pacing. AWS: "LookupEvents: 2 requests per second per account per region; if this limit is
exceeded, a throttling error occurs"
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/WhatIsCloudTrail-Limits.html, and
the LookupEvents API reference:
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html). The
clients pace themselves: `client_for(region)` gives clients carrying the run's pacer
(keyturn.adapters.pacing, the one mechanism for every AWS call), which keeps a bucket per
region for `cloudtrail:LookupEvents` (2/s, burst 1: requests half a second apart, never two
at once), shared by every lookup of the run. Regions run in parallel on `workers` threads,
so a 10,000-event window (200 pages of 50) in one region takes about 100 s whatever keyturn
does. botocore's adaptive retries absorb a `ThrottlingException` caused by another caller
sharing the budget; if one still comes through (retries exhausted), the page is asked again
after a jittered back-off, a few times, before the region is reported as failed.

Failure is per region. A region that refuses (AccessDenied, an opt-in region CloudTrail
does not answer in, an unreachable endpoint) is listed in the summary's `regions_failed`
with one line of reason and never stops the others; events it returned before failing are
kept. A lookup cut by the event cap or the time budget says so (`truncated`). Either makes
the summary not `complete`, so nobody reads "no events" where keyturn could not look.

Region discovery: `ec2:DescribeRegions` with `AllRegions=False`, which returns exactly the
regions enabled for the account (opt-in regions only once opted in) in one unpaginated
call, is granted by ReadOnlyAccess and SecurityAudit, and runs on the local emulator.
`account:ListRegions` would name opt-in status too, but it is paginated, granted by fewer
managed policies, and moto answers it 404. The answer is filtered again by `OptInStatus`
and partition (moto ignores AllRegions=False and lists cn-* and us-gov-* regions; a client
in one partition cannot search another). If discovery fails, the configured fallback
regions are searched and the summary names the failure (so it is not `complete`).

CloudTrailEvent is attacker-influenced JSON text (the user agent, the source address and
request parameters are what the caller sent): it is parsed only below a size bound, any
shape is accepted without error, and only a few fields are kept, each cleaned and bounded
by `keyturn.domain.activity.ActivityEvent.of`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from keyturn.adapters.aws_errors import error_code
from keyturn.domain.activity import (
    NAME_MAX,
    ActivityEvent,
    ActivitySummary,
    RegionFailure,
    clean,
    summarize,
)
from keyturn.domain.enforcement import ACCESS_KEY_ID
from keyturn.domain.errors import BadInputError
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient
    from mypy_boto3_ec2 import EC2Client

PAGE_SIZE = 50  # LookupEvents' MaxResults maximum
REQUESTS_PER_SECOND = 2.0  # per account and region (AWS docs, see the module docstring)
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_WORKERS = 8
DEFAULT_BUDGET_SECONDS = 300.0
THROTTLE_RETRIES = 4  # after botocore's own retries gave up
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
DETAIL_MAX_CHARS = 256 * 1024  # a CloudTrailEvent larger than this is not parsed
REASON_MAX = 200
# requestParameters fields that name what an access-creating call acted on, in order.
TARGET_FIELDS = (
    "userName",
    "roleName",
    "roleArn",
    "policyArn",
    "groupName",
    "functionName",
    "bucketName",
    "keyName",
    "groupId",
    "keyId",
)


@dataclass(frozen=True, slots=True)
class Regions:
    """The regions to search, and the discovery failure (if any) that made them a guess."""

    names: tuple[str, ...]
    failure: RegionFailure | None = None


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso"):
        return "aws-iso"
    return "aws"


class EnabledRegions:
    """The account's enabled regions in the home region's partition (`ec2:DescribeRegions`).

    `fallback` is searched when discovery fails (the configured `trail.regions`, else the
    home region and us-east-1).
    """

    def __init__(self, ec2: EC2Client, home_region: str, fallback: Sequence[str] = ()) -> None:
        self._ec2 = ec2
        self._home = home_region
        self._fallback = fallback_regions(fallback, home_region)

    @requires("ec2:DescribeRegions")
    def __call__(self) -> Regions:
        try:
            answer = self._ec2.describe_regions(AllRegions=False)
        except (ClientError, BotoCoreError) as exc:
            return Regions(self._fallback, RegionFailure("(others)", _discovery(exc)))
        partition = partition_of(self._home)
        names = sorted(
            {
                str(region["RegionName"])
                for region in answer.get("Regions", [])
                if isinstance(region.get("RegionName"), str)
                and region.get("OptInStatus", "opt-in-not-required")
                in ("opt-in-not-required", "opted-in")
                and partition_of(str(region["RegionName"])) == partition
            }
        )
        if not names:
            reason = "ec2:DescribeRegions named no enabled region; searched the fallback regions"
            return Regions(self._fallback, RegionFailure("(others)", reason))
        return Regions(tuple(names))


def _discovery(exc: Exception) -> str:
    return f"ec2:DescribeRegions failed ({_reason(exc)}); searched only the fallback regions"


def _reason(exc: Exception) -> str:
    """One bounded line naming what failed, never request parameters."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        text = f"{error_code(exc)}: {message}" if message else error_code(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return clean(text, REASON_MAX) or type(exc).__name__


class FixedRegions:
    """Search exactly these regions (`trail.regions`): no discovery call."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = tuple(dict.fromkeys(names))

    def __call__(self) -> Regions:
        return Regions(self._names)


class _Cap:
    """The event cap and the time budget, shared by every region's worker."""

    def __init__(self, max_events: int, deadline: float, monotonic: Callable[[], float]) -> None:
        self._left = max_events
        self._deadline = deadline
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.hit_cap = False
        self.hit_time = False

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                self.hit_cap = True
                return False
            self._left -= 1
            return True

    def stopped(self) -> bool:
        with self._lock:
            if self._left <= 0:
                self.hit_cap = True
            if self._monotonic() >= self._deadline:
                self.hit_time = True
            return self.hit_cap or self.hit_time


@dataclass
class _RegionResult:
    region: str
    events: list[ActivityEvent] = field(default_factory=list)
    failure: RegionFailure | None = None
    malformed: int = 0
    started: bool = False


class CloudTrailActivity:
    """`KeyActivitySource` over CloudTrail event history (see the module docstring).

    `client_for(region)` builds a paced CloudTrail client for a region (called on the
    calling thread: boto3 clients are thread-safe once built, their creation is not);
    `regions()` says where to search.
    """

    def __init__(
        self,
        client_for: Callable[[str], CloudTrailClient],
        regions: Callable[[], Regions],
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        workers: int = DEFAULT_WORKERS,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_events < 1 or workers < 1 or budget_seconds <= 0:
            raise ValueError("max_events, workers and budget_seconds must be positive")
        self._client_for = client_for
        self._regions = regions
        self._max_events = max_events
        self._workers = workers
        self._budget = budget_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - back-off jitter, not security

    @requires("cloudtrail:LookupEvents", "ec2:DescribeRegions")
    def summary(self, access_key_id: str, start: datetime, end: datetime) -> ActivitySummary:
        if not ACCESS_KEY_ID.match(access_key_id):
            raise BadInputError(f"{clean(access_key_id, 40)!r} is not an access key id")
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            raise BadInputError("the activity window needs timezone-aware start < end")
        regions = self._regions()
        # us-east-1 first: IAM's and the global STS endpoint's events land there, so it is
        # usually the busiest region, and the lookup ends when the busiest region does.
        names = sorted(regions.names, key=lambda region: region != "us-east-1")
        regions = Regions(tuple(names), regions.failure)
        clients = {region: self._client_for(region) for region in regions.names}
        cap = _Cap(self._max_events, self._monotonic() + self._budget, self._monotonic)
        with ThreadPoolExecutor(
            max_workers=min(self._workers, max(1, len(clients))),
            thread_name_prefix="keyturn-cloudtrail",
        ) as pool:
            results = list(
                pool.map(
                    lambda region: self._search(
                        region, clients[region], access_key_id, start, end, cap
                    ),
                    regions.names,
                )
            )
        failures = [r.failure for r in results if r.failure]
        if regions.failure:
            failures.append(regions.failure)
        notes: list[str] = []
        malformed = sum(r.malformed for r in results)
        if malformed:
            notes.append(f"{malformed} event(s) could not be read and were left out")
        unstarted = sorted(r.region for r in results if not r.started)
        if unstarted:
            notes.append(
                f"{len(unstarted)} region(s) not searched, the lookup had stopped: "
                + ", ".join(unstarted[:10])
                + (" ..." if len(unstarted) > 10 else "")
            )
        if cap.hit_cap:
            notes.append(f"stopped at the event cap ({self._max_events} events, trail.max_events)")
        if cap.hit_time:
            notes.append(
                f"stopped after the time budget ({self._budget:g} s, trail.budget_seconds)"
            )
        return summarize(
            (event for r in results for event in r.events),
            key_id=access_key_id,
            start=start,
            end=end,
            regions_searched=[r.region for r in results if r.started and r.failure is None],
            regions_failed=failures,
            truncated=cap.hit_cap or cap.hit_time or bool(unstarted),
            notes=notes,
        )

    # -- one region ----------------------------------------------------------------------

    def _search(
        self,
        region: str,
        client: CloudTrailClient,
        key_id: str,
        start: datetime,
        end: datetime,
        cap: _Cap,
    ) -> _RegionResult:
        result = _RegionResult(region)
        token: str | None = None
        seen_tokens: set[str] = set()
        while not cap.stopped():
            result.started = True
            try:
                page = self._page(client, key_id, start, end, token)
            except (ClientError, BotoCoreError) as exc:
                reason = _reason(exc)
                if result.events:
                    reason += f" (after {len(result.events)} event(s), kept)"
                result.failure = RegionFailure(region, reason)
                return result
            for raw in _list(page.get("Events")):
                event = parse_event(raw, region)
                if event is None:
                    result.malformed += 1
                elif cap.take():
                    result.events.append(event)
                else:
                    return result
            next_token = page.get("NextToken")
            if not isinstance(next_token, str) or not next_token:
                return result
            if next_token in seen_tokens:  # an endpoint that loops would never end
                result.failure = RegionFailure(region, "LookupEvents repeated a NextToken")
                return result
            seen_tokens.add(next_token)
            token = next_token
        return result

    def _page(
        self,
        client: CloudTrailClient,
        key_id: str,
        start: datetime,
        end: datetime,
        token: str | None,
    ) -> Mapping[str, Any]:
        """One LookupEvents page (its client paces it); a throttle that outlived botocore's
        retries is asked again after a jittered back-off, `THROTTLE_RETRIES` times."""
        attempt = 0
        while True:
            try:
                if token:
                    return client.lookup_events(
                        LookupAttributes=[
                            {"AttributeKey": "AccessKeyId", "AttributeValue": key_id}
                        ],
                        StartTime=start,
                        EndTime=end,
                        MaxResults=PAGE_SIZE,
                        NextToken=token,
                    )
                return client.lookup_events(
                    LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": key_id}],
                    StartTime=start,
                    EndTime=end,
                    MaxResults=PAGE_SIZE,
                )
            except ClientError as exc:
                if error_code(exc) not in THROTTLE_CODES or attempt >= THROTTLE_RETRIES:
                    raise
            attempt += 1
            self._sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + self._random.random() / 2))


# -- parsing one event ------------------------------------------------------------------


def _list(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _detail(text: object) -> Mapping[str, Any]:
    """The CloudTrailEvent document as a mapping, or empty when it is not one we can read."""
    if not isinstance(text, str) or len(text) > DETAIL_MAX_CHARS:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _target(parameters: object) -> object:
    if not isinstance(parameters, dict):
        return None
    for name in TARGET_FIELDS:
        value = parameters.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def parse_event(raw: Mapping[str, Any], region: str) -> ActivityEvent | None:
    """One LookupEvents `Events[]` entry as an ActivityEvent; None without a usable time.

    The response's own fields (EventTime, EventName, EventSource, ReadOnly) come first, as
    botocore parsed them against the service model; the CloudTrailEvent document adds the
    source address, user agent, error code and the call's target. The region is the one
    searched (event history is regional), not the document's claim.
    """
    detail = _detail(raw.get("CloudTrailEvent"))
    when = _time(raw.get("EventTime")) or _time(detail.get("eventTime"))
    if when is None:
        return None
    read_only = raw.get("ReadOnly")
    if read_only is None:
        read_only = detail.get("readOnly")
    return ActivityEvent.of(
        time=when,
        name=raw.get("EventName") or detail.get("eventName"),
        source=raw.get("EventSource") or detail.get("eventSource"),
        region=region,
        source_ip=detail.get("sourceIPAddress"),
        user_agent=detail.get("userAgent"),
        error_code=detail.get("errorCode"),
        read_only=read_only,
        target=_target(detail.get("requestParameters")),
    )


def fallback_regions(configured: Iterable[str], home: str) -> tuple[str, ...]:
    """The regions searched when discovery fails: the configured ones, else home + us-east-1."""
    names = tuple(dict.fromkeys(r for r in configured if clean(r, NAME_MAX)))
    return names or tuple(dict.fromkeys((home, "us-east-1")))
