"""Enforce "as on real AWS": keyturn and Cloud Custodian through the same latency model.

Issue 19. The model is bench_rotate's (keyturn.sandbox.faults.FaultProxy in front of
moto_server): every AWS call takes LATENCY_S (60 ms) more, IAM answers at most IAM_RATE (20)
requests a second and refuses the rest with `Throttling`. SES accepts what moto's production
quota says, 14 mails a second (`MaxSendRate`), which keyturn reads with GetSendQuota and paces
itself by; the proxy does not enforce it. Each measured run starts from a freshly seeded
account (bench_enforce's: one key a user, DUE_SHARE of them 40-400 days old).

Rows, per run:

- keyturn `enforce --apply`, deactivate without notice, notices off: the like-for-like peer
  of Custodian's `remove-keys` (disable). Bound: IAM calls / IAM_RATE.
- keyturn `enforce --apply`, deactivate without notice, owner told by mail: the same IAM
  work plus one mail and one notice mark a key. Bound: max(IAM calls / IAM_RATE,
  mails / MaxSendRate): IAM and SES limits are independent, so mail overlaps IAM.
- Custodian remove-keys through the same proxy (skipped with `custodian=False`, or where
  its virtualenv cannot be made).

What the bound includes: AWS's time only, the calls the limits allow, as no client could do
better. It leaves out the client's own time before its first call (the process start:
Python importing boto3 and the CLI, 1-2 s on the shared 2-core machine) and after its last
answer (printing the summary, exiting), which every row reports beside the ratio ("start",
"exit"), with the span of the calls themselves against the bound ("calls"): how well the
pacing fills the limit. The credential report is in the bound as its calls only: moto
answers STARTED then COMPLETE at once, where AWS takes seconds (minutes for large accounts)
to generate it, a wait no client can avoid and the model leaves out.

keyturn runs with `pacing.iam` = IAM_RATE (the model's limit: how to size it for a real
account is in docs/performance.md). Calls are counted by the proxy, refused ones included
(what AWS's limiter sees); "throttled" is the share the model refused. Goals (issue 19):
every keyturn row within GOAL_RATIO of its bound, throttled calls under GOAL_THROTTLED.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import c7n
from bench.bench_enforce import POLICY, SENDER, TIMEOUT_S, fresh_account, plan
from bench.common import Row, aws_env, key_status, median, run_process
from keyturn.sandbox.faults import FaultPlan, FaultProxy

DEFAULT_USERS = 1_000
LATENCY_S = 0.06
IAM_RATE = 20.0
SES_RATE = 14.0  # bench/moto_app.py's production quota
GOAL_RATIO = 1.15
GOAL_THROTTLED = 0.005

DEACTIVATE = "keyturn_deactivate"
WITH_MAIL = "keyturn_deactivate_and_mail"
CUSTODIAN = "custodian_remove_keys"


def model() -> FaultPlan:
    return FaultPlan(latency=LATENCY_S, rate_limits={"iam": IAM_RATE})


def _measured(
    proxy: FaultProxy, wall: float, moto_url: str, started: float, ended: float
) -> dict[str, Any]:
    """What the proxy saw; `started`/`ended`: time.monotonic() around the client's run."""
    calls = dict(sorted(proxy.calls.items()))
    first = proxy.first_call_at or started
    last = proxy.last_answer_at or ended
    iam = sum(n for op, n in calls.items() if op.startswith("iam:"))
    mails = calls.get("ses:SendEmail", 0)
    throttled = sum(n for kind, n in proxy.counts.items() if kind.startswith("throttled"))
    bound = max(iam / IAM_RATE, mails / SES_RATE)
    return {
        "wall_s": round(wall, 2),
        "calls": calls,
        "iam_calls": iam,
        "mails": mails,
        "throttled": throttled,
        "throttled_share": round(throttled / max(1, sum(calls.values())), 4),
        "bound_s": round(bound, 2),
        "ratio": round(wall / bound, 3) if bound else None,
        "start_s": round(first - started, 2),
        "exit_s": round(ended - last, 2),
        "calls_ratio": round((last - first) / bound, 3) if bound else None,
        "deactivated": key_status(moto_url).get("Inactive", 0),
    }


def keyturn(moto_url: str, workdir: str, *, mail: bool) -> dict[str, Any]:
    with FaultProxy(moto_url, model()) as proxy:
        env = aws_env(proxy.url)
        env["SOURCEMAIL"] = SENDER
        env["KEYTURN_PACING_IAM"] = str(IAM_RATE)
        env["KEYTURN_ENFORCE_DEACTIVATE_WITHOUT_NOTICE"] = "true"
        if not mail:
            env["KEYTURN_ENFORCE_NOTIFY"] = "false"
        command = [str(Path(sys.executable).parent / "keyturn"), "enforce", "--apply", "--json"]
        started = time.monotonic()
        completed, wall, _ = run_process(command, env, workdir, TIMEOUT_S)
        ended = time.monotonic()
        if completed.returncode != 0:
            raise RuntimeError(
                f"keyturn enforce exited {completed.returncode}: "
                f"{completed.stderr.decode('utf-8', 'replace')[-2000:]}"
            )
        failures = json.loads(completed.stdout)["failures"]
        measured = _measured(proxy, wall, moto_url, started, ended)
        return {**measured, "failures": failures[:3]}


