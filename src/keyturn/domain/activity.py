"""What an access key did: CloudTrail events reduced to a summary a person can act on.

When AWS reports a key as exposed (issue 15), the first question after "is it contained?" is
"what did it do?". The answer comes from CloudTrail `LookupEvents` by `AccessKeyId`
(keyturn.adapters.cloudtrail); this module is the pure part: one `ActivityEvent` per CloudTrail
event, and `summarize` folding them into an `ActivitySummary` (counts by action, source IP,
region and user agent, first and last seen, and the calls that create access listed first).

Everything in an event that the caller chose is attacker-influenced text: the user agent, the
source "IP" (CloudTrail records a service name there for calls made by AWS services, and
whatever the client sent for some), request parameters. So every string is cut to a bound and
stripped of control and formatting characters (`clean`) before it enters an `ActivityEvent`;
the summary holds no request or response body, so no secret a call carried can reach it, and
each tally keeps its `TOP` values with the rest counted as `other`, so a key that sent 10,000
distinct user agents yields a summary of bounded size.

A summary says whether it is complete: a region that failed, or a lookup cut at the event cap,
is reported in it (`regions_failed`, `truncated`) and makes `complete` False, so a report built
from it never reads as "the key did nothing" when keyturn could not look (invariant 9).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Calls that create or widen access: an attacker holding a key uses them to keep access after
# the key is gone (a new user or key, a console password, a policy, a role to assume), to
# turn the key into other credentials (STS), or to run code of their own (instances,
# functions). A summary lists these first, each with its time, region and source IP. Matched
# on the CloudTrail event name, without the API-version suffix Lambda's names carry
# (`CreateFunction20150331` is `CreateFunction`, see `base_name`).
ACCESS_CREATING_CALLS: Mapping[str, str] = {
    # IAM: new principals and credentials
    "CreateUser": "a new IAM user",
    "CreateAccessKey": "a new access key",
    "UpdateAccessKey": "a key activated or deactivated",
    "CreateLoginProfile": "a console password for a user",
    "UpdateLoginProfile": "a console password changed",
    "CreateServiceSpecificCredential": "a service credential (CodeCommit, Keyspaces)",
    "UploadSSHPublicKey": "an SSH key for CodeCommit",
    "UploadSigningCertificate": "a signing certificate",
    "CreateVirtualMFADevice": "an MFA device",
    "EnableMFADevice": "an MFA device bound to a user",
    "AddUserToGroup": "a user added to a group",
    "CreateRole": "a new IAM role",
    "UpdateAssumeRolePolicy": "who may assume a role changed",
    "CreateInstanceProfile": "an instance profile",
    "AddRoleToInstanceProfile": "a role given to instances",
    # IAM: policies
    "AttachUserPolicy": "a managed policy on a user",
    "PutUserPolicy": "an inline policy on a user",
    "AttachGroupPolicy": "a managed policy on a group",
    "PutGroupPolicy": "an inline policy on a group",
    "AttachRolePolicy": "a managed policy on a role",
    "PutRolePolicy": "an inline policy on a role",
    "CreatePolicy": "a new managed policy",
    "CreatePolicyVersion": "a managed policy rewritten",
    "SetDefaultPolicyVersion": "a managed policy version switched",
    "DeleteUserPermissionsBoundary": "a user's permissions boundary removed",
    "DeleteRolePermissionsBoundary": "a role's permissions boundary removed",
    # STS: the key turned into other credentials (they outlive the key's deactivation)
    "AssumeRole": "role credentials",
    "GetFederationToken": "federated credentials (survive the key's deactivation)",
    "GetSessionToken": "session credentials (survive the key's deactivation)",
    "GetSigninToken": "a console session",
    # Compute that runs the caller's code
    "RunInstances": "EC2 instances",
    "CreateKeyPair": "an EC2 SSH key pair",
    "ImportKeyPair": "an EC2 SSH key pair",
    "AuthorizeSecurityGroupIngress": "a security group opened",
    "CreateFunction": "a Lambda function",
    "UpdateFunctionCode": "a Lambda function's code replaced",
    "AddPermission": "a Lambda function made invocable by others",
    # Data shared out
    "PutBucketPolicy": "an S3 bucket policy",
    "PutBucketAcl": "an S3 bucket ACL",
    "CreateGrant": "a KMS key grant",
    "PutKeyPolicy": "a KMS key policy",
    "ModifySnapshotAttribute": "an EBS snapshot shared",
    "ModifyImageAttribute": "an AMI shared",
    "ModifyDBSnapshotAttribute": "an RDS snapshot shared",
}

TOP = 25  # values kept per tally; the rest are counted in `Tally.other`
ACCESS_CALLS_SHOWN = 200  # access-creating events kept in full (all are counted)

# Bounds on attacker-influenced text (CloudTrail's own limits are larger or unstated).
NAME_MAX = 128  # event names, event sources, regions, error codes
IP_MAX = 64  # an IPv6 address is at most 45; CloudTrail may record a service's name
AGENT_MAX = 200  # user agents: enough to tell aws-cli from a scanner
TARGET_MAX = 160  # the resource a call named (a user, role, policy ARN)

_VERSION_SUFFIX = re.compile(r"\d{8}(v\d+)?$")  # Lambda: CreateFunction20150331, ...v2
_ELLIPSIS = "…"


def clean(value: object, limit: int) -> str | None:
    """`value` as one line of at most `limit` printable characters, or None if none is left.

    Control, formatting (bidi overrides, zero-width), surrogate, private-use and unassigned
    characters become `?`, whitespace runs become one space, and a longer text is cut with
    an ellipsis. Anything not a string (a JSON number, list, object) is rejected rather than
    rendered: CloudTrail writes these fields as strings, so a different type is malformed.
    """
    if not isinstance(value, str) or limit < 1:
        return None
    if len(value) > limit * 4:  # do not walk a megabyte of hostile text
        value = value[: limit * 4]
    out: list[str] = []
    for ch in value:
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
            continue
        out.append("?" if unicodedata.category(ch)[0] == "C" else ch)
    text = "".join(out).strip()
    if not text:
        return None
    if len(text) > limit:
        text = text[: limit - 1] + _ELLIPSIS
    return text


def base_name(event_name: str) -> str:
    """The event name without an API-version suffix (`CreateFunction20150331`: `CreateFunction`)."""
    return _VERSION_SUFFIX.sub("", event_name) or event_name


def creates_access(event_name: str) -> bool:
    return base_name(event_name) in ACCESS_CREATING_CALLS


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """One CloudTrail event made with the key, as far as a summary needs it.

    Build it with `ActivityEvent.of(...)` from raw values: it bounds and cleans every text.
    `read_only` is None when CloudTrail did not say; `error_code` is set for a call AWS
    refused (an attacker probing permissions shows as a run of AccessDenied).
    """

    time: datetime
    name: str
    source: str
    region: str
    source_ip: str | None = None
    user_agent: str | None = None
    error_code: str | None = None
    read_only: bool | None = None
    target: str | None = None

    @classmethod
    def of(
        cls,
        *,
        time: datetime,
        name: object,
        source: object,
        region: object,
        source_ip: object = None,
        user_agent: object = None,
        error_code: object = None,
        read_only: object = None,
        target: object = None,
    ) -> ActivityEvent:
        """An event from untrusted raw values: texts cleaned and bounded, read_only parsed
        from a bool or CloudTrail's "true"/"false" (anything else is unknown)."""
        flag: bool | None
        if isinstance(read_only, bool):
            flag = read_only
        elif isinstance(read_only, str) and read_only.lower() in ("true", "false"):
            flag = read_only.lower() == "true"
        else:
            flag = None
        return cls(
            time=time,
            name=clean(name, NAME_MAX) or "(unnamed)",
            source=clean(source, NAME_MAX) or "(unknown)",
            region=clean(region, NAME_MAX) or "(unknown)",
            source_ip=clean(source_ip, IP_MAX),
            user_agent=clean(user_agent, AGENT_MAX),
            error_code=clean(error_code, NAME_MAX),
            read_only=flag,
            target=clean(target, TARGET_MAX),
        )

    @property
    def creates_access(self) -> bool:
        return creates_access(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "name": self.name,
            "source": self.source,
            "region": self.region,
            "source_ip": self.source_ip,
            "user_agent": self.user_agent,
            "error_code": self.error_code,
            "read_only": self.read_only,
            "target": self.target,
            "why": ACCESS_CREATING_CALLS.get(base_name(self.name)),
        }


