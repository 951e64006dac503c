"""Scan: `keyturn audit` against Cloud Custodian and the per-user loop, at several sizes.

Issue 8, item 1. One account grows through the sizes (1,000, then 5,000, ...): at each size
the three tools read the same seeded moto server, one after the other, `runs` times, the
order alternating so no tool always meets a warmer server.

- keyturn as a user runs it: `keyturn audit --format json`, a subprocess.
- Cloud Custodian: `custodian run` (own virtualenv, see bench/c7n.py) of an `aws.iam-user`
  policy with the equivalent `credential` filter (`access_keys.last_rotated` older than 30
  days, `report_delay: 0`), a subprocess.
- the seed-style loop: ListUsers, then ListAccessKeys per user (what seeds 000/001 do),
  in-process with a plain boto3 client, so it pays no interpreter start-up.

Measured: wall time, AWS requests as the server counted them (bench/moto_app.py, so all
three are counted the same way), and peak RSS of the two subprocesses (wait4's rusage).
Equal work is checked, not assumed: keyturn's JSON must list every seeded key, Custodian's
resources.json must hold exactly the users with a key older than 30 days, the loop must see
every key.

Keys are backdated at seeding (0-20 or 40-400 days old, never near the 30-day line, so a
second's drift cannot move a key across it).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from bench import c7n
from bench.common import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    Row,
    Stopwatch,
    aws_env,
    counted_calls,
    median,
    problems_row,
    reset_moto,
    run_process,
    seed_iam,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

# 10,000 users cost ~2 min per Custodian run on the 2-core machine (one GetUser per user):
# three runs of every tool at 1k/5k/10k would take most of `make bench`'s budget on its own.
DEFAULT_SIZES = (1_000, 5_000)
RANDOM_SEED = 8
OLD_AFTER_DAYS = 30
CLI_TIMEOUT_S = 600.0
MIN_RATIO = 20.0
RATIO_AT_USERS = 5_000
MAX_KEYTURN_CALLS = 4

KEYTURN = "keyturn"
CUSTODIAN = "custodian"
LOOP = "loop"
TOOLS = (KEYTURN, CUSTODIAN, LOOP)

POLICY: dict[str, Any] = {
    "name": "keys-older-than-30-days",
    "resource": "aws.iam-user",
    "filters": [c7n.credential_age_filter(OLD_AFTER_DAYS)],
}


# -- the account --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedKey:
    age_days: float
    active: bool


@dataclass(frozen=True, slots=True)
class PlannedUser:
    name: str
    keys: tuple[PlannedKey, ...]
    contact: str | None

    @property
    def has_old_key(self) -> bool:
        return any(key.age_days > OLD_AFTER_DAYS for key in self.keys)

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contact": self.contact,
            "keys": [{"age_days": key.age_days, "active": key.active} for key in self.keys],
        }


def plan_users(start: int, count: int, rng: random.Random) -> list[PlannedUser]:
    """10% without keys, 55% with one, 35% with two; 15% of keys inactive; 40% of keys
    older than 30 days; half the users tagged with a Contact."""
    users = []
    for index in range(start, start + count):
        roll = rng.random()
        n_keys = 0 if roll < 0.10 else 1 if roll < 0.65 else 2
        keys = tuple(
            PlannedKey(
                age_days=rng.uniform(40, 400) if rng.random() < 0.4 else rng.uniform(0, 20),
                active=rng.random() >= 0.15,
            )
            for _ in range(n_keys)
        )
        contact = f"owner{index}@example.com" if rng.random() < 0.5 else None
        users.append(PlannedUser(name=f"scan-user-{index:06d}", keys=keys, contact=contact))
    return users


# -- one measured run of each tool ---------------------------------------------------------


@dataclass
class Measurement:
    wall_s: float
    calls: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    found: int = 0  # keys (keyturn, loop) or matched users (custodian)
    problems: list[str] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def keyturn_run(moto_url: str, workdir: str, planned: Sequence[PlannedUser]) -> Measurement:
    keyturn = str(Path(sys.executable).parent / "keyturn")
    with counted_calls(moto_url) as calls:
        completed, wall, rss = run_process(
            [keyturn, "audit", "--format", "json"],
            aws_env(moto_url, paced=False),  # bare moto: no AWS limit to respect
            workdir,
            CLI_TIMEOUT_S,
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"keyturn audit exited {completed.returncode}: "
            f"{completed.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    document = json.loads(completed.stdout)
    return Measurement(
        wall_s=wall,
        calls=calls,
        peak_rss_mb=rss,
        found=len(document["keys"]),
        problems=check_keyturn(document, planned),
    )


def custodian_run(moto_url: str, planned: Sequence[PlannedUser]) -> Measurement:
    with counted_calls(moto_url) as calls:
        result = c7n.run_policy(moto_url, POLICY)
    matched = {resource["UserName"] for resource in result.resources}
    expected = {user.name for user in planned if user.has_old_key}
    problems = []
    if matched != expected:
        problems.append(
            f"custodian matched {len(matched)} users, expected {len(expected)} "
            f"({len(expected - matched)} missing, {len(matched - expected)} extra)"
        )
    return Measurement(
        wall_s=result.wall_s,
        calls=calls,
        peak_rss_mb=result.peak_rss_mb,
        found=len(matched),
        problems=problems,
    )


def loop_run(moto_url: str, planned: Sequence[PlannedUser]) -> Measurement:
    """ListUsers, then ListAccessKeys per user, sequentially, with boto3's defaults."""
    with counted_calls(moto_url) as calls, Stopwatch() as watch:
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET
        )
        iam: IAMClient = session.client("iam", endpoint_url=moto_url)
        keys = [
            meta
            for page in iam.get_paginator("list_users").paginate()
            for user in page["Users"]
            for key_page in iam.get_paginator("list_access_keys").paginate(
                UserName=user["UserName"]
            )
            for meta in key_page["AccessKeyMetadata"]
        ]
    expected = sum(len(user.keys) for user in planned)
    problems = [] if len(keys) == expected else [f"loop saw {len(keys)} keys, {expected} seeded"]
    return Measurement(wall_s=watch.seconds, calls=calls, found=len(keys), problems=problems)


