"""Leases: issue and revoke 1,000 iam_user leases, beside a bare boto3 loop.

Issue 8, item 4. Reports AWS API calls per issue and per revoke (counted by a botocore
hook on each side's own client, retries included), checks that the bare loop makes exactly
the same IAM calls (no lease store, no claims, no validation), and keyturn's overhead over
it. Both run one lease after the other, in-process, against the same moto_server, so the
difference is keyturn's own work: the SQLite lease store, compare-and-swap claims, tags.

Then both again through the latency model (issue 19; bench_rotate's model: FaultProxy, 60
ms a call, IAM 20 requests/s), MODEL_LEASES leases each, keyturn's clients paced as the CLI
paces them (keyturn.adapters.pacing, `pacing.iam` at the model's rate). One lease after
another, so the bound is the calls' round trips: max(calls x 60 ms, IAM calls / 20).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bench.common import Row, median, moto_client, reset_moto
from keyturn.adapters.clock import SystemClock
from keyturn.adapters.lease_iam import IamLeaseAdmin
from keyturn.adapters.lease_sqlite import SqliteLeaseStore
from keyturn.adapters.lease_sts import StsLeaseIssuer
from keyturn.adapters.pacing import Pacer
from keyturn.domain.leases import Role
from keyturn.sandbox.faults import FaultPlan, FaultProxy
from keyturn.services.leases import LeaseEngineSettings, LeaseService

DEFAULT_LEASES = 1_000
MODEL_LEASES = 20
LATENCY_S = 0.06  # bench_rotate's and bench_enforce_model's model
IAM_RATE = 20.0
GOAL_RATIO = 1.15
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


def _counted(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


Measured = tuple[float, float, Counter[str], Counter[str]]


def _keyturn(url: str, leases: int, arn: str, pacer: Pacer | None = None) -> Measured:
    iam, sts = moto_client("iam", url), moto_client("sts", url)
    if pacer is not None:
        pacer.attach(iam)
        pacer.attach(sts)
    calls = _counted(iam)
    with tempfile.TemporaryDirectory() as tmp:
        service = LeaseService(
            SqliteLeaseStore(Path(tmp) / "leases.db"),
            IamLeaseAdmin(iam),
            StsLeaseIssuer(sts),
            SystemClock(),
            LeaseEngineSettings(),
        )
        service.write_role(Role.build("bench", credential_type="iam_user", policy_arns=[arn]))
        service.store_id()
        start = time.perf_counter()
        ids = [
            service.issue("bench", timedelta(hours=1), "bench").lease.lease_id
            for _ in range(leases)
        ]
        issued = time.perf_counter()
        issue_calls = Counter(calls)
        calls.clear()
        for lease_id in ids:
            service.revoke(lease_id)
        done = time.perf_counter()
    return issued - start, done - issued, issue_calls, Counter(calls)


def _bare(url: str, leases: int, arn: str, pacer: Pacer | None = None) -> Measured:
    """The same IAM calls as keyturn, from a plain loop: no lease store, claims or checks."""
    iam = moto_client("iam", url)
    calls = _counted(iam)
    start = time.perf_counter()
    names = []
    for i in range(leases):
        name = f"keyturn-bare-{i}"
        iam.create_user(
            UserName=name,
            Path="/",
            Tags=[
                {"Key": "keyturn:lease-id", "Value": f"aws/creds/bench/{i}"},
                {"Key": "keyturn:role", "Value": "bench"},
                {"Key": "keyturn:store", "Value": "bare"},
            ],
        )
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        iam.create_access_key(UserName=name)
        names.append(name)
    issued = time.perf_counter()
    issue_calls = Counter(calls)
    calls.clear()
    for name in names:
        for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
        iam.list_user_policies(UserName=name)
        iam.list_groups_for_user(UserName=name)
        with contextlib.suppress(ClientError):
            iam.delete_login_profile(UserName=name)
        iam.list_mfa_devices(UserName=name)
        iam.list_ssh_public_keys(UserName=name)
        iam.list_signing_certificates(UserName=name)
        iam.delete_user(UserName=name)
    done = time.perf_counter()
    return issued - start, done - issued, issue_calls, Counter(calls)


TOOLS = {"bare": _bare, "keyturn": _keyturn}


def run(moto_url: str, runs: int, users: int | None = None) -> dict[str, Any]:
    """`users` (the bench's --users) is the number of leases, issued then revoked, per run.

    The two tools alternate within each run (which goes first alternates too), and the
    overhead is the median of the per-run ratios: a neighbour's load that slows one run
    slows both sides of its ratio, which a ratio of two medians would not cancel.
    """
    leases = users or DEFAULT_LEASES
    raw: list[dict[str, Any]] = []
    for index in range(max(1, runs)):
        measured: dict[str, Any] = {}
        order = ["bare", "keyturn"] if index % 2 == 0 else ["keyturn", "bare"]
        for tool in order:
            reset_moto(moto_url)
            policy = moto_client("iam", moto_url).create_policy(
                PolicyName="bench", PolicyDocument=POLICY
            )
            issue_s, revoke_s, issue_calls, revoke_calls = TOOLS[tool](
                moto_url, leases, policy["Policy"]["Arn"]
            )
            measured[tool] = {
                "issue_s": round(issue_s, 3),
                "revoke_s": round(revoke_s, 3),
                "issue_calls": dict(sorted(issue_calls.items())),
                "revoke_calls": dict(sorted(revoke_calls.items())),
            }
        raw.append({"order": order, **measured})
    result = summarize(leases, raw)
    modelled = [_modelled(moto_url, index) for index in range(max(1, runs))]
    result["rows"] += model_rows(modelled)
    result["medians"]["model"] = {
        tool: {key: median([m[tool][key] for m in modelled]) for key in ("wall_s", "ratio")}
        for tool in TOOLS
    }
    result["medians"]["model_leases"] = MODEL_LEASES
    result["raw_model"] = modelled
    return result


def _modelled(moto_url: str, index: int) -> dict[str, Any]:
    """One run of both tools through the latency model (which goes first alternates)."""
    measured: dict[str, Any] = {}
    order = ["bare", "keyturn"] if index % 2 == 0 else ["keyturn", "bare"]
    for tool in order:
        reset_moto(moto_url)
        arn = moto_client("iam", moto_url).create_policy(PolicyName="bench", PolicyDocument=POLICY)[
            "Policy"
        ]["Arn"]
        plan = FaultPlan(latency=LATENCY_S, rate_limits={"iam": IAM_RATE})
        pacer = Pacer({"iam": IAM_RATE, "sts": 50.0}) if tool == "keyturn" else None
        with FaultProxy(moto_url, plan) as proxy:
            issue_s, revoke_s, _, _ = TOOLS[tool](proxy.url, MODEL_LEASES, arn, pacer)
            calls = sum(n for op, n in proxy.calls.items() if op != "unsigned:?")
            iam_calls = sum(n for op, n in proxy.calls.items() if op.startswith("iam:"))
            throttled = sum(n for k, n in proxy.counts.items() if k.startswith("throttled"))
        wall = issue_s + revoke_s
        bound = max(calls * LATENCY_S, iam_calls / IAM_RATE)
        measured[tool] = {
            "wall_s": round(wall, 2),
            "calls": calls,
            "bound_s": round(bound, 2),
            "ratio": round(wall / bound, 3),
            "throttled": throttled,
        }
    return {"order": order, **measured}


def model_rows(modelled: list[dict[str, Any]]) -> list[Row]:
    ours = {key: median([m["keyturn"][key] for m in modelled]) for key in ("wall_s", "ratio")}
    bare = {key: median([m["bare"][key] for m in modelled]) for key in ("wall_s", "ratio")}
    last = modelled[-1]
    return [
        Row(
            metric=f"{MODEL_LEASES} leases issued + revoked, latency model "
            f"({LATENCY_S * 1000:.0f} ms, IAM {IAM_RATE:g}/s)",
            value=f"{ours['wall_s']:.1f} s",
            target=f"<= {GOAL_RATIO}x bound",
            ok=ours["ratio"] <= GOAL_RATIO,
            note=f"bound {last['keyturn']['bound_s']:.1f} s ({last['keyturn']['calls']} calls "
            f"one after another x {LATENCY_S * 1000:.0f} ms): {ours['ratio']:.2f}x; bare "
            f"boto3 loop {bare['wall_s']:.1f} s ({bare['ratio']:.2f}x); throttled "
            f"{last['keyturn']['throttled']}",
        )
    ]


def summarize(leases: int, raw: list[dict[str, Any]]) -> dict[str, Any]:
    def total(run: dict[str, Any], tool: str) -> float:
        return float(run[tool]["issue_s"] + run[tool]["revoke_s"])

    overhead = median([total(r, "keyturn") / total(r, "bare") - 1 for r in raw]) * 100
    by_phase = {
        phase: median([r["keyturn"][f"{phase}_s"] / r["bare"][f"{phase}_s"] - 1 for r in raw]) * 100
        for phase in ("issue", "revoke")
    }
    spread = sorted(total(r, "keyturn") / total(r, "bare") - 1 for r in raw)
    per = {
        tool: {
            phase: median([r[tool][f"{phase}_s"] for r in raw]) / leases * 1000
            for phase in ("issue", "revoke")
        }
        for tool in TOOLS
    }
    last = raw[-1]
    calls = {
        tool: {
            phase: sum(last[tool][f"{phase}_calls"].values()) / leases
            for phase in ("issue", "revoke")
        }
        for tool in TOOLS
    }
    same_calls = all(
        last["keyturn"][f"{phase}_calls"] == last["bare"][f"{phase}_calls"]
        for phase in ("issue", "revoke")
    )

    def ops(phase: str) -> str:
        return ", ".join(
            f"{op} {n / leases:g}" for op, n in last["keyturn"][f"{phase}_calls"].items()
        )

    rows: list[Row] = [
        Row(
            metric="AWS calls per issue (iam_user)",
            value=f"{calls['keyturn']['issue']:g}",
            note=ops("issue"),
        ),
        Row(
            metric="AWS calls per revoke",
            value=f"{calls['keyturn']['revoke']:g}",
            note=ops("revoke")[:150],
        ),
        Row(
            metric="same calls as the bare loop",
            value="yes" if same_calls else "NO",
            ok=same_calls,
            note=f"bare loop: {calls['bare']['issue']:g} per issue, "
            f"{calls['bare']['revoke']:g} per revoke",
        ),
        Row(
            metric="issue, per lease",
            value=f"{per['keyturn']['issue']:.1f} ms",
            note=f"bare boto3 loop {per['bare']['issue']:.1f} ms; keyturn's overhead on "
            f"issue alone {by_phase['issue']:+.1f}% (median of per-run ratios)",
        ),
        Row(
            metric="revoke, per lease",
            value=f"{per['keyturn']['revoke']:.1f} ms",
            note=f"bare boto3 loop {per['bare']['revoke']:.1f} ms; keyturn's overhead on "
            f"revoke alone {by_phase['revoke']:+.1f}%",
        ),
        Row(
            metric=f"keyturn's overhead, {leases:,} leases issued + revoked",
            value=f"{overhead:+.1f}%",
            target="<= 10%",
            ok=overhead <= 10,
            note=f"median of per-run ratios (runs: "
            f"{', '.join(f'{100 * x:+.1f}%' for x in spread)}); lease store, claims, checks",
        ),
    ]
    return {
        "ok": same_calls,
        "rows": rows,
        "medians": {
            "leases": leases,
            "overhead_percent": round(overhead, 1),
            "overhead_percent_by_phase": {k: round(v, 1) for k, v in by_phase.items()},
            "overhead_percent_runs": [round(100 * x, 1) for x in spread],
            "ms_per_lease": {t: {p: round(v, 2) for p, v in d.items()} for t, d in per.items()},
            "calls_per_lease": calls["keyturn"],
        },
        "raw": raw,
    }


if __name__ == "__main__":
    import sys

    print(
        json.dumps(
            run(sys.argv[1], 3, int(sys.argv[2]) if len(sys.argv) > 2 else None),
            default=str,
            indent=2,
        )
    )
