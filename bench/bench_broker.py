"""The lease broker (`keyturn broker serve`) under the rotation bench's latency model.

Issue 14's broker figures. `keyturn broker serve` runs as its own process, with the
issuer's credentials, its AWS endpoint pointed at keyturn.sandbox.faults.FaultProxy in front
of moto_server (bench/bench_rotate.py's model: every AWS call 60 ms more, IAM 20 requests/s
with a one-second bucket and Throttling beyond, a new key refused for 10 s after
CreateAccessKey). The broker's `pacing.iam` is set to the model's rate, as the rotation
bench sets `rotate.rate`. The requester is an IAM user of its own whose process holds only
its key; it talks to the broker with keyturn's BrokerClient (a signed GetCallerIdentity per
request, which the broker executes at STS through the same proxy).

(a) `iam_user`: LEASES leases requested at once (one client thread each), every one
returned only once its key has authenticated `leases.ready_successes` (5) times in a row,
the default. Reported: wall time from the first request to the last answer, against the
model's bound `IAM calls / IAM rate + propagation`: the IAM calls (counted by the proxy,
refused ones included) cannot go faster than the rate, and the last key created needs its
propagation window before it works; concurrent requests share one window instead of
paying one each. Not in the bound: the verification streak (5 successes about a second
apart, a safety choice) and the STS calls. Then each returned key is used once, at once,
through the proxy: none may be refused.

(b) `assumed_role`: the sustained rate of STS-type issues, STS_REQUESTS requests from
STS_CLIENTS concurrent client threads. "Cached" in the issue's sense is not served by the
broker: it keeps no server-side credential cache, so every request is a new AssumeRole and
a new lease (docs/broker.md says why: a credential handed to two requests is a secret two
holders share, which one revoke cannot take back from only one of them and the audit log
cannot tell apart). Caching lives on the client, per user (the credential_process cache,
measured by bench_startup.py). Each issue is two AWS calls (the proof's GetCallerIdentity
and AssumeRole), each 60 ms in the model; the broker's `pacing.sts` (default 50/s) applies.

The per-caller limit (`broker.caller_rate_per_minute`, default 30/min) would refuse one
caller's 100 requests at once, as designed; the bench raises it, since what is measured is
the broker's throughput, not its throttling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from bench.bench_rotate import IAM_RATE, LATENCY_S, PROPAGATION_S, model
from bench.common import REGION, Row, aws_env, median, moto_client, reset_moto
from keyturn.adapters.broker_client import BrokerClient
from keyturn.sandbox.faults import FaultProxy
from keyturn.services.leases import IssuedCredential

BROKER = (sys.executable, "-c", "from keyturn.cli.main import run; run()", "broker", "serve")
LEASES = 100
UNPACED_STS = 1000.0  # pacing.sts for the second STS measurement: the broker's own ceiling
STS_REQUESTS = 300
STS_CLIENTS = 16
GOAL_RATIO = 1.5
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def _config(requester_arn: str, role_arn: str) -> str:
    return f"""
[broker]
caller_rate_per_minute = 6000
caller_burst = 1000

[pacing]
iam = {IAM_RATE}

[leases.roles.dev]
credential_type = "iam_user"
policy_document = '{POLICY}'
allowed_principals = ["{requester_arn}"]

[leases.roles.deploy]
credential_type = "assumed_role"
role_arns = ["{role_arn}"]
allowed_principals = ["{requester_arn}"]
"""


class Broker:
    """`keyturn broker serve --port 0` as a process; `.url` once it listens."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [*BROKER, "--port", "0", "--events", os.devnull],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if "listening on" not in first:
            self.close()
            raise RuntimeError(f"broker did not start: {first!r}")
        self.url = first.split("listening on ")[1].split()[0]

    def close(self) -> str:
        self._process.terminate()
        try:
            _, err = self._process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        return err[-2000:]


def _timed_issues(
    make_client: Callable[[], BrokerClient], role: str, count: int, clients: int
) -> tuple[float, list[float], list[IssuedCredential], list[str]]:
    """`count` issues from `clients` threads (each with its own BrokerClient)."""
    local = threading.local()
    latencies: list[float] = []
    issued: list[IssuedCredential] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client()
        began = time.perf_counter()
        try:
            credential = client.issue(role)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            issued.append(credential)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - start, latencies, issued, errors


def _watch_created(proxy: FaultProxy) -> list[float]:
    """When each CreateAccessKey answer passed the proxy (the profile's one probe)."""
    seen: list[float] = []
    original = proxy._created

    def created(answer: bytes) -> None:
        seen.append(time.perf_counter())
        original(answer)

    proxy._created = created  # type: ignore[method-assign]
    return seen


def _refused_at_once(url: str, issued: list[IssuedCredential]) -> int:
    """How many of the returned credentials STS refuses on their first use."""
    refused = 0
    for credential in issued:
        sts = _client_for(url, credential)
        try:
            sts.get_caller_identity()
        except ClientError:
            refused += 1
    return refused