def check_keyturn(document: dict[str, Any], planned: Sequence[PlannedUser]) -> list[str]:
    """Every seeded key exactly once, with its status and its side of the 30-day line."""
    expected = {
        (user.name, slot): key for user in planned for slot, key in enumerate(user.keys, start=1)
    }
    listed = {(item["user"], item["slot"]): item for item in document["keys"]}
    problems = []
    if len(document["keys"]) != len(expected) or listed.keys() != expected.keys():
        problems.append(f"keyturn listed {len(document['keys'])} keys, {len(expected)} seeded")
    wrong = [
        name
        for name, item in listed.items()
        if name in expected
        and (
            (item["status"].lower() == "active") != expected[name].active
            or (item["age_days"] > OLD_AFTER_DAYS) != (expected[name].age_days > OLD_AFTER_DAYS)
        )
    ]
    if wrong:
        problems.append(f"{len(wrong)} keys with the wrong status or age, e.g. {wrong[0]}")
    return problems


# -- the benchmark ------------------------------------------------------------------------


def run(
    moto_url: str, runs: int, users: int | None = None, sizes: Sequence[int] | None = None
) -> dict[str, Any]:
    chosen = sorted({users} if users else set(sizes or DEFAULT_SIZES))
    versions = c7n.ensure_venv()
    rng = random.Random(RANDOM_SEED)
    reset_moto(moto_url)
    planned: list[PlannedUser] = []
    by_size: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as workdir:
        for size in chosen:
            more = plan_users(len(planned), size - len(planned), rng)
            with Stopwatch() as seeding:
                seed_iam(moto_url, [user.document() for user in more])
            planned += more
            by_size[str(size)] = measure_size(moto_url, workdir, runs, planned, seeding.seconds)
    return summarize(by_size, versions)


