"""Rotation at scale: AWS calls per rotated user, and wall time for 500 users.

Issue 4's target: at most 7 AWS API calls per rotated user besides the verification calls
(ListAccessKeys, DescribeSecret, TagUser for the intent, CreateAccessKey, PutSecretValue,
UpdateSecretVersionStage, UpdateAccessKey), and the wall time to rotate 500 users into
Secrets Manager against a `moto_server` process. Users start as seed 001 leaves them: one
key, stored in their secret; one user has no secret yet, to show what creating it costs.

Counted with botocore's `before-send` hook on keyturn's own session (so retries count too):
IAM and Secrets Manager as "calls", STS (GetCallerIdentity signed by each new key, 5 in a row
by default) apart as verification. The request-rate limit is raised so the number measures
keyturn and the emulator, not the limiter (at the default 10 requests/s, 500 users take
at least 350 s, by design).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from bench.common import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    CallCounter,
    Row,
    Stopwatch,
    aws_env,
    median,
    patched_environ,
    reset_moto,
)
from keyturn.config import load_settings
from keyturn.services.rotate import run_many
from keyturn.wiring import build_aws, build_rotation

DEFAULT_USERS = 500
WORKERS = 16
MAX_CALLS_PER_USER = 7
SERVICES = ("iam", "secretsmanager")  # path has no {account}: keyturn itself calls no STS


def seed(moto_url: str, users: int) -> list[str]:
    """Users with one key each, stored (seed 001's shape) in Secrets Manager, as consumers
    would already read it, except user 1, whose secret keyturn must create."""
    credentials = {
        "endpoint_url": moto_url,
        "region_name": REGION,
        "aws_access_key_id": FAKE_KEY_ID,
        "aws_secret_access_key": FAKE_SECRET,
    }
    iam = boto3.client("iam", **credentials)  # type: ignore[call-overload]
    sm = boto3.client("secretsmanager", **credentials)  # type: ignore[call-overload]
    names = [f"bench-rot-{index:05d}" for index in range(users)]

    def one(name: str) -> None:
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        if name == names[1]:
            return
        doc = {
            "UserName": name,
            "AccessKeyId": key["AccessKeyId"],
            "SecretAccessKey": key["SecretAccessKey"],
        }
        sm.create_secret(Name=f"bench/{name}", SecretString=json.dumps(doc))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(one, names))
    return names


def rotate_all(moto_url: str, users: int) -> dict[str, Any]:
    reset_moto(moto_url)
    names = seed(moto_url, users)
    with patched_environ(aws_env(moto_url)):
        flags = {
            "rotate.store": "secretsmanager",
            "rotate.path": "bench/{user}",
            "rotate.verify_interval_seconds": 0,
            "rotate.workers": WORKERS,
            "rotate.rate": 1000,
            "aws.workers": WORKERS,
        }
        settings = load_settings(flags=flags).settings
        aws = build_aws(settings)
        counter = CallCounter()
        for service in SERVICES:
            counter.attach(aws.session.events, service)
        verifications = CallCounter()  # the new-key STS clients share keyturn's session
        verifications.attach(aws.session.events, "sts")
        service = build_rotation(settings, aws)

        first = service.rotate(names[0])
        single = counter.snapshot()
        fresh = service.rotate(names[1])
        new_secret = _minus(counter.snapshot(), single)
        before_bulk = counter.snapshot()
        with Stopwatch() as watch:
            outcomes = run_many(names[2:], service.rotate, workers=WORKERS)
        bulk = _minus(counter.snapshot(), before_bulk)
        total = counter.snapshot()
    failed = [o for o in [first, fresh, *outcomes] if not o.ok]
    return {
        "single_user_calls": single,
        "new_secret_calls": new_secret,
        "bulk_calls": bulk,
        "total_calls": total,
        "wall_s": watch.seconds,
        "rotated": len(outcomes) + 2 - len(failed),
        "failed": [f"{o.user}: {o.message}" for o in failed[:5]],
        "verify_calls_per_user": verifications.total / users,
    }


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}


def run(moto_url: str, runs: int, users: int = DEFAULT_USERS) -> dict[str, Any]:
    started = time.perf_counter()
    raw = [rotate_all(moto_url, users) for _ in range(max(1, runs))]
    per_user = max(sum(r["single_user_calls"].values()) for r in raw)
    first_time = max(sum(r["new_secret_calls"].values()) for r in raw)
    bulk_users = users - 2
    average = median([sum(r["bulk_calls"].values()) / bulk_users for r in raw])
    wall = median([r["wall_s"] for r in raw])
    rotated = min(r["rotated"] for r in raw)
    by_op = ", ".join(f"{op} {n}" for op, n in raw[-1]["single_user_calls"].items())
    rows: list[Row] = [
        Row(
            metric="AWS calls for one rotated user (besides verification)",
            value=str(per_user),
            target=f"<= {MAX_CALLS_PER_USER}",
            ok=per_user <= MAX_CALLS_PER_USER,
            note=by_op,
        ),
        Row(
            metric="... the first rotation into a secret that does not exist yet",
            value=str(first_time),
            note="+CreateSecret: a placeholder without a key, so AWSCURRENT is never an "
            "unverified key (Secrets Manager labels a first version AWSCURRENT)",
        ),
        Row(
            metric=f"AWS calls per user over {bulk_users:,} users",
            value=f"{average:.2f}",
            note="includes retries (adaptive mode) under concurrency",
        ),
        Row(
            metric="verification calls per user (STS, new key)",
            value=f"{raw[-1]['verify_calls_per_user']:.1f}",
            note="consecutive GetCallerIdentity successes required",
        ),
        Row(
            metric=f"wall time, {bulk_users:,} users, {WORKERS} workers",
            value=f"{wall:.1f} s",
            note=f"{bulk_users / wall:.1f} users/s against moto_server; rate limit 1000 req/s",
        ),
        Row(
            metric="users rotated",
            value=f"{rotated:,} / {users:,}",
            ok=rotated == users,
            note="; ".join(raw[-1]["failed"]),
        ),
    ]
    return {
        "rows": rows,
        "medians": {
            "calls_per_user_single": per_user,
            "calls_first_rotation_new_secret": first_time,
            "calls_per_user_average": round(average, 2),
            "wall_s": round(wall, 2),
            "users": users,
            "workers": WORKERS,
        },
        "raw": raw,
        "seconds": round(time.perf_counter() - started, 1),
    }
