"""`python -m bench [--only NAME] [--runs N] [--users N] [--sizes N,N] [--rotate-sizes N,N]`.

Runs, prints and saves the benchmarks.

One `moto_server` process serves every module, one module after the other; it is stopped
whatever happens (Ctrl-C included). Each module's result lands in bench/results/<name>.json
with the machine and package versions, so a number can always be traced to what made it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import Row
from bench.server import MotoServerProcess

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PREFIX = "bench_"
PACKAGES = ("keyturn", "boto3", "botocore", "moto")
BUDGET_S = 30 * 60  # issue 8: the whole of `make bench` on the 2-core machine

RunFunction = Callable[..., dict[str, Any]]


def discover() -> list[str]:
    """Names (without the prefix) of every bench/bench_<name>.py, sorted."""
    return sorted(
        info.name[len(PREFIX) :]
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if info.name.startswith(PREFIX)
    )


def load(name: str) -> RunFunction:
    module = importlib.import_module(f"bench.{PREFIX}{name}")
    run: RunFunction = module.run
    return run


def accepted_options(run: RunFunction, options: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line that this module's `run` takes."""
    parameters = inspect.signature(run).parameters
    return {key: value for key, value in options.items() if value is not None and key in parameters}


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "packages": versions,
        "git": _git_revision(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def _git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{'+dirty' if dirty else ''}"


def print_rows(console: Console, name: str, rows: Sequence[Row], seconds: float) -> None:
    table = Table(title=f"bench {name}  ({seconds:.0f} s)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("", justify="center")
    table.add_column("note", style="dim")
    marks = {True: "[green]ok[/]", False: "[red]MISSED[/]", None: ""}
    for row in rows:
        table.add_row(
            row["metric"],
            row["value"],
            row.get("target", ""),
            marks[row.get("ok")],
            row.get("note", ""),
        )
    console.print(table)


def write_result(name: str, document: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--users", type=int, help="account size for benchmarks that take one")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="comma-separated account sizes for the scan benchmark",
    )
    parser.add_argument(
        "--rotate-sizes",
        type=_sizes,
        help="comma-separated user counts for the rotation benchmark (default 200,1000)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.users is not None and args.users < 1:
        parser.error("--users must be at least 1")
    known = discover()
    unknown = [name for name in args.only or () if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped into a log (CI, `| tee`), rich would fall back to 80 columns and fold every row.
    console = Console(width=None if sys.stdout.isatty() else 160)
    names = args.only or discover()
    options = {"users": args.users, "sizes": args.sizes, "rotate_sizes": args.rotate_sizes}
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    failed: list[str] = []
    began = time.perf_counter()
    console.print(
        f"[bold]keyturn bench[/]: {', '.join(names)}; {args.runs} run(s); "
        f"{info['cpu_count']} CPU(s), Python {info['python']}"
    )
    with MotoServerProcess() as moto:
        console.print(f"moto_server at {moto.url}")
        for name in names:
            if not moto.alive():
                console.print(f"[red]moto_server died; skipping {name}[/]")
                failed.append(name)
                continue
            run = load(name)
            kwargs = accepted_options(run, options)
            started_at = datetime.now(UTC)
            module_began = time.perf_counter()
            try:
                result = run(moto.url, args.runs, **kwargs)
            except Exception:
                console.print(f"[red]bench {name} failed:[/]\n{traceback.format_exc()}")
                failed.append(name)
                continue
            seconds = time.perf_counter() - module_began
            document = {
                "name": name,
                "command": command.strip(),
                "started_at": started_at.isoformat(timespec="seconds"),
                "duration_s": round(seconds, 1),
                "runs": args.runs,
                "options": kwargs,
                "machine": info,
                "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
                "result": result,
            }
            path = write_result(name, document)
            print_rows(console, name, result.get("rows", []), seconds)
            console.print(f"[dim]wrote {path.relative_to(BENCH_DIR.parent)}[/]")
            if result.get("ok") is False:
                failed.append(name)
    total = time.perf_counter() - began
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/] (total {total:.0f} s)")
        return 1
    over = f"; over the {BUDGET_S // 60:.0f}-minute budget" if total > BUDGET_S else ""
    console.print(f"[green]done[/] in {total:.0f} s{over}")
    console.print("[dim]docs/benchmarks.md tables: python -m bench.summary --docs[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