def measure_size(
    moto_url: str, workdir: str, runs: int, planned: Sequence[PlannedUser], seed_s: float
) -> dict[str, Any]:
    steps: dict[str, Callable[[], Measurement]] = {
        KEYTURN: lambda: keyturn_run(moto_url, workdir, planned),
        CUSTODIAN: lambda: custodian_run(moto_url, planned),
        LOOP: lambda: loop_run(moto_url, planned),
    }
    keyturn_run(moto_url, workdir, planned)  # untimed: the account's first report is made here
    raw: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    problems: list[str] = []
    for index in range(runs):
        order = list(TOOLS) if index % 2 == 0 else list(reversed(TOOLS))
        for tool in order:
            measured = steps[tool]()
            raw[tool].append({"order": order.index(tool), **measured.__dict__})
            problems += [f"{tool} run {index + 1}: {problem}" for problem in measured.problems]
    medians = {
        tool: {
            "wall_s": round(median([r["wall_s"] for r in raw[tool]]), 3),
            "calls": median([sum(r["calls"].values()) for r in raw[tool]]),
            "peak_rss_mb": (
                round(median([r["peak_rss_mb"] for r in raw[tool]]), 1)
                if raw[tool][0]["peak_rss_mb"] is not None
                else None
            ),
            "calls_by_operation": raw[tool][-1]["calls"],
        }
        for tool in TOOLS
    }
    return {
        "users": len(planned),
        "keys": sum(len(user.keys) for user in planned),
        "users_with_old_keys": sum(user.has_old_key for user in planned),
        "seed_s": round(seed_s, 1),
        "medians": medians,
        "ratios": {
            "custodian_over_keyturn": round(
                medians[CUSTODIAN]["wall_s"] / medians[KEYTURN]["wall_s"], 1
            ),
            "loop_over_keyturn": round(medians[LOOP]["wall_s"] / medians[KEYTURN]["wall_s"], 1),
        },
        "raw": raw,
        "problems": problems,
    }


def summarize(by_size: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    rows: list[Row] = []
    problems: list[str] = []
    for size, result in by_size.items():
        users = int(size)
        med = result["medians"]
        ratio_c7n = result["ratios"]["custodian_over_keyturn"]
        ratio_loop = result["ratios"]["loop_over_keyturn"]
        keyturn_calls = med[KEYTURN]["calls"]
        at = f"{users:,} users"
        rows += [
            Row(
                metric=f"{at}: keyturn audit --format json",
                value=f"{med[KEYTURN]['wall_s']:.2f} s",
                note=f"{keyturn_calls:.0f} calls, {med[KEYTURN]['peak_rss_mb']:.0f} MiB peak RSS",
            ),
            Row(
                metric=f"{at}: Cloud Custodian (credential filter)",
                value=f"{med[CUSTODIAN]['wall_s']:.2f} s",
                note=(
                    f"{med[CUSTODIAN]['calls']:,.0f} calls, "
                    f"{med[CUSTODIAN]['peak_rss_mb']:.0f} MiB peak RSS, "
                    f"{result['users_with_old_keys']:,} users matched"
                ),
            ),
            Row(
                metric=f"{at}: ListUsers + ListAccessKeys loop",
                value=f"{med[LOOP]['wall_s']:.2f} s",
                note=f"{med[LOOP]['calls']:,.0f} calls",
            ),
            Row(
                metric=f"{at}: speed-up over Custodian",
                value=f"{ratio_c7n:.1f}x",
                target=f">= {MIN_RATIO:.0f}x at {RATIO_AT_USERS:,}",
                ok=ratio_c7n >= MIN_RATIO if users == RATIO_AT_USERS else None,
            ),
            Row(metric=f"{at}: speed-up over the loop", value=f"{ratio_loop:.1f}x"),
            Row(
                metric=f"{at}: keyturn AWS calls",
                value=f"{keyturn_calls:.0f}",
                target=f"<= {MAX_KEYTURN_CALLS}",
                ok=keyturn_calls <= MAX_KEYTURN_CALLS,
                note=", ".join(f"{op} {n}" for op, n in med[KEYTURN]["calls_by_operation"].items()),
            ),
        ]
        problems += [f"{users}: {problem}" for problem in result["problems"]]
    rows.append(problems_row("equal work (keys, matched users)", problems))
    return {
        "ok": not problems,
        "params": {
            "sizes": [int(size) for size in by_size],
            "random_seed": RANDOM_SEED,
            "policy": POLICY,
            "c7n_versions": versions,
        },
        "targets": {
            "min_ratio_over_custodian": MIN_RATIO,
            "ratio_at_users": RATIO_AT_USERS,
            "max_keyturn_calls": MAX_KEYTURN_CALLS,
        },
        "sizes": by_size,
        "problems": problems,
        "rows": rows,
    }