def _client_for(url: str, credential: IssuedCredential) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sts",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=credential.access_key_id,
        aws_secret_access_key=credential.secret_access_key,
        aws_session_token=credential.session_token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def run(moto_url: str, runs: int, users: int | None = None) -> dict[str, Any]:
    """`users` (the bench's --users) overrides the number of iam_user leases. One run of
    each part whatever `runs` says: part (a) alone is ~30 s of the model's floor."""
    leases = users or LEASES
    reset_moto(moto_url)
    iam = moto_client("iam", moto_url)
    iam.create_user(UserName="requester")
    key = iam.create_access_key(UserName="requester")["AccessKey"]
    requester_arn = iam.get_user(UserName="requester")["User"]["Arn"]
    role_arn = iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    requester = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    with (
        tempfile.TemporaryDirectory() as tmp,
        FaultProxy(moto_url, model(LATENCY_S, PROPAGATION_S, IAM_RATE)) as proxy,
    ):
        config = Path(tmp) / "broker.toml"
        config.write_text(_config(requester_arn, role_arn), encoding="utf-8")
        env = {
            **aws_env(proxy.url),
            "KEYTURN_CONFIG": str(config),
            "XDG_STATE_HOME": f"{tmp}/state",
        }
        broker = Broker(env)
        stderr = ""
        try:

            def make_client() -> BrokerClient:
                return BrokerClient(broker.url, requester, sts_url=proxy.url, region=REGION)

            proxy.calls.clear()
            proxy.counts.clear()
            created = _watch_created(proxy)
            began = time.perf_counter()
            wall, latencies, issued, errors = _timed_issues(make_client, "dev", leases, leases)
            last_created = max(created, default=began + float("nan")) - began
            calls = dict(sorted(proxy.calls.items()))
            counts = dict(proxy.counts)
            refused = _refused_at_once(proxy.url, issued)
            proxy.calls.clear()
            sts_wall, sts_latencies, sts_issued, sts_errors = _timed_issues(
                make_client, "deploy", STS_REQUESTS, STS_CLIENTS
            )
            sts_calls = dict(sorted(proxy.calls.items()))
        finally:
            stderr = broker.close()
        broker = Broker({**env, "KEYTURN_PACING_STS": str(UNPACED_STS)})
        try:
            unpaced_wall, _, unpaced_issued, unpaced_errors = _timed_issues(
                make_client, "deploy", STS_REQUESTS, STS_CLIENTS
            )
        finally:
            stderr += broker.close()
    iam_calls = sum(n for op, n in calls.items() if op.startswith("iam:"))
    bound = iam_calls / IAM_RATE + PROPAGATION_S
    ratio = wall / bound
    rate = len(sts_issued) / sts_wall
    per_request = median(sts_latencies)
    unpaced_rate = len(unpaced_issued) / unpaced_wall
    user = {
        "leases": leases,
        "wall_s": round(wall, 2),
        "bound_s": round(bound, 2),
        "ratio": round(ratio, 3),
        "iam_calls": iam_calls,
        "last_key_created_s": round(last_created, 2),
        "latency_s": {
            "median": round(median(latencies), 2),
            "max": round(max(latencies, default=float("nan")), 2),
        },
        "refused_on_first_use": refused,
        "errors": errors[:5],
        "error_count": len(errors),
        "calls": calls,
        "proxy_counts": counts,
    }
    sts = {
        "requests": STS_REQUESTS,
        "clients": STS_CLIENTS,
        "wall_s": round(sts_wall, 2),
        "issues_per_s": round(rate, 1),
        "latency_median_s": round(per_request, 3),
        "errors": sts_errors[:5],
        "error_count": len(sts_errors),
        "calls": sts_calls,
        "issues_per_s_pacing_sts_raised": round(unpaced_rate, 1),
        "pacing_sts_raised_to": UNPACED_STS,
        "errors_pacing_sts_raised": len(unpaced_errors),
    }
    ok = (
        not errors
        and not sts_errors
        and not unpaced_errors
        and refused == 0
        and len(issued) == leases
    )
    rows: list[Row] = [
        Row(
            metric=f"{leases} iam_user leases at once, issued + verified ready",
            value=f"{wall:.1f} s (bound {bound:.1f} s: {ratio:.2f}x)",
            target=f"<= {GOAL_RATIO}x the bound",
            ok=ratio <= GOAL_RATIO,
            note=f"bound = {iam_calls} IAM calls / {IAM_RATE:g}/s + {PROPAGATION_S:g} s "
            f"propagation; per lease median {median(latencies):.1f} s, "
            f"max {max(latencies, default=float('nan')):.1f} s; last key created at "
            f"{last_created:.1f} s; throttled {counts.get('throttled iam', 0)}",
        ),
        Row(
            metric="returned iam_user keys refused on first use",
            value=f"{refused} of {len(issued)}",
            target="0",
            ok=refused == 0 and len(issued) == leases,
            note=f"errors: {len(errors)}" + (f" ({errors[0]})" if errors else ""),
        ),
        Row(
            metric=f"assumed_role issues through the broker, {STS_CLIENTS} clients",
            value=f"{rate:.1f} /s",
            note=f"{STS_REQUESTS} requests in {sts_wall:.1f} s, median {per_request * 1000:.0f} ms "
            f"each (2 AWS calls of {LATENCY_S * 1000:.0f} ms); no server-side cache: each is a "
            f"new AssumeRole; capped by the broker's pacing.sts (default 50/s); errors "
            f"{len(sts_errors)}",
        ),
        Row(
            metric=f"the same with pacing.sts = {UNPACED_STS:g}/s",
            value=f"{unpaced_rate:.1f} /s",
            note="the broker's own ceiling on this machine (proof check, AssumeRole, lease "
            f"store); errors {len(unpaced_errors)}",
        ),
    ]
    return {
        "ok": ok,
        "rows": rows,
        "params": {
            "latency_s": LATENCY_S,
            "propagation_s": PROPAGATION_S,
            "iam_rate": IAM_RATE,
            "ready_successes": 5,
        },
        "medians": {"iam_user": user, "assumed_role": sts},
        "broker_stderr_tail": stderr[-500:] if not ok else "",
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], 1), default=str, indent=2))
