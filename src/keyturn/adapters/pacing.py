"""One request pacer per run and account: a token bucket per AWS service, on every client.

AWS limits the request rate of each service per account (and region), whoever calls: a run
that sends more than that is throttled, and every throttled call is budget wasted for every
other client in the account. botocore's adaptive retries slow down only *after* throttles;
this keeps the run under the limit in the first place. It is attached where the clients are
made (`keyturn.wiring.Aws.client`), so every command (audit, enforce, rotate, leases and
whatever comes next) is paced without each service remembering to be.

Chosen over a limiter in each service (what `rotate` had): a botocore event hook sees every
request of every client, retries included, so the bucket is what AWS sees. `before-call`
takes the call's token *before* keyturn's total-time deadline starts counting
(`wiring.Deadline`), so a wait for a token is never mistaken for a slow endpoint; each retry
(`before-send` after the first) takes one more, since AWS counts it.

Rates are set by `service` or `service:Operation` (the operation's own rate wins):
`ses:SendEmail` is paced by SES's MaxSendRate, not by SES's other calls' limits. AWS counts
most services per account *and region*, so a regional service gets one bucket per region of
the clients that call it (`client.meta.region_name`): a CloudTrail lookup over 17 regions
may send 2 LookupEvents a second to each. IAM and Organizations are global services (one
endpoint, one limit per account), so they have one bucket whatever region a client names.

A call may carry a priority (`prioritised(service).acquire(p)` just before it, 0 first), as
rotation does to spend IAM's budget first on calls that start a propagation clock
(services/rotate.py). The priority is the thread's *next* call's only (its retries keep
it): a call nobody gave one waits at DEFAULT_PRIORITY, never at whatever an earlier call
of the thread was given.

The limits (requests a second, per account and region unless said):

- IAM: not published by AWS (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
  lists object quotas only); throttling is commonly seen from ~20 requests/s per account,
  shared by every IAM client in it. keyturn's default takes half (`pacing.iam`).
- STS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html#reference_iam-quotas-sts
  (hundreds a second per account and region); default 50, far above what IAM can feed.
- SES SendEmail: `MaxSendRate` from GetSendQuota (14/s on a new production account, 1/s in
  the sandbox: https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas.html),
  discovered by the run that sends (`limit_send_rate`), capped by `pacing.ses_send_rate`.
- Secrets Manager: PutSecretValue and the other writes 50/s, reads 5,000-10,000/s
  (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html).
- CloudTrail LookupEvents: 2/s per account and region, not adjustable
  (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/WhatIsCloudTrail-Limits.html).
  Any CloudTrail client built by `Aws.client` is paced by it, per region: the adapter
  (adapters/cloudtrail.py) has no limiter of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from keyturn.services.ratelimit import RateLimiter

# Calls that carry no priority wait behind none (rotation's READ is 2: see services/rotate).
DEFAULT_PRIORITY = 2
SES_SEND = "ses:SendEmail"
LOOKUP_EVENTS = "cloudtrail:LookupEvents"
# One endpoint and one request-rate limit per account, whatever region a client names.
GLOBAL_SERVICES = frozenset({"iam", "organizations"})


def burst_for(rate: float) -> int:
    """A quarter second's worth of requests (at least one) may leave at once.

    A request takes its token, then a variable time to reach AWS, so requests can arrive
    bunched: using little of AWS's own (unknown) burst leaves room for that jitter. Measured
    with rotation (bench_rotate, 200 users, 20 IAM calls/s): a full second's burst saw ~3% of
    calls throttled, and botocore's adaptive mode then slowed the whole client (1.40x the
    bound against 1.13x).
    """
    return max(1, int(rate / 4))


class _Priority:
    """`acquire(priority)` before a call: that service's next requests on this thread wait
    with that priority. The token itself is taken by the hook, once per request."""

    def __init__(self, pacer: Pacer, service: str) -> None:
        self._pacer = pacer
        self._service = service

    def acquire(self, priority: int = DEFAULT_PRIORITY) -> None:
        self._pacer.set_priority(self._service, priority)


class Pacer:
    """Token buckets by rate key (`service` or `service:Operation`) and, for a regional
    service, region; `attach(client)` paces a client."""

    def __init__(self, rates: Mapping[str, float]) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str | None], RateLimiter] = {}
        self._rates = dict(rates)
        self._configured = dict(rates)
        self._local = threading.local()
        # Paced requests per bucket (`key`, or `key@region` for a regional service),
        # retries included.
        self.requests: Counter[str] = Counter()

    def fresh(self) -> Pacer:
        """A pacer with the configured rates and full buckets (another account's run)."""
        return Pacer(self._configured)

    def rate(self, key: str) -> float | None:
        with self._lock:
            return self._rates.get(key)

    def limit(self, key: str, rate: float) -> None:
        """Pace `key` at `rate` from now on, in every region (a rate discovered at run time)."""
        if rate <= 0:
            return
        with self._lock:
            if self._rates.get(key) == rate:
                return
            self._rates[key] = rate
            for bucket in [b for b in self._buckets if b[0] == key]:
                del self._buckets[bucket]

    def limit_send_rate(self, discovered: float, cap: float | None) -> float:
        """SES SendEmail at its account's MaxSendRate (or `cap`, when lower); the rate set."""
        rate = min(discovered, cap) if cap else discovered
        self.limit(SES_SEND, rate)
        return rate

    def prioritised(self, service: str) -> _Priority:
        return _Priority(self, service)

    def set_priority(self, service: str, priority: int) -> None:
        """The priority of this thread's next `service` call (and of its retries)."""
        self._priorities()[service] = priority

    def take_priority(self, service: str) -> int:
        """The priority set for this thread's next `service` call, now used up."""
        return self._priorities().pop(service, DEFAULT_PRIORITY)

    def acquire(
        self,
        service: str,
        operation: str,
        region: str | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> None:
        """Wait for a token of `service:operation`'s bucket, else `service`'s, if any (the
        region's own bucket for a regional service)."""
        where = None if service in GLOBAL_SERVICES else region
        key = f"{service}:{operation}"
        with self._lock:
            rate = self._rates.get(key)
            if rate is None:
                key = service
                rate = self._rates.get(service)
            if rate is None:
                return
            bucket = self._buckets.get((key, where))
            if bucket is None:
                bucket = self._buckets[(key, where)] = RateLimiter(rate, burst=burst_for(rate))
            self.requests[key if where is None else f"{key}@{where}"] += 1
        bucket.acquire(priority)

    def attach(self, client: Any) -> Any:
        """Pace every request `client` sends (in its region's buckets); returns `client`."""
        service = str(client.meta.service_model.service_name)
        region = client.meta.region_name
        region = str(region) if region else None
        call = _PerThread()  # the current call's priority, until its first attempt is sent

        def before_call(model: Any, **_: Any) -> None:
            priority = self.take_priority(service)
            self.acquire(service, str(model.name), region, priority)
            call.paid = True
            call.priority = priority

        def before_send(event_name: str, **_: Any) -> None:
            if call.paid:
                call.paid = False  # the first attempt's token was taken before the call
                return
            operation = event_name.rsplit(".", 1)[-1]
            self.acquire(service, operation, region, call.priority)  # a retry

        client.meta.events.register("before-call", before_call)
        client.meta.events.register("before-send", before_send)
        return client

    def _priorities(self) -> dict[str, int]:
        found: dict[str, int] | None = getattr(self._local, "priorities", None)
        if found is None:
            found = self._local.priorities = {}
        return found


class _PerThread(threading.local):
    """One client's call in flight on this thread (a client is shared by a run's workers)."""

    paid: bool = False
    priority: int = DEFAULT_PRIORITY
