"""What an exposed key did (issue 15): the CloudTrail summary of 10,000 events, paced under
AWS's LookupEvents limit of 2 requests a second per account and region.

Setup: the sandbox CloudTrail responder (keyturn.sandbox.cloudtrail) mounted in front of
moto_server, holding `events` events made with one key, spread evenly over `REGIONS`
(the rest of the regions moto reports enabled hold none). It enforces the limit (a token
bucket per region; a request beyond it is `ThrottlingException`) and adds the rotation
bench's 60 ms round trip to every answer. Then `build_activity(...).summary(key, ...)`
runs as the exposed-key response runs it: ec2:DescribeRegions (from moto), then every
region in parallel, 50 events a page.

The bound: no client can do better than the limit allows, so with regions in parallel the
lookup takes at least max over regions of (requests in that region) / 2 s. Reported: wall
time, that bound, their ratio (target <= 1.25), requests and throttles seen by the
responder; every event must be in the summary and the summary complete.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_rotate import LATENCY_S
from bench.common import Row, Stopwatch, aws_env, median, patched_environ
from keyturn.config import load_settings
from keyturn.sandbox.cloudtrail import RATE, CloudTrailResponder, generate_events
from keyturn.wiring import build_activity, build_aws

KEY = "AKIABENCHEXPOSED0001"
DEFAULT_EVENTS = 10_000
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1")
GOAL_RATIO = 1.25


def one_run(moto_url: str, events: list[Any], end: datetime) -> dict[str, Any]:
    with (
        CloudTrailResponder(events, upstream=moto_url, throttle=True, latency=LATENCY_S) as trail,
        patched_environ(aws_env(trail.url)),
    ):
        settings = load_settings(flags={"trail.max_events": len(events)}).settings
        source = build_activity(settings, build_aws(settings))
        with Stopwatch() as watch:
            summary = source.summary(KEY, end - timedelta(hours=24), end)
        requests = dict(trail.usage.requests)
        throttled = dict(trail.usage.throttled)
    needed = {r: n - throttled.get(r, 0) for r, n in requests.items()}
    bound = max(needed.values()) / RATE
    return {
        "wall_s": round(watch.seconds, 2),
        "bound_s": round(bound, 2),
        "ratio": round(watch.seconds / bound, 3),
        "events": summary.total_events,
        "complete": summary.complete,
        "regions": len(summary.regions_searched),
        "requests": sum(requests.values()),
        "max_requests_in_a_region": max(needed.values()),
        "throttled": sum(throttled.values()),
        "access_calls": summary.access_calls_total,
        "lines": summary.lines()[:3],
    }


def run(moto_url: str, runs: int, events: int = DEFAULT_EVENTS) -> dict[str, Any]:
    """`events`: not a runner option (`--users` sizes accounts, not event history)."""
    started = time.perf_counter()
    count = events
    end = datetime.now(UTC).replace(microsecond=0)
    history = generate_events(KEY, count, REGIONS, end=end - timedelta(minutes=1))
    results = [one_run(moto_url, history, end) for _ in range(runs)]
    ratio = median([r["ratio"] for r in results])
    wall = median([r["wall_s"] for r in results])
    bound = median([r["bound_s"] for r in results])
    complete = all(r["complete"] and r["events"] == count for r in results)
    ok = ratio <= GOAL_RATIO and complete
    last = results[-1]
    rows = [
        Row(
            metric=f"CloudTrail summary of {count:,} events, {len(REGIONS)} busy regions",
            value=f"{wall:.1f} s",
            note=f"bound {bound:.1f} s = {last['max_requests_in_a_region']} LookupEvents in "
            f"the busiest region / {RATE:g} per s; {last['regions']} regions searched, "
            f"{last['requests']} requests, {last['throttled']} throttled",
        ),
        Row(
            metric="... wall / the 2 req/s bound",
            value=f"{ratio:.2f}",
            target=f"<= {GOAL_RATIO}",
            ok=ratio <= GOAL_RATIO,
            note="runs " + ", ".join(f"{r['ratio']:.2f}" for r in results),
        ),
        Row(
            metric="... every event summarised, summary complete",
            value="yes" if complete else "no",
            target="yes",
            ok=complete,
            note=f"{last['events']:,} events, {last['access_calls']} access-creating calls",
        ),
    ]
    return {
        "rows": rows,
        "medians": {str(count): {"wall_s": wall, "bound_s": bound, "ratio": ratio}},
        "params": {"events": count, "regions": list(REGIONS), "latency_s": LATENCY_S},
        "raw": results,
        "ok": ok,
        "seconds": round(time.perf_counter() - started, 1),
    }
