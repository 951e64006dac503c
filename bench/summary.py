"""`python -m bench.summary [--readme]`: the latest bench results as Markdown tables.

The README's performance figures are written from bench/results/*.json by this module, not
by hand, so a figure in the README is always one a recorded run produced (with its command,
date, machine load and duration beside it). `--readme` replaces the text between the
BEGIN/END markers in README.md; without it the Markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.__main__ import RESULTS_DIR, discover

README = RESULTS_DIR.parent.parent / "README.md"
BEGIN = "<!-- bench results: begin (written by `python -m bench.summary --readme`) -->"
END = "<!-- bench results: end -->"
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


def write_readme(text: str, readme: Path = README) -> None:
    content = readme.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{readme}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n\n{text}\n\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's section")
    args = parser.parse_args(argv)
    text = markdown()
    if args.readme:
        write_readme(text)
        print(f"updated {README.name}")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
