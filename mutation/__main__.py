"""`python -m mutation [--workers N] [--keep] [--report-only]`: mutation testing of the pure core.

Runs mutmut (its settings: `[tool.mutmut]` in pyproject.toml) over keyturn's pure modules,
each mutant against the unit tests that run its function (mutmut's stats pass maps them),
then reads mutmut's own verdicts (`mutmut results --all true`) and prints the kill rate per
module, writing the same table to mutation/results.md and into README.md between its
`<!-- mutation-table:start -->` and `<!-- mutation-table:end -->` markers (a unit test,
tests/unit/test_mutation_readme.py, fails when the README's block is not what this tool
renders from results.md). Nothing in the table is typed by hand: the only hand-kept inputs
are mutation/equivalents.toml, the mutants that cannot be killed (same behaviour) or only
reword a message nobody relies on, each with its reason, and mutation/hand_mutants.toml,
changes mutmut does not make (module-level constants and tables such as rotation's
TRANSITIONS), each run on a copy of src/ against the same tests.

Exits non-zero when a module is under the target, when a function that must be fully
covered has a survivor, or when the equivalents list names a mutant that no longer
survives (a stale entry would hide a real gap after the code changes).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
EQUIVALENTS = HERE / "equivalents.toml"
HAND_MUTANTS = HERE / "hand_mutants.toml"
RESULTS = HERE / "results.md"
README = ROOT / "README.md"
START = "<!-- mutation-table:start -->"
END = "<!-- mutation-table:end -->"
MUTMUT = Path(sys.executable).with_name("mutmut")
# keyturn.domain.rotation.x_decode__mutmut_3, keyturn.domain.leases.xǁLeaseǁfrom_dict__mutmut_1
NAME = re.compile(r"^(?P<module>[\w.]+)\.x(?P<function>[_ǁ].*)__mutmut_\d+$")
CAUGHT = {"killed", "timeout", "caught by type check"}


@dataclass
class Row:
    """One module's verdicts, as mutmut reported them."""

    statuses: Counter[str] = field(default_factory=Counter)
    equivalent: int = 0
    wording: int = 0
    hand: int = 0
    hand_killed: int = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + self.hand

    @property
    def killed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in CAUGHT) + self.hand_killed

    @property
    def meaningful(self) -> int:
        return self.total - self.equivalent - self.wording

    @property
    def rate(self) -> float:
        return 100.0 if not self.meaningful else 100.0 * self.killed / self.meaningful


def function_of(mutant: str) -> tuple[str, str]:
    """(module, function) of a mutant name: `Lease.from_dict` for a method."""
    match = NAME.match(mutant)
    if match is None:
        raise SystemExit(f"mutation: cannot read mutant name {mutant!r}")
    function = match["function"].lstrip("_").strip("ǁ").replace("ǁ", ".")
    return match["module"], function


def verdicts() -> dict[str, str]:
    """mutmut's verdict per mutant, from its own `results` command."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and NAME.match(name):
            found[name] = status
    if not found:
        raise SystemExit("mutation: mutmut reported no mutants (run without --report-only first)")
    return found


def selection() -> list[str]:
    """The unit test files mutmut runs (pyproject.toml), for the hand-made mutants too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    return [*config["pytest_add_cli_args"], *config["pytest_add_cli_args_test_selection"]]


def hand_mutants() -> list[tuple[str, str, bool]]:
    """Run each change of hand_mutants.toml on a copy of src/ against the unit tests:
    (module, what the change does, killed) for each."""
    entries = tomllib.loads(HAND_MUTANTS.read_text("utf-8"))["mutant"]
    results: list[tuple[str, str, bool]] = []
    tests = selection()
    with tempfile.TemporaryDirectory(prefix="keyturn-hand-mutants-") as tmp:
        copy = Path(tmp) / "src"

        def passes(file: str | None = None, find: str = "", replace: str = "") -> bool:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(ROOT / "src", copy)
            if file is not None:
                target = copy / file.removeprefix("src/")
                text = target.read_text("utf-8")
                if text.count(find) != 1:
                    raise SystemExit(f"mutation: {file} does not hold {find!r} exactly once")
                target.write_text(text.replace(find, replace), "utf-8")
            env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{ROOT}"}
            env["MUTANT_UNDER_TEST"] = "hand-made"  # the lean hypothesis profile
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", *tests],
                cwd=ROOT,
                env=env,
                capture_output=True,
                check=False,
            )
            return run.returncode == 0

        if not passes():  # the unchanged copy must pass, or every mutant would look killed
            raise SystemExit("mutation: the unit tests fail on an unchanged copy of src/")
        for entry in entries:
            killed = not passes(entry["file"], entry["find"], entry["replace"])
            module = "keyturn." + entry["file"].removeprefix("src/keyturn/")[:-3].replace("/", ".")
            print(f"  {'killed  ' if killed else 'SURVIVED'} {module}: {entry['why']}")
            results.append((module, entry["why"], killed))
    return results