@dataclass(frozen=True, slots=True)
class Tally:
    """The `TOP` most frequent values and their counts (most first, then by value), how many
    distinct values there were, and how many events had a value outside the top."""

    top: tuple[tuple[str, int], ...] = ()
    distinct: int = 0
    other: int = 0

    @classmethod
    def of(cls, counter: Counter[str], top: int = TOP) -> Tally:
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = tuple(ranked[:top])
        return cls(
            top=kept,
            distinct=len(ranked),
            other=sum(counter.values()) - sum(n for _, n in kept),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "top": [{"value": v, "count": n} for v, n in self.top],
            "distinct": self.distinct,
            "other": self.other,
        }


@dataclass(frozen=True, slots=True)
class RegionFailure:
    """A region keyturn could not search, and why (one line, no secret)."""

    region: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"region": self.region, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    """What a key did between `start` and `end`, as far as CloudTrail could tell.

    `access_calls` are the events whose name is in `ACCESS_CREATING_CALLS` (oldest first, at
    most `ACCESS_CALLS_SHOWN`; `access_calls_total` counts them all); in `by_action` those
    actions come first, all of them, then the `TOP` most frequent others. `complete` is False
    when a region failed or the lookup was cut at its event cap: the counts are then a lower
    bound.
    """

    key_id: str
    start: datetime
    end: datetime
    regions_searched: tuple[str, ...] = ()
    regions_failed: tuple[RegionFailure, ...] = ()
    total_events: int = 0
    failed_calls: int = 0
    by_action: Tally = field(default_factory=Tally)
    by_source_ip: Tally = field(default_factory=Tally)
    by_region: Tally = field(default_factory=Tally)
    by_user_agent: Tally = field(default_factory=Tally)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    access_calls: tuple[ActivityEvent, ...] = ()
    access_calls_total: int = 0
    truncated: bool = False
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.regions_failed and not self.truncated

    def lines(self) -> list[str]:
        """A few lines for a terminal or a notice: the totals, then the access calls."""
        span = (
            f"{self.first_seen.isoformat()} .. {self.last_seen.isoformat()}"
            if self.first_seen and self.last_seen
            else "no events"
        )
        out = [
            f"{self.key_id}: {self.total_events} CloudTrail event(s) in "
            f"{len(self.regions_searched)} region(s), {span}"
            + ("" if self.complete else " (incomplete)")
        ]
        if self.access_calls_total:
            out.append(f"{self.access_calls_total} call(s) that create access:")
            out += [
                f"  {e.time.isoformat()} {e.region} {e.name}"
                + (f" {e.target}" if e.target else "")
                + (f" from {e.source_ip}" if e.source_ip else "")
                + (f" ({e.error_code})" if e.error_code else "")
                for e in self.access_calls[:20]
            ]
        out += [f"region {f.region} not searched: {f.reason}" for f in self.regions_failed]
        if self.truncated:
            out.append(f"stopped at {self.total_events} events (the event cap)")
        out += list(self.notes)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, access calls first; holds no request body, so no secret."""
        return {
            "key_id": self.key_id,
            "access_calls": [e.to_dict() for e in self.access_calls],
            "access_calls_total": self.access_calls_total,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "complete": self.complete,
            "truncated": self.truncated,
            "regions_searched": list(self.regions_searched),
            "regions_failed": [f.to_dict() for f in self.regions_failed],
            "total_events": self.total_events,
            "failed_calls": self.failed_calls,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "by_action": self.by_action.to_dict(),
            "by_source_ip": self.by_source_ip.to_dict(),
            "by_region": self.by_region.to_dict(),
            "by_user_agent": self.by_user_agent.to_dict(),
            "notes": list(self.notes),
        }


def summarize(
    events: Iterable[ActivityEvent],
    *,
    key_id: str,
    start: datetime,
    end: datetime,
    regions_searched: Iterable[str] = (),
    regions_failed: Iterable[RegionFailure] = (),
    truncated: bool = False,
    notes: Iterable[str] = (),
    top: int = TOP,
) -> ActivitySummary:
    """Fold `events` (any order, any number) into one summary of bounded size."""
    actions: Counter[str] = Counter()
    ips: Counter[str] = Counter()
    regions: Counter[str] = Counter()
    agents: Counter[str] = Counter()
    access: list[ActivityEvent] = []
    total = failed = 0
    first: datetime | None = None
    last: datetime | None = None
    for event in events:
        total += 1
        actions[event.name] += 1
        regions[event.region] += 1
        ips[event.source_ip or "(none)"] += 1
        agents[event.user_agent or "(none)"] += 1
        if event.error_code:
            failed += 1
        if first is None or event.time < first:
            first = event.time
        if last is None or event.time > last:
            last = event.time
        if event.creates_access:
            access.append(event)
    access.sort(key=lambda e: (e.time, e.name, e.region))
    # Access-creating actions first, every one of them (CloudTrail, not the caller, names
    # events, so there are at most a few dozen), then the `top` most frequent others.
    granting = Tally.of(
        Counter({k: n for k, n in actions.items() if creates_access(k)}), top=ACCESS_CALLS_SHOWN
    )
    rest = Tally.of(Counter({k: n for k, n in actions.items() if not creates_access(k)}), top=top)
    by_action = Tally(
        top=granting.top + rest.top, distinct=len(actions), other=granting.other + rest.other
    )
    return ActivitySummary(
        key_id=key_id,
        start=start,
        end=end,
        regions_searched=tuple(sorted(set(regions_searched))),
        regions_failed=tuple(sorted(regions_failed, key=lambda f: f.region)),
        total_events=total,
        failed_calls=failed,
        by_action=by_action,
        by_source_ip=Tally.of(ips, top=top),
        by_region=Tally.of(regions, top=top),
        by_user_agent=Tally.of(agents, top=top),
        first_seen=first,
        last_seen=last,
        access_calls=tuple(access[:ACCESS_CALLS_SHOWN]),
        access_calls_total=len(access),
        truncated=truncated,
        notes=tuple(notes),
    )