def custodian(moto_url: str) -> dict[str, Any]:
    with FaultProxy(moto_url, model()) as proxy:
        started = time.monotonic()
        result = c7n.run_policy(proxy.url, POLICY, TIMEOUT_S)
        return _measured(proxy, result.wall_s, moto_url, started, time.monotonic())


def run(
    moto_url: str, runs: int, users: int = DEFAULT_USERS, custodian_peer: bool = True
) -> dict[str, Any]:
    documents, due = plan(users)
    versions: dict[str, str] = {}
    problems: list[str] = []
    tools = [DEACTIVATE, WITH_MAIL]
    if custodian_peer:
        try:
            versions = c7n.ensure_venv()
            tools.append(CUSTODIAN)
        except Exception as exc:
            problems.append(f"Custodian not run: {exc}")
    expected = {
        DEACTIVATE: {"deactivated": due, "mails": 0},
        WITH_MAIL: {"deactivated": due, "mails": due},
        CUSTODIAN: {"deactivated": due, "mails": 0},
    }
    raw: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-model-") as workdir:
        for index in range(runs):
            for tool in tools if index % 2 == 0 else list(reversed(tools)):
                fresh_account(moto_url, documents)
                if tool == CUSTODIAN:
                    measured = custodian(moto_url)
                else:
                    measured = keyturn(moto_url, workdir, mail=tool == WITH_MAIL)
                raw[tool].append(measured)
                for name, value in expected[tool].items():
                    if measured[name] != value:
                        problems.append(
                            f"{tool} run {index + 1}: {name} {measured[name]}, not {value}"
                        )
                problems += [f"{tool}: {f}" for f in measured.get("failures", [])]
    return summarize(users, due, raw, problems, versions)


def _median_of(raw: list[dict[str, Any]], key: str) -> float:
    return median([float(r[key]) for r in raw])


def summarize(
    users: int,
    due: int,
    raw: dict[str, list[dict[str, Any]]],
    problems: list[str],
    versions: dict[str, str],
) -> dict[str, Any]:
    medians = {
        tool: {
            key: _median_of(runs, key)
            for key in (
                "wall_s",
                "bound_s",
                "ratio",
                "iam_calls",
                "mails",
                "throttled_share",
                "start_s",
                "exit_s",
                "calls_ratio",
            )
        }
        for tool, runs in raw.items()
    }
    rows: list[Row] = [
        Row(
            metric="model",
            value=f"{LATENCY_S * 1000:.0f} ms, IAM {IAM_RATE:g}/s, SES {SES_RATE:g}/s",
            note=f"{users:,} users, {due:,} due; per call latency, IAM rate, SES MaxSendRate",
        )
    ]
    labels = {
        DEACTIVATE: "keyturn enforce --apply, deactivate only",
        WITH_MAIL: "keyturn enforce --apply, deactivate + owner mail",
    }
    for tool, label in labels.items():
        m = medians[tool]
        rows.append(
            Row(
                metric=label,
                value=f"{m['wall_s']:.1f} s",
                target=f"<= {GOAL_RATIO}x bound",
                ok=m["ratio"] <= GOAL_RATIO,
                note=f"bound {m['bound_s']:.1f} s ({m['iam_calls']:,.0f} IAM calls / {IAM_RATE:g}"
                + (f", {m['mails']:,.0f} mails / {SES_RATE:g}" if m["mails"] else "")
                + f"): {m['ratio']:.2f}x; throttled {m['throttled_share']:.2%}; outside the "
                f"bound: start {m['start_s']:.1f} s, exit {m['exit_s']:.1f} s; calls "
                f"{m['calls_ratio']:.2f}x the bound",
            )
        )
    throttled = max(medians[tool]["throttled_share"] for tool in labels)
    rows.append(
        Row(
            metric="keyturn calls throttled",
            value=f"{throttled:.2%}",
            target=f"< {GOAL_THROTTLED:.1%}",
            ok=throttled < GOAL_THROTTLED,
        )
    )
    ratio = None
    if CUSTODIAN in medians:
        c = medians[CUSTODIAN]
        ratio = c["wall_s"] / medians[DEACTIVATE]["wall_s"]
        rows.append(
            Row(
                metric="Cloud Custodian remove-keys, same proxy",
                value=f"{c['wall_s']:.1f} s",
                note=f"{c['iam_calls']:,.0f} IAM calls (bound {c['bound_s']:.1f} s, "
                f"{c['ratio']:.2f}x); Custodian / keyturn {ratio:.2f}x",
            )
        )
    rows.append(
        Row(
            metric="equal work (keys deactivated, mails sent)",
            value="ok" if not problems else f"{len(problems)} problem(s)",
            ok=not problems,
            note="; ".join(problems)[:200],
        )
    )
    return {
        "ok": not problems and all(r.get("ok") is not False for r in rows),
        "params": {
            "users": users,
            "due": due,
            "latency_s": LATENCY_S,
            "iam_rate": IAM_RATE,
            "ses_rate": SES_RATE,
            "c7n_versions": versions,
        },
        "medians": medians,
        "ratio_custodian_over_keyturn": round(ratio, 2) if ratio else None,
        "raw": raw,
        "problems": problems,
        "rows": rows,
    }
