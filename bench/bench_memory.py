"""Memory at scale: `keyturn audit` over a synthetic 100,000-user credential report.

Issue 8, item 2 (goal: peak RSS < 150 MB). The report is served by bench/report_server.py
(IAM's real XML, base64 content), not by moto: seeding 100,000 users into moto would take
longer than everything else in `make bench`, and a plain audit only reads the report.

Measured, `runs` times each: the real CLI as a subprocess, `--format json` and `--format
csv` to stdout (streamed), and `--format json --check` (exit 3 expected: the report has
old keys). Peak RSS comes from bench/peak_rss.py, so it is keyturn's own. The start-up
floor (`keyturn audit` over a 10-user report) is measured too, to show what the report
itself costs.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Row, Stopwatch, aws_env, median, problems_row, run_process
from bench.report_server import ReportServer, synthetic_report

DEFAULT_USERS = 100_000
FLOOR_USERS = 10
MAX_RSS_MB = 150.0
TIMEOUT_S = 600.0
VARIANTS: dict[str, tuple[str, ...]] = {
    "json": ("--format", "json"),
    "csv": ("--format", "csv"),
    "json --check": ("--format", "json", "--check"),
}


def audit_once(url: str, argv: tuple[str, ...], workdir: str) -> tuple[float, float, bytes, int]:
    keyturn = str(Path(sys.executable).parent / "keyturn")
    completed, wall, rss = run_process(
        [keyturn, "audit", *argv], aws_env(url, paced=False), workdir, TIMEOUT_S
    )
    if completed.returncode not in (0, 3):
        raise RuntimeError(
            f"keyturn audit {' '.join(argv)} exited {completed.returncode}: "
            f"{completed.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    return wall, rss, completed.stdout, completed.returncode


def check_output(variant: str, stdout: bytes, code: int, keys: int) -> list[str]:
    """The document is whole: every key once, parseable, --check exits 3."""
    problems = []
    if variant == "csv":
        count = sum(1 for _ in csv.reader(io.StringIO(stdout.decode())))
        count -= 1  # the header
    else:
        count = json.loads(stdout)["summary"]["keys"]
    if count != keys:
        problems.append(f"{variant}: {count} keys written, {keys} in the report")
    if variant.endswith("--check") and code != 3:
        problems.append(f"{variant}: exit {code}, 3 expected (old keys in the report)")
    return problems


def run(moto_url: str, runs: int, users: int = DEFAULT_USERS) -> dict[str, Any]:
    del moto_url  # this benchmark serves its own report; moto is not involved
    with Stopwatch() as generating:
        report, keys = synthetic_report(users)
    small, _ = synthetic_report(FLOOR_USERS)
    raw: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    floor: list[float] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as workdir:
        with ReportServer(small) as server:
            for _ in range(runs):
                floor.append(audit_once(server.url, VARIANTS["json"], workdir)[1])
        with ReportServer(report) as server:
            for index in range(runs):
                for variant, argv in VARIANTS.items():
                    wall, rss, stdout, code = audit_once(server.url, argv, workdir)
                    if index == 0:
                        problems += check_output(variant, stdout, code, keys)
                    raw[variant].append({"wall_s": round(wall, 3), "peak_rss_mb": round(rss, 1)})
            calls = dict(server.calls)
    medians = {
        variant: {
            "wall_s": round(median([r["wall_s"] for r in runs_]), 2),
            "peak_rss_mb": round(median([r["peak_rss_mb"] for r in runs_]), 1),
        }
        for variant, runs_ in raw.items()
    }
    floor_mb = median(floor)
    rows: list[Row] = [
        Row(
            metric=f"synthetic report ({users:,} users, {keys:,} keys)",
            value=f"{len(report) / 1e6:.1f} MB CSV",
            note=f"generated in {generating.seconds:.1f} s (not timed)",
        ),
        Row(metric=f"keyturn start-up floor ({FLOOR_USERS} users)", value=f"{floor_mb:.0f} MiB"),
    ]
    for variant, med in medians.items():
        rows += [
            Row(
                metric=f"keyturn audit --format {variant}: peak RSS",
                value=f"{med['peak_rss_mb']:.0f} MiB",
                target=f"< {MAX_RSS_MB:.0f} MB",
                ok=med["peak_rss_mb"] * 1.048576 < MAX_RSS_MB,
            ),
            Row(metric=f"keyturn audit --format {variant}: wall", value=f"{med['wall_s']:.1f} s"),
        ]
    rows.append(problems_row("complete output, --check exits 3", problems))
    return {
        "ok": not problems,
        "params": {"users": users, "keys": keys, "report_bytes": len(report)},
        "targets": {"max_peak_rss_mb": MAX_RSS_MB},
        "medians": medians,
        "floor_peak_rss_mb": round(floor_mb, 1),
        "server_calls": calls,
        "raw": {**raw, "floor_peak_rss_mb": floor},
        "problems": problems,
        "rows": rows,
    }
