"""Run the installed `keyturn` command as a user would: a subprocess, its exit code, its text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

KEYTURN = str(Path(sys.executable).with_name("keyturn"))

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def keyturn() -> Run:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        merged = {**os.environ, **(env or {})}
        for name, value in (env or {}).items():
            if value == "":
                merged.pop(name, None)  # "" means: unset this variable
        return subprocess.run(
            [KEYTURN, *args], env=merged, capture_output=True, text=True, timeout=120
        )

    return run


def assert_one_clean_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Bad input: the given exit code, one line on stderr, no traceback, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]
