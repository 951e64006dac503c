"""Rotation "as on real AWS": keyturn under a latency model, against its bound and a loop.

The model (keyturn.sandbox.faults.FaultProxy in front of moto_server, so it acts on the real
client stack: botocore's retries, keyturn's rate limiter, verifier and error translation):

- every AWS call takes LATENCY_S (60 ms) more, as a round trip to a region would;
- IAM answers at most IAM_RATE (20) requests a second (token bucket, one second of burst),
  and refuses the rest with HTTP 400 `Throttling` "Rate exceeded", as AWS does;
- a new key is refused (403 `InvalidClientTokenId`) for PROPAGATION_S (10 s) after its
  CreateAccessKey answer, as IAM keys are until they have propagated.

These are the model's assumptions, not measurements of AWS: AWS does not publish IAM's
control-plane rate, and propagation varies (5-15 s in the field, DESIGN.md). To model other
values change the three constants below (or pass `latency=`, `propagation=`, `iam_rate=` to
`run`). Secrets Manager and STS are not rate limited in the model (their published limits are
far above what 20 IAM requests/s can feed).

What is measured, per size (200 and 1,000 users by default, the 1,000 once: see LARGE_RUNS;
`--rotate-sizes` or `--users` override):
users start as seed 001 leaves them, one key each, stored in their Secrets Manager secret
(seeded straight into moto's backends, not through the proxy). keyturn rotates them all
in-process (wiring.build_rotation + services.rotate.run_many, as the CLI does), with
`rotate.rate` and `pacing.iam` = the model's IAM rate and verification at its defaults (5
consecutive GetCallerIdentity successes). Reported: wall time; the bound the model implies,
`max(IAM calls / IAM rate, propagation + one user's chain of calls x latency)`, with calls
counted by the proxy (retries and refused calls included); the ratio wall / bound (goal
<= 1.25); calls per user by operation. The peer is the naive sequential loop (create, poll
GetCallerIdentity with the new key until it works, put the secret, deactivate the old key),
through the same proxy: it costs a propagation delay per user, so it is timed on a small
sample (SEQUENTIAL_SAMPLE users) and projected linearly.

Where the time goes (`python -m bench --only rotate`, 3 runs, 2-core machine, load 0.7-14):
200 users 44.6 s against a 40.0 s bound (1.12), 1,000 users 204.8 s against 200.0 s (1.02),
no throttled call. What remains is not the limiter: the last CreateAccessKey comes when the
start calls (ListAccessKeys, TagUser, CreateAccessKey: 3 of the 4 IAM calls per user) have
used their share of IAM's budget (30 s for 200 users), and that key then needs its 10 s of
propagation plus keyturn's verification, 5 GetCallerIdentity successes about a second apart
(~3.5 s more: store -> verified takes ~14 s). The bound counts neither the start-before-
propagation ordering nor the 5-success streak, a safety choice kept on purpose; at 1,000
users the IAM budget dominates and the same ~14 s tail is 2% of it. Three keyturn changes
came out of this model (see their commits): the rate limiter gates IAM calls only and serves
a user's start calls before other users' retirements; the default worker count follows the
rate (each user waits on propagation); the limiter's burst is a quarter second's worth, as
a full second's provoked ~3% throttles and botocore's adaptive mode then slowed the client
(before those: 200 users took 1.40x the bound).

Budget: with three runs of both sizes the module took 784 s (13 min), and the model itself
sets that floor (3 x (200 s + 40 s) of IAM budget is 720 s). So the 1,000-user size runs
LARGE_RUNS (1) time: the module then took 372 s in the full `make bench` of b7346ca. The
sequential loop is timed once, on SEQUENTIAL_SAMPLE users (~32 s), not per size and run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from bench.common import (
    Row,
    Stopwatch,
    aws_env,
    median,
    moto_client,
    patched_environ,
    reset_moto,
    seed_iam,
    seed_secrets,
)
from keyturn.config import load_settings
from keyturn.domain.rotation import RotationState
from keyturn.sandbox.faults import FaultPlan, FaultProxy
from keyturn.services.rotate import run_many
from keyturn.wiring import build_aws, build_rotation

DEFAULT_SIZES = (200, 1_000)
LATENCY_S = 0.06
PROPAGATION_S = 10.0
IAM_RATE = 20.0
GOAL_RATIO = 1.25
# From LARGE users on, LARGE_RUNS runs, whatever --runs says: at 1,000 users each run is
# 200 s of the model's IAM budget (a floor no code change can lower), three runs would take
# a third of `make bench`'s 30 minutes, and the run-to-run spread is small (three recorded
# runs, commit 3f842bd's bench/results/rotate.json: 205.6 / 204.1 / 204.8 s). Sizes below
# LARGE get the full --runs.
LARGE = 1_000
LARGE_RUNS = 1
SEQUENTIAL_SAMPLE = 3
SEQUENTIAL_POLL_S = 0.5  # the loop's wait between GetCallerIdentity attempts
PATH = "bench/{user}"


def model(latency: float, propagation: float, iam_rate: float) -> FaultPlan:
    return FaultPlan(latency=latency, propagation=propagation, rate_limits={"iam": iam_rate})


def seed(moto_url: str, users: int, prefix: str = "bench-rot") -> list[dict[str, str]]:
    """Users with one key each, stored in their secret: `[{name, key_id}]`."""
    reset_moto(moto_url)
    names = [f"{prefix}-{index:05d}" for index in range(users)]
    created = seed_iam(
        moto_url, [{"name": name, "keys": [{"age_days": 100}]} for name in names], with_secrets=True
    )
    secrets = [
        {
            "name": PATH.format(user=user["name"]),
            "value": json.dumps(
                {
                    "UserName": user["name"],
                    "AccessKeyId": user["keys"][0],
                    "SecretAccessKey": user["secrets"][0],
                }
            ),
        }
        for user in created
    ]
    seed_secrets(moto_url, secrets)
    return [{"name": user["name"], "key_id": user["keys"][0]} for user in created]


class Timeline:
    """When each user passed each rotation step (keyturn's checkpoint hook), for the profile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.steps: dict[str, dict[str, float]] = {}

    def __call__(self, step: str, user: str) -> None:
        at = time.perf_counter() - self.started
        with self._lock:
            self.steps.setdefault(user, {})[step] = at

    def profile(self) -> dict[str, float]:
        def at(step: str) -> list[float]:
            return [steps[step] for steps in self.steps.values() if step in steps]

        def spans(start: str, end: str) -> list[float]:
            return [s[end] - s[start] for s in self.steps.values() if start in s and end in s]

        creates, deactivations = at("create"), at("deactivate")
        return {
            "first_create_s": round(min(creates, default=0.0), 2),
            "last_create_s": round(max(creates, default=0.0), 2),
            "last_deactivate_s": round(max(deactivations, default=0.0), 2),
            "store_to_verified_median_s": round(median(spans("store", "verify")), 2),
            "store_to_verified_max_s": round(max(spans("store", "verify"), default=0.0), 2),
            "verified_to_deactivated_median_s": round(median(spans("verify", "deactivate")), 2),
            "verified_to_deactivated_max_s": round(
                max(spans("verify", "deactivate"), default=0.0), 2
            ),
        }


def rotate_keyturn(
    moto_url: str, users: int, plan: FaultPlan, workers: int | None = None
) -> dict[str, Any]:
    seeded = seed(moto_url, users)
    names = [user["name"] for user in seeded]
    timeline = Timeline()
    with FaultProxy(moto_url, plan) as proxy, patched_environ(aws_env(proxy.url)):
        flags: dict[str, Any] = {
            "rotate.store": "secretsmanager",
            "rotate.path": PATH,
            "rotate.rate": plan.rate_limits["iam"],
            # The run's IAM bucket too: rotation takes the lower of the two (its default
            # of 10/s would halve the model's rate; see docs/performance.md for sizing).
            "pacing.iam": plan.rate_limits["iam"],
            "rotate.workers": workers,  # None: keyturn's default, derived from the rate
        }
        settings = load_settings(flags={k: v for k, v in flags.items() if v is not None}).settings
        aws = build_aws(settings)
        service = build_rotation(settings, aws, checkpoint=timeline)
        workers = settings.rotate.worker_count()
        load_before = os.getloadavg()[0]
        timeline.started = time.perf_counter()
        with Stopwatch() as watch:
            outcomes = run_many(names, service.rotate, workers=workers)
        calls = dict(sorted(proxy.calls.items()))
        counts = dict(proxy.counts)
    failed = [o for o in outcomes if not o.ok]
    return {
        "users": users,
        "workers": workers,
        "wall_s": round(watch.seconds, 2),
        "calls": calls,
        "injected": counts,
        "rotated": sum(1 for o in outcomes if o.ok and o.state == RotationState.OLD_DEACTIVATED),
        "states": dict(Counter(str(o.state) for o in outcomes)),
        "failed": [f"{o.user}: {o.message}" for o in failed[:5]],
        "profile": timeline.profile(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def bound(calls: dict[str, int], users: int, plan: FaultPlan) -> dict[str, float]:
    """The model's lower bound on the wall time of rotating `users` users."""
    iam_calls = sum(n for op, n in calls.items() if op.startswith("iam:"))
    per_user = sum(calls.values()) / users
    rate_bound = iam_calls / plan.rate_limits["iam"]
    chain_bound = plan.propagation + per_user * plan.latency
    return {
        "iam_calls": iam_calls,
        "calls_per_user": round(per_user, 2),
        "rate_bound_s": round(rate_bound, 2),
        "chain_bound_s": round(chain_bound, 2),
        "bound_s": round(max(rate_bound, chain_bound), 2),
    }


# -- the peer: the naive sequential loop -----------------------------------------------------


def rotate_sequentially(moto_url: str, users: int, plan: FaultPlan) -> dict[str, Any]:
    """Seed-style: for each user, create, poll until the new key works, store, deactivate."""
    seeded = seed(moto_url, users, prefix="bench-seq")
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    per_user: list[float] = []
    polls = 0
    with FaultProxy(moto_url, plan) as proxy:
        iam = moto_client("iam", proxy.url, config=config)
        sm = moto_client("secretsmanager", proxy.url, config=config)
        for user in seeded:
            with Stopwatch() as watch:
                new = iam.create_access_key(UserName=user["name"])["AccessKey"]
                sts = moto_client(
                    "sts",
                    proxy.url,
                    key_id=new["AccessKeyId"],
                    secret=new["SecretAccessKey"],
                    config=config,
                )
                while True:
                    polls += 1
                    try:
                        sts.get_caller_identity()
                        break
                    except ClientError:
                        time.sleep(SEQUENTIAL_POLL_S)
                sm.put_secret_value(
                    SecretId=PATH.format(user=user["name"]),
                    SecretString=json.dumps(
                        {
                            "UserName": user["name"],
                            "AccessKeyId": new["AccessKeyId"],
                            "SecretAccessKey": new["SecretAccessKey"],
                        }
                    ),
                )
                iam.update_access_key(
                    UserName=user["name"], AccessKeyId=user["key_id"], Status="Inactive"
                )
            per_user.append(watch.seconds)
        calls = dict(sorted(proxy.calls.items()))
    return {
        "users": users,
        "per_user_s": [round(s, 2) for s in per_user],
        "polls": polls,
        "calls": calls,
    }


# -- the module ------------------------------------------------------------------------------


def _per_op(calls: dict[str, int], users: int) -> str:
    return ", ".join(f"{op.split(':', 1)[1]} {n / users:.2f}" for op, n in calls.items())


def run(
    moto_url: str,
    runs: int,
    rotate_sizes: tuple[int, ...] | None = None,
    users: int | None = None,
    *,
    latency: float = LATENCY_S,
    propagation: float = PROPAGATION_S,
    iam_rate: float = IAM_RATE,
    workers: int | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    plan = model(latency, propagation, iam_rate)
    chosen = (users,) if users else tuple(rotate_sizes or DEFAULT_SIZES)
    raw: dict[str, Any] = {
        "model": {"latency_s": latency, "propagation_s": propagation, "iam_rate": iam_rate},
        "keyturn": {},
    }
    sequential = rotate_sequentially(moto_url, SEQUENTIAL_SAMPLE, plan)
    raw["sequential"] = sequential
    sequential_per_user = median(sequential["per_user_s"])
    rows: list[Row] = [
        Row(
            metric="model",
            value=f"{latency * 1000:.0f} ms, {propagation:.0f} s, IAM {iam_rate:g}/s",
            note="latency per call, new-key propagation, IAM request rate (assumptions; "
            "see bench/bench_rotate.py)",
        )
    ]
    medians: dict[str, Any] = {"sequential_per_user_s": round(sequential_per_user, 2)}
    ok = True
    for size in chosen:
        repeats = max(1, runs if size < LARGE else min(runs, LARGE_RUNS))
        results = [rotate_keyturn(moto_url, size, plan, workers) for _ in range(repeats)]
        raw["keyturn"][str(size)] = results
        for result in results:
            result["bound"] = bound(result["calls"], size, plan)
        wall = median([r["wall_s"] for r in results])
        the_bound = median([r["bound"]["bound_s"] for r in results])
        ratio = median([r["wall_s"] / r["bound"]["bound_s"] for r in results])
        rotated = min(r["rotated"] for r in results)
        middle = sorted(results, key=lambda r: r["wall_s"])[len(results) // 2]
        projected = sequential_per_user * size
        b = middle["bound"]
        profile = middle["profile"]
        ok = ok and rotated == size
        rows += [
            Row(
                metric=f"keyturn, {size:,} users: wall time",
                value=f"{wall:.1f} s",
                note=f"median of {len(results)}; {middle['workers']} workers; "
                f"load {middle['load_average'][0]:.1f}->{middle['load_average'][1]:.1f}",
            ),
            Row(
                metric=f"... bound the model implies ({size:,} users)",
                value=f"{the_bound:.1f} s",
                note=f"max({b['iam_calls']:,} IAM calls / {iam_rate:g}/s = "
                f"{b['rate_bound_s']:.1f} s, {propagation:g} s + {b['calls_per_user']:.1f} calls "
                f"x {latency * 1000:.0f} ms = {b['chain_bound_s']:.1f} s)",
            ),
            Row(
                metric=f"... wall / bound ({size:,} users)",
                value=f"{ratio:.2f}",
                target=f"<= {GOAL_RATIO}",
                ok=ratio <= GOAL_RATIO,
                note=f"last CreateAccessKey at {profile['last_create_s']:.1f} s; store->verified "
                f"median {profile['store_to_verified_median_s']:.1f} s, max "
                f"{profile['store_to_verified_max_s']:.1f} s",
            ),
            Row(
                metric=f"... calls per user by operation ({size:,} users)",
                value=f"{b['calls_per_user']:.2f}",
                note=_per_op(middle["calls"], size)
                + f"; throttled {middle['injected'].get('throttled iam', 0)}",
            ),
            Row(
                metric=f"... users rotated ({size:,} users)",
                value=f"{rotated:,} / {size:,}",
                ok=rotated == size,
                note="; ".join(middle["failed"]),
            ),
            Row(
                metric=f"sequential loop, {size:,} users (PROJECTED)",
                value=f"{projected:.0f} s",
                note=f"projected linearly from {SEQUENTIAL_SAMPLE} users timed through the same "
                f"proxy ({sequential_per_user:.1f} s per user, median)",
            ),
            Row(
                metric=f"speed-up, keyturn over the sequential loop ({size:,} users)",
                value=f"{projected / wall:.0f}x",
                note="against the projection above",
            ),
        ]
        medians[str(size)] = {
            "wall_s": round(wall, 2),
            "bound_s": round(the_bound, 2),
            "ratio": round(ratio, 3),
            "rotated": rotated,
            "sequential_projected_s": round(projected, 1),
            "speedup_over_sequential": round(projected / wall, 1),
        }
    return {
        "rows": rows,
        "medians": medians,
        "raw": raw,
        "ok": ok,
        "seconds": round(time.perf_counter() - started, 1),
    }
