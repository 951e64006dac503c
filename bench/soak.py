"""`make soak`: keyturn at volume against a separate moto_server, with throttling injected.

Issue 7, item 6. Three parts, one moto_server process, every keyturn call through
keyturn.sandbox.faults.FaultProxy, which throttles IAM beyond 60 requests a second and a
share of calls at random (`Throttling`, as IAM answers) and fails a few more with 503.
The point is not speed: it is that nothing is lost and that runs repeated the way the
schedule repeats them finish the work.

- enforce: USERS users with one key each, 40-400 days old (seeded straight into moto's
  backend, backdated), notices off and deactivate-without-notice on, so every key is due.
  `enforce --apply` runs until a run reports no failure (at most MAX_RUNS, as the daily
  schedule would). Then every key must be Inactive with its `deactivated` mark: any other
  key is "lost".
- rotate: ROTATIONS users, each with one key stored in its Secrets Manager secret (seed
  001's shape), rotated with `run_many`; a user whose rotation failed is resumed in the next
  round (`--resume`), again up to MAX_RUNS. Then, read straight from moto (no faults), per
  user: at most 2 keys; the AWSCURRENT secret names an Active key that authenticates as the
  user and is not the old one; no Active key other than the current one (an active key
  whose secret is nowhere). A user breaking any of these is "lost".
- leases: LEASES iam_user leases issued, revoked by prefix, then tidy; any keyturn user
  left, or any lease not REVOKED, is lost.

Sizes: `python -m bench.soak [USERS [ROTATIONS [LEASES]]]`; `make soak` runs the issue's
10,000 / 1,000 (and 100 leases). Results land in bench/results/soak.json.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import aws_env, moto_client, patched_environ, seed_iam
from bench.server import MotoServerProcess
from keyturn.config import load_settings
from keyturn.domain.enforcement import state_tag
from keyturn.domain.errors import KeyturnError
from keyturn.sandbox.faults import FaultPlan, FaultProxy
from keyturn.services.enforce import ListSink, resolve_config
from keyturn.services.rotate import Outcome, run_many
from keyturn.wiring import build_enforce, build_leases, build_rotation

# IAM's rate limit, as AWS enforces it (a token bucket; beyond it `Throttling`), and on top
# of it a share of calls throttled or failed at random, as when another tool in the
# account spends the same budget. A flat random share alone would be unlike AWS: botocore's
# adaptive mode answers every throttle by slowing down, and a throttle that comes whatever
# the rate drives it to a crawl (10,000 users took over an hour that way).
PLAN = FaultPlan(throttle=0.005, server_error=0.002, rate_limits={"iam": 60.0})
MAX_RUNS = 5
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
DEFAULTS = (10_000, 1_000, 100)


# -- enforce --------------------------------------------------------------------------------


def enforce(proxy_url: str, moto_url: str, users: int) -> dict[str, Any]:
    rng = random.Random(7)
    names = [f"soak-{number:05d}" for number in range(users)]
    seed_iam(
        moto_url,
        [{"name": n, "keys": [{"age_days": rng.uniform(40, 400), "active": True}]} for n in names],
    )
    env = {
        **aws_env(proxy_url),
        "KEYTURN_ENFORCE_NOTIFY": "false",
        "KEYTURN_ENFORCE_DEACTIVATE_WITHOUT_NOTICE": "true",
        "KEYTURN_AWS_WORKERS": "8",
    }
    failures, runs, started = 0, 0, time.monotonic()
    with patched_environ(env):
        settings = load_settings().settings
        config = resolve_config(settings)
        for runs in range(1, MAX_RUNS + 1):
            service = build_enforce(settings, config, ListSink())
            try:
                outcome = service.apply(service.plan())
            except KeyturnError as exc:
                failures += 1
                print(f"  enforce run {runs} stopped: {exc}", file=sys.stderr)
                continue
            failures += len(outcome.failures)
            if not outcome.failures:
                break
    seconds = time.monotonic() - started
    iam = moto_client("iam", moto_url)
    lost = 0
    for user in names:
        listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}
        ok = len(listed) == 1 and listed[0]["Status"] == "Inactive"
        mark = tags.get(state_tag(listed[0]["AccessKeyId"]), "") if listed else ""
        lost += not (ok and "deactivated@" in mark)
    return {
        "users": users,
        "runs": runs,
        "failures_retried_by_next_run": failures,
        "lost_keys": lost,
        "seconds": round(seconds, 1),
    }


# -- rotate ---------------------------------------------------------------------------------


def seed_rotation(moto_url: str, count: int) -> dict[str, str]:
    """Users with one key each, stored in `soak/<user>`; returns user -> original key id."""
    iam, sm = moto_client("iam", moto_url), moto_client("secretsmanager", moto_url)

    def one(name: str) -> tuple[str, str]:
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        document = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
        sm.create_secret(Name=f"soak/{name}", SecretString=json.dumps(document))
        return name, key["AccessKeyId"]

    names = [f"soak-rot-{number:05d}" for number in range(count)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(pool.map(one, names))


def rotate(proxy_url: str, moto_url: str, count: int) -> dict[str, Any]:
    original = seed_rotation(moto_url, count)
    flags = {
        "rotate.store": "secretsmanager",
        "rotate.path": "soak/{user}",
        "rotate.verify_interval_seconds": 0.1,  # moto's keys work at once: no propagation
        "rotate.workers": 32,
        "rotate.rate": 200,
        "aws.workers": 32,
    }
    failures, runs, started = 0, 0, time.monotonic()
    done: dict[str, Outcome] = {}
    with patched_environ(aws_env(proxy_url)):
        settings = load_settings(flags=flags).settings
        service = build_rotation(settings)
        todo = list(original)
        for runs in range(1, MAX_RUNS + 1):
            action = service.rotate if runs == 1 else _resume_or_restart(service)
            outcomes = run_many(todo, action, workers=settings.rotate.worker_count())
            for outcome in outcomes:
                if outcome.ok:
                    done[outcome.user] = outcome
            failed = [o for o in outcomes if not o.ok]
            failures += len(failed)
            for outcome in failed[:3]:
                print(f"  rotate run {runs}: {outcome.user}: {outcome.message}", file=sys.stderr)
            todo = [o.user for o in failed]
            if not todo:
                break
    seconds = time.monotonic() - started
    problems = check_rotations(moto_url, original)
    return {
        "users": count,
        "runs": runs,
        "failures_resumed_by_next_run": failures,
        "rotated": len(done),
        "lost_keys": len(problems),
        "problems": problems[:10],
        "seconds": round(seconds, 1),
    }


def _resume_or_restart(service: Any) -> Any:
    """The next round: resume a half-done rotation; one that never began (it failed before
    its intent was written) or was aborted starts again."""

    def action(user: str) -> Outcome:
        outcome: Outcome | None = service.resume(user)
        return outcome if outcome is not None else service.rotate(user)

    return action


def check_rotations(moto_url: str, original: dict[str, str]) -> list[str]:
    """Every rotation invariant a consumer cares about, read from moto without faults."""
    iam, sm = moto_client("iam", moto_url), moto_client("secretsmanager", moto_url)

    def problem(user: str) -> str | None:
        keys = {
            k["AccessKeyId"]: k["Status"]
            for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        }
        stored = json.loads(
            sm.get_secret_value(SecretId=f"soak/{user}", VersionStage="AWSCURRENT")["SecretString"]
        )
        current = stored.get("AccessKeyId")
        if len(keys) > 2:
            return f"{user}: {len(keys)} keys"
        if current == original[user]:
            return f"{user}: not rotated"
        if keys.get(current) != "Active":
            return f"{user}: stored key {current} is {keys.get(current, 'gone')}"
        extra = [k for k, status in keys.items() if status == "Active" and k != current]
        if extra:
            return f"{user}: active key(s) {extra} whose secret is not current"
        arn = moto_client(
            "sts", moto_url, key_id=current, secret=stored["SecretAccessKey"]
        ).get_caller_identity()["Arn"]
        if not arn.endswith(f"/{user}"):
            return f"{user}: stored key authenticates as {arn}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [p for p in pool.map(problem, original) if p]


# -- leases ---------------------------------------------------------------------------------


def leases(proxy_url: str, moto_url: str, count: int) -> dict[str, Any]:
    from keyturn.domain.leases import Role

    iam = moto_client("iam", moto_url)
    iam.create_group(GroupName="soak")
    failures, started = 0, time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        env = {**aws_env(proxy_url), "XDG_STATE_HOME": state, "KEYTURN_LEASES_TIDY_MARGIN": "0s"}
        with patched_environ(env):
            service = build_leases(load_settings())
            service.write_role(Role.build("soak", credential_type="iam_user", iam_groups=["soak"]))
            for _ in range(count):
                try:
                    service.issue("soak")
                except KeyturnError as exc:
                    failures += 1
                    print(f"  issue failed: {exc}", file=sys.stderr)
            outcomes = service.revoke_prefix("aws/creds/soak")
            failures += sum(not o.ok for o in outcomes)
            for _ in range(MAX_RUNS):
                report = service.tidy()
                pending = [
                    x for x in service.list_leases("aws/creds/soak") if x.state.value != "REVOKED"
                ]
                if report.ok and not pending:
                    break
                service.revoke_prefix("aws/creds/soak")
            left = [x for x in service.list_leases("aws/creds/soak") if x.state.value != "REVOKED"]
    paginator = iam.get_paginator("list_users")
    users_left = [
        u["UserName"]
        for page in paginator.paginate()
        for u in page["Users"]
        if u["UserName"].startswith("keyturn")
    ]
    return {
        "leases": count,
        "issue_or_revoke_failures": failures,
        "lost": len(left) + len(users_left),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(users: int, rotations: int, count: int) -> dict[str, Any]:
    started = datetime.now(UTC)
    with MotoServerProcess() as moto, FaultProxy(moto.url, PLAN, seed=1) as proxy:
        result: dict[str, Any] = {
            "command": "python -m bench.soak " + " ".join(map(str, (users, rotations, count))),
            "started_at": started.isoformat(timespec="seconds"),
            "faults": {
                "throttle": PLAN.throttle,
                "server_error": PLAN.server_error,
                "rate_limits": PLAN.rate_limits,
            },
        }
        print(f"enforce over {users:,} users ...", file=sys.stderr)
        result["enforce"] = enforce(proxy.url, moto.url, users)
        print(f"rotate {rotations:,} users ...", file=sys.stderr)
        result["rotate"] = rotate(proxy.url, moto.url, rotations)
        print(f"{count:,} leases ...", file=sys.stderr)
        result["leases"] = leases(proxy.url, moto.url, count)
        result["injected"] = dict(proxy.counts)
    result["lost_total"] = (
        sum(result[part]["lost_keys"] for part in ("enforce", "rotate")) + result["leases"]["lost"]
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    given = [int(x) for x in sys.argv[1:4]]
    sizes = given + list(DEFAULTS[len(given) :])
    outcome = main(*sizes)
    print(json.dumps(outcome, indent=2))
    sys.exit(1 if outcome["lost_total"] else 0)
