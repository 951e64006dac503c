"""Enforce: 5,000 users, 20% of them due, `keyturn enforce --apply` beside Cloud Custodian.

Issue 8, item 5. Each measured run starts from a freshly seeded account (enforcement
changes it): 5,000 users, all tagged with a Contact, 1,000 of them with a key 40-400 days
old (past notice and grace), the rest 0-20 days old. Three measurements:

- `keyturn enforce --apply` as shipped: a key never notified is notified first (one SES
  mail per key and stage, the notice recorded in a user tag), never deactivated unwarned.
  Run once (it has no peer); the two below, compared, run `runs` times.
- `keyturn enforce --apply` with `deactivate_without_notice` (KEYTURN_ENFORCE_...=true):
  overdue keys are deactivated at once, which is what Custodian's action does (keyturn
  still tells each owner afterwards, one mail per key, and records it in a tag).
- Cloud Custodian: an `aws.iam-user` policy, the same `credential` filter (older than 37
  days, `report_delay: 0`) and `remove-keys` (`disable: true`, `age: 37`).

Custodian's `notify` action cannot run here: it only puts a message on an SQS queue for
c7n-mailer, a separate service that renders and sends the mail. So the mail half has no
peer; the deactivation half is compared like for like. Every run's effect is checked in the
server (keys Active / Inactive, mails sent) so equal work is proven, not assumed.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import c7n
from bench.common import (
    Row,
    Stopwatch,
    aws_env,
    counted_calls,
    key_status,
    median,
    moto_client,
    problems_row,
    reset_moto,
    run_process,
    seed_iam,
    ses_production,
)

DEFAULT_USERS = 5_000
DUE_SHARE = 0.2
RANDOM_SEED = 5
SENDER = "keyturn-bench@example.com"
TIMEOUT_S = 1_200.0
DEACTIVATE_AFTER_DAYS = 37  # notice at 30 + 7 days' grace: keyturn's defaults

NOTIFY = "keyturn_notify"
DEACTIVATE = "keyturn_deactivate"
CUSTODIAN = "custodian_remove_keys"
TOOLS = (NOTIFY, DEACTIVATE, CUSTODIAN)

POLICY: dict[str, Any] = {
    "name": "disable-keys-older-than-37-days",
    "resource": "aws.iam-user",
    "filters": [c7n.credential_age_filter(DEACTIVATE_AFTER_DAYS)],
    "actions": [{"type": "remove-keys", "disable": True, "age": DEACTIVATE_AFTER_DAYS}],
}


@dataclass
class Measurement:
    wall_s: float
    calls: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    deactivated: int = 0
    mails: int = 0
    problems: list[str] = field(default_factory=list)


def plan(users: int) -> tuple[list[dict[str, Any]], int]:
    rng = random.Random(RANDOM_SEED)
    due = set(rng.sample(range(users), int(users * DUE_SHARE)))
    documents = [
        {
            "name": f"enforce-user-{index:06d}",
            "contact": f"owner{index}@example.com",
            "keys": [
                {
                    "age_days": rng.uniform(40, 400) if index in due else rng.uniform(0, 20),
                    "active": True,
                }
            ],
        }
        for index in range(users)
    ]
    return documents, len(due)


def fresh_account(moto_url: str, documents: list[dict[str, Any]]) -> None:
    reset_moto(moto_url)
    seed_iam(moto_url, documents)
    ses = moto_client("ses", moto_url)
    ses.verify_email_identity(EmailAddress=SENDER)  # moto verifies at once
    ses_production(moto_url)  # else moto's SES is a sandbox: 200 mails a day, verified only


def sent_mails(calls: dict[str, int]) -> int:
    """Mails moto's SES accepted, from the server's own request count."""
    return calls.get("ses:SendEmail", 0) + calls.get("ses:SendRawEmail", 0)


def keyturn_enforce(moto_url: str, workdir: str, without_notice: bool) -> Measurement:
    keyturn = str(Path(sys.executable).parent / "keyturn")
    env = aws_env(moto_url, paced=False)  # bare moto: no AWS limit to respect
    env["SOURCEMAIL"] = SENDER
    if without_notice:
        env["KEYTURN_ENFORCE_DEACTIVATE_WITHOUT_NOTICE"] = "true"
    with counted_calls(moto_url) as calls:
        completed, wall, rss = run_process(
            [keyturn, "enforce", "--apply", "--json"], env, workdir, TIMEOUT_S
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"keyturn enforce exited {completed.returncode}: "
            f"{completed.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    document = json.loads(completed.stdout)
    failures = document["failures"]
    return Measurement(
        wall_s=wall,
        calls=calls,
        peak_rss_mb=rss,
        deactivated=key_status(moto_url).get("Inactive", 0),
        mails=sent_mails(calls),
        problems=[f"keyturn: {len(failures)} failures, e.g. {failures[0]}"] if failures else [],
    )


def custodian_remove_keys(moto_url: str) -> Measurement:
    with counted_calls(moto_url) as calls:
        result = c7n.run_policy(moto_url, POLICY, TIMEOUT_S)
    return Measurement(
        wall_s=result.wall_s,
        calls=calls,
        peak_rss_mb=result.peak_rss_mb,
        deactivated=key_status(moto_url).get("Inactive", 0),
        mails=sent_mails(calls),
    )


def run(moto_url: str, runs: int, users: int = DEFAULT_USERS) -> dict[str, Any]:
    versions = c7n.ensure_venv()
    documents, due = plan(users)
    raw: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    problems: list[str] = []
    seed_s: list[float] = []
    expected = {
        NOTIFY: {"deactivated": 0, "mails": due},
        DEACTIVATE: {"deactivated": due, "mails": due},  # "your key was deactivated"
        CUSTODIAN: {"deactivated": due, "mails": 0},
    }
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as workdir:
        steps: dict[str, Callable[[], Measurement]] = {
            NOTIFY: lambda: keyturn_enforce(moto_url, workdir, without_notice=False),
            DEACTIVATE: lambda: keyturn_enforce(moto_url, workdir, without_notice=True),
            CUSTODIAN: lambda: custodian_remove_keys(moto_url),
        }
        for index in range(runs):
            order = list(TOOLS) if index % 2 == 0 else list(reversed(TOOLS))
            if index > 0:
                # The notice-first run has no peer to compare with (see the docstring):
                # one run of it describes it; the budget goes to the compared pair.
                order.remove(NOTIFY)
            for tool in order:
                with Stopwatch() as seeding:
                    fresh_account(moto_url, documents)
                seed_s.append(seeding.seconds)
                measured = steps[tool]()
                raw[tool].append({"order": order.index(tool), **measured.__dict__})
                for name, value in expected[tool].items():
                    if getattr(measured, name) != value:
                        problems.append(
                            f"{tool} run {index + 1}: {name} {getattr(measured, name)}, "
                            f"expected {value}"
                        )
                problems += measured.problems
    return summarize(users, due, raw, problems, versions, seed_s)


def summarize(
    users: int,
    due: int,
    raw: dict[str, list[dict[str, Any]]],
    problems: list[str],
    versions: dict[str, str],
    seed_s: list[float],
) -> dict[str, Any]:
    medians = {
        tool: {
            "wall_s": round(median([r["wall_s"] for r in raw[tool]]), 2),
            "calls": median([sum(r["calls"].values()) for r in raw[tool]]),
            "peak_rss_mb": round(median([r["peak_rss_mb"] for r in raw[tool]]), 1),
            "calls_by_operation": raw[tool][-1]["calls"],
        }
        for tool in TOOLS
    }
    ratio = medians[CUSTODIAN]["wall_s"] / medians[DEACTIVATE]["wall_s"]

    def ops(tool: str) -> str:
        return ", ".join(f"{op} {n}" for op, n in medians[tool]["calls_by_operation"].items())

    rows: list[Row] = [
        Row(
            metric="account (fresh for every run)",
            value=f"{users:,} users, {due:,} due",
            note=f"seeded in {median(seed_s):.1f} s through the bench side door (not timed)",
        ),
        Row(
            metric=f"keyturn enforce --apply (notice first; {len(raw[NOTIFY])} run)",
            value=f"{medians[NOTIFY]['wall_s']:.1f} s",
            note=f"{medians[NOTIFY]['calls']:,.0f} calls: {ops(NOTIFY)}"[:150],
        ),
        Row(
            metric="keyturn enforce --apply, deactivate without notice",
            value=f"{medians[DEACTIVATE]['wall_s']:.1f} s",
            note=f"{medians[DEACTIVATE]['calls']:,.0f} calls: {ops(DEACTIVATE)}"[:150],
        ),
        Row(
            metric="Cloud Custodian remove-keys (disable)",
            value=f"{medians[CUSTODIAN]['wall_s']:.1f} s",
            note=f"{medians[CUSTODIAN]['calls']:,.0f} calls: {ops(CUSTODIAN)}"[:150],
        ),
        Row(
            metric="speed-up over Custodian (deactivation)",
            value=f"{ratio:.1f}x",
            note="Custodian's notify needs c7n-mailer + SQS: no peer for the mail half",
        ),
        problems_row("equal work (keys deactivated, mails sent)", problems),
    ]
    return {
        "ok": not problems,
        "params": {
            "users": users,
            "due": due,
            "random_seed": RANDOM_SEED,
            "policy": POLICY,
            "c7n_versions": versions,
        },
        "medians": medians,
        "ratio_custodian_over_keyturn_deactivate": round(ratio, 2),
        "raw": raw,
        "problems": problems,
        "rows": rows,
    }
