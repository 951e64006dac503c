"""`python -m bench.summary [--docs]`: the latest bench results as Markdown tables.

The documented performance figures (docs/benchmarks.md) are written from
bench/results/*.json by this module, not by hand, so a published figure is always one a
recorded run produced (with its command, date, machine load and duration beside it).
`--docs` (alias `--readme`, its old name) replaces the text between the BEGIN/END markers
in docs/benchmarks.md; without it the Markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.__main__ import RESULTS_DIR, discover

PAGE = RESULTS_DIR.parent.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- bench results: begin (written by `python -m bench.summary --docs`) -->"
END = "<!-- bench results: end -->"
SOAK_BEGIN = "<!-- soak results: begin (written by `python -m bench.summary --docs`) -->"
SOAK_END = "<!-- soak results: end -->"
MARKS = {True: "met", False: "**missed**", None: ""}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def module_table(document: dict[str, Any]) -> str:
    result = document["result"]
    machine = document["machine"]
    load = machine.get("load_average_at_start", [])
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items() if v)
    lines = [
        f"**{document['name']}**: `{document['command']}`, {document['runs']} run(s), "
        f"{document['started_at'][:16].replace('T', ' ')} UTC, {document['duration_s']:.0f} s; "
        f"{machine['cpu_count']} CPUs, load average at start "
        f"{' / '.join(str(x) for x in load)}; git {machine.get('git')}; {packages}",
        "",
        "| measurement | value | goal | | note |",
        "|---|---|---|---|---|",
    ]
    for row in result.get("rows", []):
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    row["metric"],
                    row["value"],
                    row.get("target", ""),
                    MARKS[row.get("ok")],
                    row.get("note", ""),
                )
            )
            + " |"
        )
    return "\n".join(lines)


def markdown(results_dir: Path = RESULTS_DIR) -> str:
    tables = []
    for name in discover():
        path = results_dir / f"{name}.json"
        if path.exists():
            tables.append(module_table(json.loads(path.read_text(encoding="utf-8"))))
        else:
            tables.append(f"**{name}**: no recorded run (`python -m bench --only {name}`).")
    return "\n\n".join(tables)


HEADLINE_BEGIN = "<!-- bench headline: begin (written by `python -m bench.summary --docs`) -->"
HEADLINE_END = "<!-- bench headline: end -->"


def _load(name: str, results_dir: Path) -> dict[str, Any] | None:
    path = results_dir / f"{name}.json"
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["result"]
    return result


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def headline(results_dir: Path = RESULTS_DIR) -> str:
    """One row per issue-8 figure: keyturn, the peer, the ratio and the goal."""
    rows: list[tuple[str, str, str, str, str]] = []
    scan = _load("scan", results_dir)
    for size, entry in sorted((scan or {}).get("sizes", {}).items(), key=lambda x: int(x[0])):
        m = entry["medians"]
        ours, c7n, loop = m["keyturn"], m["custodian"], m["loop"]
        ratio = c7n["wall_s"] / ours["wall_s"]
        goal = ">= 20x at 5,000: " + _met(ratio >= 20) if int(size) == 5000 else ""
        rows.append(
            (
                f"scan, {int(size):,} users (`audit --format json`)",
                f"{ours['wall_s']:.2f} s, {ours['calls']:.0f} calls, {ours['peak_rss_mb']:.0f} MiB",
                f"Custodian {c7n['wall_s']:.1f} s, {c7n['calls']:,.0f} calls, "
                f"{c7n['peak_rss_mb']:.0f} MiB; loop {loop['wall_s']:.1f} s",
                f"{ratio:.1f}x Custodian, {loop['wall_s'] / ours['wall_s']:.1f}x loop",
                goal,
            )
        )
    memory = _load("memory", results_dir)
    if memory:
        peak = max(v["peak_rss_mb"] for v in memory["medians"].values())
        rows.append(
            (
                "audit of a 100,000-user report (streamed)",
                f"{peak:.0f} MiB peak, {memory['medians']['json']['wall_s']:.1f} s",
                "",
                "",
                f"< 150 MB: {_met(peak < 150)}",
            )
        )
    rotate = _load("rotate", results_dir)
    for size, m in sorted(
        ((k, v) for k, v in (rotate or {}).get("medians", {}).items() if k.isdigit()),
        key=lambda x: int(x[0]),
    ):
        rows.append(
            (
                f"rotate {int(size):,} users under the latency model",
                f"{m['wall_s']:.1f} s (bound {m['bound_s']:.1f} s)",
                f"sequential loop {m['sequential_projected_s']:,.0f} s (projected)",
                f"{m['ratio']:.2f}x the bound; {m['speedup_over_sequential']:.0f}x the loop",
                f"<= 1.25x the bound: {_met(m['ratio'] <= 1.25)}",
            )
        )
    leases = _load("leases", results_dir)
    if leases:
        m = leases["medians"]
        phases = m.get("overhead_percent_by_phase", {})
        runs = m.get("overhead_percent_runs", [])
        rows.append(
            (
                f"{m['leases']:,} leases issued + revoked",
                f"{m['calls_per_lease']['issue']:g} calls per issue, "
                f"{m['calls_per_lease']['revoke']:g} per revoke",
                "bare boto3 loop making the same calls",
                f"{m['overhead_percent']:+.1f}% overhead (runs "
                + ", ".join(f"{x:+.1f}%" for x in runs)
                + f"); issue alone {phases.get('issue', float('nan')):+.1f}%, revoke "
                f"{phases.get('revoke', float('nan')):+.1f}%",
                f"<= 10%: {_met(m['overhead_percent'] <= 10)}",
            )
        )
        model = m.get("model")
        if model:
            ours, bare = model["keyturn"], model["bare"]
            rows.append(
                (
                    f"{m.get('model_leases', 0):,} leases issued + revoked under the latency "
                    "model (one after another)",
                    f"{ours['wall_s']:.1f} s",
                    f"bare boto3 loop {bare['wall_s']:.1f} s ({bare['ratio']:.2f}x the bound)",
                    f"{ours['ratio']:.2f}x the bound (calls x 60 ms); "
                    f"{ours['wall_s'] / bare['wall_s']:.2f}x the loop",
                    f"<= 1.15x the bound: {_met(ours['ratio'] <= 1.15)}",
                )
            )
    startup = _load("startup", results_dir)
    if startup:
        m = startup["medians"]
        ratio = m["ratio_to_import_boto3"]
        rows.append(
            (
                "start-up: `keyturn --help` / cached `creds ROLE --format process` (medians)",
                f"{m['help']:.3f} s / {m['cached_process']:.3f} s",
                f'`python -c "import boto3"` {m["import_boto3"]:.3f} s',
                f"{ratio['help']:.2f}x / {ratio['cached_process']:.2f}x importing boto3"
                + (
                    f"; {m['ratio_to_python']['help']:.1f}x / "
                    f"{m['ratio_to_python']['cached_process']:.1f}x `python -c pass`"
                    if "ratio_to_python" in m
                    else ""
                ),
                f"<= 0.25 s: {_met(m['help'] <= 0.25)}; "
                f"<= 0.15 s: {_met(m['cached_process'] <= 0.15)}",
            )
        )
    broker = _load("broker", results_dir)
    if broker:
        user, sts = broker["medians"]["iam_user"], broker["medians"]["assumed_role"]
        params = broker["params"]
        rows.append(
            (
                f"broker: {user['leases']} `iam_user` leases at once, issued + verified ready, "
                f"latency model ({params['latency_s'] * 1000:.0f} ms, IAM "
                f"{params['iam_rate']:g}/s, {params['propagation_s']:g} s propagation)",
                f"{user['wall_s']:.1f} s (bound {user['bound_s']:.1f} s); "
                f"{user['refused_on_first_use']} keys refused on first use",
                f"one at a time: {user['leases'] * params['propagation_s']:,.0f} s of "
                "propagation alone",
                f"{user['ratio']:.2f}x the bound",
                f"<= 1.5x the bound: {_met(user['ratio'] <= 1.5)}",
            )
        )
        rows.append(
            (
                f"broker: `assumed_role` issues, {sts['clients']} clients (no server-side cache)",
                f"{sts['issues_per_s']:.1f}/s (pacing.sts 50/s); "
                f"{sts['issues_per_s_pacing_sts_raised']:.1f}/s with pacing.sts "
                f"{sts['pacing_sts_raised_to']:g}",
                "",
                "",
                "",
            )
        )
    enforce = _load("enforce", results_dir)
    if enforce:
        m = enforce["medians"]
        ours, c7n = m["keyturn_deactivate"], m["custodian_remove_keys"]
        rows.append(
            (
                f"enforce, {enforce['params']['users']:,} users, "
                f"{enforce['params']['due']:,} due (deactivate)",
                f"{ours['wall_s']:.1f} s, {ours['calls']:,.0f} calls (mails included)",
                f"Custodian remove-keys {c7n['wall_s']:.1f} s, {c7n['calls']:,.0f} calls",
                f"{c7n['wall_s'] / ours['wall_s']:.1f}x",
                "",
            )
        )
    trail = _load("trail", results_dir)
    for size, m in sorted((trail or {}).get("medians", {}).items(), key=lambda x: int(x[0])):
        rows.append(
            (
                f"CloudTrail summary of {int(size):,} events (LookupEvents, 2 req/s per region)",
                f"{m['wall_s']:.1f} s (bound {m['bound_s']:.1f} s)",
                "",
                f"{m['ratio']:.2f}x the bound",
                f"<= 1.25x the bound: {_met(m['ratio'] <= 1.25)}",
            )
        )
    quarantine = _load("quarantine", results_dir)
    if quarantine:
        m, params = quarantine["medians"], quarantine["params"]
        model_words = (
            f"latency model ({params['latency_s'] * 1000:.0f} ms, IAM {params['iam_rate']:g}/s, "
            f"propagation {params['propagation_s']:g} s)"
        )
        rows.append(
            (
                f"exposed key: handler start -> key deactivated, {model_words}",
                f"{m['deactivated_s']:.2f} s",
                "",
                "",
                f"<= 2 s: {_met(m['deactivated_s'] <= 2.0)}",
            )
        )
        rows.append(
            (
                "exposed key: handler start -> replacement verified (5-success streak)",
                f"{m['verified_s']:.1f} s",
                "",
                "",
                f"<= {m['verify_target_s']:g} s: {_met(m['verified_s'] <= m['verify_target_s'])}",
            )
        )
    model = _load("enforce_model", results_dir)
    if model:
        m, params = model["medians"], model["params"]
        c7n_m = m.get("custodian_remove_keys")
        for tool, label in (
            ("keyturn_deactivate", "deactivate only"),
            ("keyturn_deactivate_and_mail", "deactivate + owner mail"),
        ):
            ours = m[tool]
            peer = ratio = ""
            if c7n_m and tool == "keyturn_deactivate":
                peer = (
                    f"Custodian remove-keys {c7n_m['wall_s']:.1f} s, "
                    f"{c7n_m['iam_calls']:,.0f} calls"
                )
                ratio = f"Custodian / keyturn {c7n_m['wall_s'] / ours['wall_s']:.2f}x; "
            rows.append(
                (
                    f"enforce {params['users']:,} users, {params['due']:,} due, {label}, "
                    f"latency model ({params['latency_s'] * 1000:.0f} ms, "
                    f"IAM {params['iam_rate']:g}/s)",
                    f"{ours['wall_s']:.1f} s, {ours['iam_calls']:,.0f} IAM calls"
                    + (f", {ours['mails']:,.0f} mails" if ours["mails"] else "")
                    + f"; bound {ours['bound_s']:.1f} s; throttled {ours['throttled_share']:.2%}"
                    + (
                        f"; outside the bound: start {ours['start_s']:.1f} s, exit "
                        f"{ours['exit_s']:.1f} s (calls {ours['calls_ratio']:.2f}x the bound)"
                        if "start_s" in ours
                        else ""
                    ),
                    peer,
                    ratio + f"{ours['ratio']:.2f}x the bound",
                    f"<= 1.15x the bound, < 0.5% throttled: "
                    f"{_met(ours['ratio'] <= 1.15 and ours['throttled_share'] < 0.005)}",
                )
            )
    lines = ["| measurement | keyturn | peer | ratio | goal |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def soak_table(results_dir: Path = RESULTS_DIR) -> str:
    """`make soak`'s latest figures (bench/soak.py writes results/soak.json)."""
    path = results_dir / "soak.json"
    if not path.exists():
        return "No recorded soak run (`make soak`)."
    soak = json.loads(path.read_text(encoding="utf-8"))
    enforce, rotate, leases = soak["enforce"], soak["rotate"], soak["leases"]
    injected = soak.get("injected", {})
    faults = sum(n for kind, n in injected.items() if kind not in ("requests", "latency"))
    rows = [
        ("part", "size", "runs needed", "failures (retried by the next run)", "lost", "time"),
        (
            "enforce --apply",
            f"{enforce['users']:,} users, every key due",
            enforce["runs"],
            enforce["failures_retried_by_next_run"],
            enforce["lost_keys"],
            f"{enforce['seconds']:.0f} s",
        ),
        (
            "rotate (Secrets Manager)",
            f"{rotate['users']:,} users",
            rotate["runs"],
            rotate["failures_resumed_by_next_run"],
            rotate["lost_keys"],
            f"{rotate['seconds']:.0f} s",
        ),
        (
            "leases (issue, revoke, tidy)",
            f"{leases['leases']:,} leases",
            1,
            leases["issue_or_revoke_failures"],
            leases["lost"],
            f"{leases['seconds']:.0f} s",
        ),
    ]
    lines = ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    lines.insert(1, "|---|---|---|---|---|---|")
    detail = ", ".join(f"{kind} {n:,}" for kind, n in sorted(injected.items()))
    lines += [
        "",
        f"`{soak['command']}`, {soak['started_at'][:16].replace('T', ' ')} UTC: "
        f"{faults:,} faults injected over {injected.get('requests', 0):,} requests "
        f"({detail}); lost in all: **{soak['lost_total']}**.",
    ]
    return "\n".join(lines)


def _replace(content: str, begin: str, end: str, text: str, page: Path) -> str:
    if begin not in content or end not in content:
        raise SystemExit(f"{page}: the markers {begin!r} and {end!r} are missing")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n\n{text}\n\n{end}{tail}"


def write_page(text: str, page: Path = PAGE) -> None:
    content = page.read_text(encoding="utf-8")
    content = _replace(content, HEADLINE_BEGIN, HEADLINE_END, headline(), page)
    content = _replace(content, BEGIN, END, text, page)
    content = _replace(content, SOAK_BEGIN, SOAK_END, soak_table(), page)
    page.write_text(content, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument(
        "--docs",
        "--readme",
        dest="docs",
        action="store_true",
        help="rewrite the tables in docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    text = markdown()
    if args.docs:
        write_page(text)
        print(f"updated {PAGE.relative_to(PAGE.parent.parent)}")
    else:
        sys.stdout.write(headline() + "\n\n" + text + "\n\n" + soak_table() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
