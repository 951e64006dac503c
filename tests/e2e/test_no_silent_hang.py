"""No silent hang (issue 13 item 2): an endpoint that accepts and never answers becomes one
clear error line and exit 4, for AWS and for Vault; Ctrl-C while waiting exits 130.

The silent server listens on loopback only, holds every connection it accepts without
answering, and is closed at the end of each test. Nothing here asserts a time: the short
limits only keep the tests fast.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.cli import exit_codes
from keyturn.config import Settings
from tests.conftest import run_cli
from tests.e2e.conftest import assert_one_clean_error

pytestmark = pytest.mark.timeout(180)


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.accepted.set()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "KEYTURN_", "VAULT_"))
    }
    env.update(
        AWS_ACCESS_KEY_ID="AKIAEXAMPLEEXAMPLE00",
        AWS_SECRET_ACCESS_KEY="not-a-real-secret",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.environ.get("AWS_CONFIG_FILE", "/nonexistent"),
        AWS_SHARED_CREDENTIALS_FILE=os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    env.update(extra)
    return env


def test_a_silent_aws_endpoint_is_one_error_not_a_hang(silent: SilentServer) -> None:
    result = run_cli(
        _env(
            AWS_ENDPOINT_URL=silent.url,
            KEYTURN_AWS_TIMEOUT_SECONDS="3",
            KEYTURN_AWS_READ_TIMEOUT_SECONDS="1",
        ),
        "audit",
        "--format",
        "json",
        timeout=60,
    )
    line = assert_one_clean_error(result, exit_codes.ACCESS)
    assert line.startswith("error: iam:GenerateCredentialReport: no answer from")
    assert "aws.timeout_seconds" in line


def test_a_silent_vault_is_one_error_not_a_hang(silent: SilentServer, aws: object) -> None:
    env = {key: value for key, value in os.environ.items()}
    env.update(
        VAULT_ADDR=silent.url,
        VAULT_TOKEN="not-a-real-token",
        KEYTURN_VAULT_TIMEOUT_SECONDS="1",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    result = run_cli(env, "rotate", "alice", "--dry-run", "--path", "aws/{user}", timeout=60)
    line = assert_one_clean_error(result, exit_codes.ACCESS)
    assert "Vault did not answer in time (vault.timeout_seconds)" in line


def test_ctrl_c_while_waiting_exits_130(silent: SilentServer, tmp_path: Path) -> None:
    """SIGINT once the request is on the wire: exit 130, "interrupted", no traceback."""
    env = _env(AWS_ENDPOINT_URL=silent.url, KEYTURN_AWS_TIMEOUT_SECONDS="60")
    code = "from keyturn.cli.main import run; run()"
    with subprocess.Popen(
        [sys.executable, "-c", code, "audit"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert silent.accepted.wait(30), "keyturn never connected"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == exit_codes.INTERRUPTED, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted"


def test_default_limits_make_a_silent_endpoint_an_error_within_a_minute() -> None:
    """The deadline starts no attempt that could read past it: the worst case is the
    deadline plus one connect timeout (wiring.Deadline)."""
    aws = Settings().aws
    assert aws.timeout_seconds + aws.connect_timeout_seconds <= 60
    assert aws.read_timeout_seconds < aws.timeout_seconds
    vault = Settings().vault
    assert vault.timeout_seconds + 5 <= 60
