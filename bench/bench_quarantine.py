"""The exposed-key response (issue 15) under the rotation bench's latency model: how soon
after the handler starts is the key deactivated, and how soon do its consumers have a
verified replacement?

The model is bench_rotate's (keyturn.sandbox.faults.FaultProxy in front of moto_server):
every AWS call LATENCY_S (60 ms) slower, IAM at IAM_RATE (20) requests a second, a new key
refused for PROPAGATION_S (10 s) after its CreateAccessKey. CloudTrail LookupEvents comes
from the sandbox responder (`trail.cloudtrail_endpoint_url`), at the same 60 ms and AWS's
2 requests a second per region, holding EVENTS events of the key in one region.

One user, enrolled, whose Secrets Manager secret serves the exposed key, plus an inactive
older key (the rotation retires it to make room, as a real two-key user would need). The
exposed-key Lambda's handler runs in-process on AWS's sample event; keyturn's checkpoint hook
stamps each step (keyturn.wiring.rotation_checkpoint, the crash tests' hook, replaced here by
a timeline). Measured from the handler's start:

- key deactivated: the `quarantine_deactivated` mark (UpdateAccessKey is the call before
  it): target <= 2 s;
- replacement verified: the rotation's `verify` (the new key's GetCallerIdentity streak
  passed): target <= PROPAGATION_S + 2 s; then promoted (`promote`: consumers read it).

Rotation verification runs at keyturn's defaults (rotate.verify_successes 5, about a second
apart), as an operator's deployment would: the streak is a safety choice (a key that has
propagated to one STS host but not others is not yet safe to serve) and it is what the
target's 2 s of margin must hold. `python -m bench --only quarantine --runs 3`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from unittest import mock

from bench.bench_rotate import IAM_RATE, LATENCY_S, PROPAGATION_S, model
from bench.common import (
    Row,
    aws_env,
    median,
    moto_client,
    patched_environ,
    reset_moto,
    seed_iam,
    seed_secrets,
)
from keyturn.sandbox.cloudtrail import CloudTrailResponder, generate_events

USER = "bench-exposed"
PATH = "bench/{user}"
EVENTS = 500
SENDER, SECURITY = "keys@example.com", "security@example.com"
DEACTIVATE_TARGET_S = 2.0
VERIFY_MARGIN_S = 2.0
# AWS's documented Health sample event (tests/fixtures/health_credentials_exposed.json).
EVENT: dict[str, Any] = {
    "version": "0",
    "id": "121345678-1234-1234-1234-123456789012",
    "detail-type": "AWS Health Event",
    "source": "aws.health",
    "time": "2016-06-05T06:27:57Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "eventArn": "arn:aws:health:us-east-1::event/AWS_RISK_CREDENTIALS_EXPOSED_XXXXXXXX",
        "service": "RISK",
        "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
        "eventTypeCategory": "issue",
        "affectedEntities": [],
    },
}


class Timeline:
    """When each checkpoint was passed, seconds after `started`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.at: dict[str, float] = {}

    def __call__(self, step: str, subject: str) -> None:
        with self.lock:
            self.at.setdefault(step, time.perf_counter() - self.started)


def seed(moto_url: str) -> tuple[str, str]:
    """The user with its inactive old key and its served key; (key id, account)."""
    reset_moto(moto_url)
    [user] = seed_iam(
        moto_url,
        [{"name": USER, "keys": [{"age_days": 60}, {"age_days": 200, "active": False}]}],
        with_secrets=True,
    )
    document = {"UserName": USER, "AccessKeyId": user["keys"][0],
                "SecretAccessKey": user["secrets"][0]}  # fmt: skip
    seed_secrets(moto_url, [{"name": PATH.format(user=USER), "value": json.dumps(document)}])
    ses = moto_client("ses", moto_url)
    for address in (SENDER, SECURITY):
        ses.verify_email_identity(EmailAddress=address)
    return str(user["keys"][0]), str(user.get("account", "123456789012"))


