"""`make soak`: keyturn at volume against a separate moto_server, with throttling injected.

- enforce: USERS users with one key each; keyturn runs with a clock 40 days ahead (a
  separate moto_server cannot backdate keys), notices off and deactivate-without-notice on,
  so every key is due. Runs are repeated until one finishes (as the daily schedule would);
  then every key must be Inactive with its `deactivated` mark: a key in any other state is
  "lost" (target 0).
- leases: LEASES leases issued, then revoked by prefix, then tidy; any keyturn user left,
  or any lease not REVOKED, is lost.

Throttling (and a few 503s) come from keyturn.sandbox.faults.FaultProxy in front of moto.
Sizes: `python -m bench.soak USERS LEASES`; `make soak` runs SOAK_USERS=1000 SOAK_LEASES=100
by default. The issue's 10,000 users take over an hour on 2 cores (adaptive backoff after
each throttle dominates): `make soak SOAK_USERS=10000`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bench.common import aws_env, patched_environ
from bench.server import MotoServerProcess
from keyturn.config import load_settings
from keyturn.domain.enforcement import state_tag
from keyturn.domain.errors import KeyturnError
from keyturn.sandbox.faults import FaultPlan, FaultProxy
from keyturn.services.enforce import ListSink, resolve_config
from keyturn.wiring import build_enforce, build_leases

PLAN = FaultPlan(throttle=0.05, server_error=0.01)
MAX_RUNS = 5


class Ahead:
    def __init__(self, days: int) -> None:
        self._delta = timedelta(days=days)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._delta


def _iam(moto_url: str) -> Any:
    """A client straight to moto (no faults), for seeding and checking."""
    return boto3.client(
        "iam",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAKEYTURNSANDBOX00",
        aws_secret_access_key="keyturn-sandbox-not-a-secret",  # noqa: S106 - moto takes any
    )


def seed(moto_url: str, users: int) -> dict[str, str]:
    iam = _iam(moto_url)
    keys = {}
    for number in range(users):
        name = f"soak-{number:05d}"
        iam.create_user(UserName=name)
        keys[name] = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    return keys


def enforce(proxy_url: str, moto_url: str, users: int) -> dict[str, Any]:
    keys = seed(moto_url, users)
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
            service = build_enforce(settings, config, ListSink(), clock=Ahead(40))
            try:
                outcome = service.apply(service.plan())
            except KeyturnError as exc:
                failures += 1
                print(f"  enforce run {runs} failed: {exc}", file=sys.stderr)
                continue
            failures += len(outcome.failures)
            if not outcome.failures:
                break
    seconds = time.monotonic() - started
    iam = _iam(moto_url)
    lost = 0
    for user, key_id in keys.items():
        listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}
        ok = [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key_id, "Inactive")]
        lost += not (ok and "deactivated@" in tags.get(state_tag(key_id), ""))
    return {
        "users": users,
        "runs": runs,
        "step_failures_retried": failures,
        "lost_keys": lost,
        "seconds": round(seconds, 1),
    }


def leases(proxy_url: str, moto_url: str, count: int) -> dict[str, Any]:
    iam = _iam(moto_url)
    iam.create_group(GroupName="soak")
    failures, started = 0, time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        env = {**aws_env(proxy_url), "XDG_STATE_HOME": state, "KEYTURN_LEASES_TIDY_MARGIN": "0s"}
        with patched_environ(env):
            service = build_leases(load_settings())
            from keyturn.domain.leases import Role

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
                    x
                    for x in service.list_leases("aws/creds/soak")
                    if x.state.value not in ("REVOKED",)
                ]
                if report.ok and not pending:
                    break
                service.revoke_prefix("aws/creds/soak")
            left = [x for x in service.list_leases("aws/creds/soak") if x.state.value != "REVOKED"]
    users_left = [u for u in iam.list_users()["Users"] if u["UserName"].startswith("keyturn")]
    return {
        "leases": count,
        "issue_or_revoke_failures": failures,
        "lost": len(left) + len(users_left),
        "seconds": round(time.monotonic() - started, 1),
    }


def main(users: int, count: int) -> dict[str, Any]:
    with MotoServerProcess() as moto, FaultProxy(moto.url, PLAN, seed=1) as proxy:
        result = {"faults": {"throttle": PLAN.throttle, "server_error": PLAN.server_error}}
        result["enforce"] = enforce(proxy.url, moto.url, users)
        result["leases"] = leases(proxy.url, moto.url, count)
        result["injected"] = dict(proxy.counts)
    return result


if __name__ == "__main__":
    sizes = [int(x) for x in sys.argv[1:3]] + [10000, 200][len(sys.argv[1:3]) :]
    print(json.dumps(main(sizes[0], sizes[1]), indent=2))
