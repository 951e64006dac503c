"""The crash matrix's table at the end of the run, serial or parallel (pytest-xdist).

A case's row travels on its test report (`user_properties`), not in a module-level list:
under xdist the tests run in worker processes, and only their reports reach the process that
prints the summary. This plugin is loaded by the root conftest, so the controller (which
never imports tests/proof/conftest.py: it does not collect) has the hooks.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

PROPERTY = "keyturn_crash_matrix_row"

MATRIX: list[tuple[str, str, str]] = []


def record(item: pytest.Item, case: str, result: str, note: str) -> None:
    """Attach `case`'s row to the item; the teardown report carries it to the summary."""
    item.user_properties.append((PROPERTY, (case, result, note)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a worker: its reports are replayed on the controller, which collects rows
    if report.when != "teardown":
        return
    for name, value in report.user_properties:
        if name == PROPERTY:
            case, result, note = value  # a list once it has crossed from a worker
            MATRIX.append((str(case), str(result), str(note)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MATRIX:
        return
    terminalreporter.section("keyturn crash matrix (SIGKILL at each step, then resume)")
    width = max(len(case) for case, _, _ in MATRIX)
    for case, result, note in sorted(MATRIX):
        terminalreporter.write_line(f"{case:<{width}}  {result:<5}  {note}")
    operations: dict[str, list[str]] = {}
    for case, result, _ in MATRIX:  # a case id is "operation:step..."
        operations.setdefault(case.split(":", 1)[0], []).append(result)
    for operation, results in sorted(operations.items()):
        bad = sum(1 for result in results if result not in ("ok", "XFAIL"))
        known = results.count("XFAIL")
        terminalreporter.write_line(
            f"{operation}: {len(results)} cases, {bad} failed, {known} known bug (xfail)"
        )
    failed = sum(1 for _, result, _ in MATRIX if result not in ("ok", "XFAIL"))
    known = sum(1 for _, result, _ in MATRIX if result == "XFAIL")
    terminalreporter.write_line(
        f"{len(MATRIX)} cases, {failed} failed, {known} known bug (xfail, see its reason)"
    )