def one_run(moto_url: str) -> dict[str, Any]:
    from tests.rotate_fixtures import enroll_users

    from keyturn.handlers.exposed_key import handler
    from keyturn.sandbox.faults import FaultProxy

    key_id, _ = seed(moto_url)
    history = generate_events(
        key_id, EVENTS, ["us-east-1"], user=USER, end=datetime.now(UTC) - timedelta(minutes=2),
        span=timedelta(hours=3),
    )  # fmt: skip
    plan = model(LATENCY_S, PROPAGATION_S, IAM_RATE)
    timeline = Timeline()
    with ExitStack() as stack:
        state = stack.enter_context(TemporaryDirectory(prefix="bench-quarantine-"))
        proxy = stack.enter_context(FaultProxy(moto_url, plan))
        trail = stack.enter_context(CloudTrailResponder(history, throttle=True, latency=LATENCY_S))
        env = {
            **aws_env(proxy.url),
            "XDG_STATE_HOME": state,
            "KEYTURN_ROTATE_STORE": "secretsmanager",
            "KEYTURN_ROTATE_PATH": PATH,
            "KEYTURN_ROTATE_RATE": str(IAM_RATE),
            "POWERTOOLS_LOG_LEVEL": "WARNING",  # the handler's per-key log line
            "SOURCEMAIL": SENDER,
            "KEYTURN_QUARANTINE_SECURITY_CONTACT": SECURITY,
            "KEYTURN_QUARANTINE_RECORD_LOCATION": str(Path(state) / "incidents"),
            "KEYTURN_TRAIL_CLOUDTRAIL_ENDPOINT_URL": trail.url,
            "KEYTURN_TRAIL_REGIONS": "us-east-1",
        }
        stack.enter_context(patched_environ(env))
        enroll_users(USER, environ={**os.environ, **env})
        stack.enter_context(mock.patch("keyturn.wiring.rotation_checkpoint", return_value=timeline))
        event = json.loads(json.dumps(EVENT))
        event["account"] = _account(proxy.url)
        event["detail"]["affectedEntities"] = [{"entityValue": key_id}]
        timeline.started = time.perf_counter()
        result = handler(event, None)
        wall = time.perf_counter() - timeline.started
        calls = dict(sorted(proxy.calls.items()))
    [row] = result["results"]
    at = timeline.at
    return {
        "ok": bool(row["ok"] and row["rotation"] == "rotated"),
        "deactivated_s": round(at.get("quarantine_deactivated", float("nan")), 2),
        "created_s": round(at.get("create", float("nan")), 2),
        "verified_s": round(at.get("verify", float("nan")), 2),
        "promoted_s": round(at.get("promote", float("nan")), 2),
        "recorded_s": round(at.get("quarantine_recorded", float("nan")), 2),
        "wall_s": round(wall, 2),
        "calls": calls,
        "warnings": row["warnings"][:3],
    }


def _account(url: str) -> str:
    return str(moto_client("sts", url).get_caller_identity()["Account"])


def run(moto_url: str, runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    results = [one_run(moto_url) for _ in range(runs)]
    deactivated = median([r["deactivated_s"] for r in results])
    verified = median([r["verified_s"] for r in results])
    promoted = median([r["promoted_s"] for r in results])
    created = median([r["created_s"] for r in results])
    recorded = median([r["recorded_s"] for r in results])
    verify_target = PROPAGATION_S + VERIFY_MARGIN_S
    every = all(r["ok"] for r in results)
    model_note = (
        f"model: {LATENCY_S * 1000:.0f} ms a call, IAM {IAM_RATE:g}/s, "
        f"propagation {PROPAGATION_S:g} s"
    )
    rows = [
        Row(
            metric="exposed key: handler start -> key deactivated",
            value=f"{deactivated:.2f} s",
            target=f"<= {DEACTIVATE_TARGET_S:g} s",
            ok=deactivated <= DEACTIVATE_TARGET_S,
            note=model_note + "; runs " + ", ".join(f"{r['deactivated_s']:.2f}" for r in results),
        ),
        Row(
            metric="... -> replacement verified (consumers' new key authenticates)",
            value=f"{verified:.1f} s",
            target=f"<= {verify_target:g} s",
            ok=verified <= verify_target,
            note=f"created at {created:.1f} s, then {PROPAGATION_S:g} s propagation and 5 "
            f"consecutive GetCallerIdentity successes; promoted at {promoted:.1f} s; runs "
            + ", ".join(f"{r['verified_s']:.1f}" for r in results),
        ),
        Row(
            metric="... -> incident recorded (CloudTrail summary and mail included)",
            value=f"{recorded:.1f} s",
            note=f"{EVENTS} events in one region at 2 LookupEvents a second",
        ),
        Row(
            metric="... contained and rotated in every run",
            value="yes" if every else "no",
            target="yes",
            ok=every,
            note="; ".join(w for r in results for w in r["warnings"])[:200],
        ),
    ]
    return {
        "rows": rows,
        "medians": {
            "deactivated_s": deactivated,
            "verified_s": verified,
            "promoted_s": promoted,
            "recorded_s": recorded,
            "verify_target_s": verify_target,
        },
        "params": {
            "latency_s": LATENCY_S,
            "propagation_s": PROPAGATION_S,
            "iam_rate": IAM_RATE,
            "events": EVENTS,
        },
        "raw": results,
        "ok": every and deactivated <= DEACTIVATE_TARGET_S and verified <= verify_target,
        "seconds": round(time.perf_counter() - started, 1),
    }