def table(rows: dict[str, Row], target: float) -> list[str]:
    lines = [
        "| module | mutants | killed | equivalent | wording only | survived | no tests "
        "| hand-made killed | kill rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for module, row in sorted(rows.items()):
        survived = row.statuses["survived"] - row.equivalent - row.wording
        mark = "" if row.rate >= target else " (under target)"
        lines.append(
            f"| {module.removeprefix('keyturn.')} | {row.total} | {row.killed} | "
            f"{row.equivalent} | {row.wording} | {survived + row.hand - row.hand_killed} | "
            f"{row.statuses['no tests']} | {row.hand_killed}/{row.hand} | {row.rate:.1f}%{mark} |"
        )
    return lines


def readme_block(results: str) -> str:
    """README's block, markers included, rendered from the text of mutation/results.md: its
    table cut to the columns a reader of the front page needs (module, mutants, killed,
    equivalent or wording only, kill rate); the full table stays in results.md."""
    rows = [line for line in results.splitlines() if line.startswith("| domain.")]
    if not rows:
        raise SystemExit("mutation: mutation/results.md holds no table (run make mutation)")
    lines = ["| module | mutants | killed | equivalent | kill rate |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        module, mutants, killed, equivalent, wording, rate = (*cells[:5], cells[-1])
        not_counted = int(equivalent) + int(wording)
        lines.append(
            f"| {module.removeprefix('domain.')} | {mutants} | {killed} | {not_counted} | {rate} |"
        )
    return "\n".join([START, *lines, END])


def with_block(readme: str, block: str) -> str:
    """`readme` with the text between (and including) its markers replaced by `block`."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"mutation: README.md must hold {START} and {END} once each")
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    if not rest.count(END):
        raise SystemExit(f"mutation: README.md's {END} comes before {START}")
    return head + block + tail


def write_readme(results: str) -> None:
    text = README.read_text("utf-8")
    updated = with_block(text, readme_block(results))
    if updated != text:
        README.write_text(updated, "utf-8")


def report(hand: list[tuple[str, str, bool]]) -> int:
    config = tomllib.loads(EQUIVALENTS.read_text("utf-8"))
    target = float(config["target"])
    strict: list[str] = config["strict"]
    marked: dict[str, dict[str, str]] = {
        "equivalent": config.get("equivalent", {}),
        "wording": config.get("wording", {}),
    }
    found = verdicts()
    rows: dict[str, Row] = defaultdict(Row)
    survivors: list[str] = []
    for name, status in found.items():
        module, _ = function_of(name)
        row = rows[module]
        row.statuses[status] += 1
        if status != "survived":
            if status not in CAUGHT:
                survivors.append(f"{name}: {status}")
            continue
        if name in marked["equivalent"]:
            row.equivalent += 1
        elif name in marked["wording"]:
            row.wording += 1
        else:
            survivors.append(name)
    problems: list[str] = []
    for module, why, killed in hand:
        rows[module].hand += 1
        rows[module].hand_killed += killed
        if not killed:
            problems.append(f"hand-made mutant survives in {module}: {why}")
    for kind, names in marked.items():
        for name in names:
            if found.get(name) != "survived":
                problems.append(f"{kind} entry {name} is {found.get(name, 'gone')}: remove it")
    for name in survivors:
        module, function = function_of(name.partition(":")[0])
        if f"{module}.{function}" in strict:
            problems.append(f"{name} survives in {module}.{function}, which must be fully killed")
    for module, row in rows.items():
        if row.rate < target:
            problems.append(f"{module}: {row.rate:.1f}% killed, under the {target:.0f}% target")

    version = metadata.version("mutmut")
    lines = table(rows, target)
    body = "\n".join(
        [
            "# Mutation testing results",
            "",
            "Written by `make mutation` (`python -m mutation`) from mutmut's own verdicts; "
            "never edit by hand.",
            f"mutmut {version}; mutants = mutmut's plus the hand-made ones of "
            "mutation/hand_mutants.toml; kill rate = killed / (mutants - equivalent - wording "
            f"only); target {target:.0f}% per module. Equivalents and their reasons: "
            "mutation/equivalents.toml.",
            "",
            *lines,
            "",
        ]
    )
    RESULTS.write_text(body, "utf-8")
    write_readme(body)
    print("\n".join(lines))
    if survivors:
        print("\nsurvivors (see each with `.venv/bin/mutmut show NAME`):")
        print("\n".join(f"  {name}" for name in sorted(survivors)))
    if problems:
        print("\nmutation: " + "\nmutation: ".join(problems), file=sys.stderr)
        return 1
    written = RESULTS.relative_to(ROOT)
    print(f"\nevery module at or above {target:.0f}%; table written to {written} and README.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="mutmut workers (default 2)")
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ from the last run")
    parser.add_argument("--report-only", action="store_true", help="only read the last run")
    parser.add_argument("--no-hand", action="store_true", help="skip the hand-made mutants")
    args = parser.parse_args(argv)
    if not args.report_only:
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        run = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(args.workers)], cwd=ROOT, check=False
        )
        if run.returncode != 0:
            print(f"mutation: mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return run.returncode
    hand: list[tuple[str, str, bool]] = []
    if not args.no_hand:
        print("hand-made mutants (hand_mutants.toml):")
        hand = hand_mutants()
    return report(hand)


if __name__ == "__main__":
    sys.exit(main())
