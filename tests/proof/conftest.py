"""The proof suite's shared machinery: a ledger of every secret the emulator hands out, a
CLI runner, and the crash matrix's rows (printed at the end of the run by
tests/crash_matrix_summary.py).

The ledger wraps moto's own backends (the server runs in this process), so it sees every
secret access key created during a test, by the seeding helpers, by keyturn in a subprocess,
or by STS, including keys whose users are deleted before the test looks.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keyturn.sandbox.aws import LocalAws
from tests.crash_matrix_summary import record

KEYTURN = str(Path(sys.executable).with_name("keyturn"))


@dataclass
class SecretLedger:
    """Every secret (IAM access key secret, STS secret and session token) created."""

    secrets: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *values: str | None) -> None:
        with self.lock:
            self.secrets.update(value for value in values if value)

    def found_in(self, text: str | bytes) -> list[str]:
        """The secrets (shortened, so the failure itself leaks nothing useful) in `text`."""
        with self.lock:
            known = list(self.secrets)
        if isinstance(text, bytes):
            return [s[:4] + "..." for s in known if s.encode() in text]
        return [s[:4] + "..." for s in known if s in text]


def _recording(original: Callable[..., Any], ledger: SecretLedger) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        ledger.add(
            getattr(result, "secret_access_key", None),
            getattr(result, "session_token", None),
        )
        return result

    return wrapper


@pytest.fixture
def ledger(aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> SecretLedger:
    from moto.iam.models import IAMBackend
    from moto.sts.models import STSBackend

    found = SecretLedger()
    monkeypatch.setattr(
        IAMBackend, "create_access_key", _recording(IAMBackend.create_access_key, found)
    )
    for name in ("assume_role", "get_federation_token", "get_session_token"):
        monkeypatch.setattr(STSBackend, name, _recording(getattr(STSBackend, name), found))
    return found


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(aws: LocalAws, tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        **aws.env(),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KEYTURN_LEASES_TIDY_MARGIN": "0s",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "KEYTURN_LEASES_READY_INTERVAL_SECONDS": "0",
        "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
        "SOURCEMAIL": "keys@example.com",
        "COLUMNS": "200",
    }


@pytest.fixture
def keyturn(cli_env: dict[str, str]) -> Run:
    """`keyturn ARGS` as a subprocess; `extra` adds (or, with "", removes) env variables."""

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**cli_env, **(extra or {})}
        env = {k: v for k, v in env.items() if v != ""}
        return subprocess.run(
            [KEYTURN, *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )

    return run


# -- the crash matrix, printed at the end of the run (tests/crash_matrix_summary.py) ------


@pytest.fixture
def matrix_row(request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """Record this case's row; "FAIL" unless the test reached its end and said otherwise."""
    notes: list[str] = []
    yield notes.append
    report = getattr(request.node, "rep_call", None)
    passed = report is not None and report.passed
    result = "ok" if passed else "FAIL"
    if report is not None and hasattr(report, "wasxfail"):  # a known bug, marked xfail
        result, notes = ("XFAIL", [report.wasxfail]) if report.skipped else ("XPASS", notes)
    record(request.node, request.node.callspec.id, result, "; ".join(notes))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
