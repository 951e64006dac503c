"""A separate `moto_server` process on 127.0.0.1 and a free port, always stopped.

Separate (not moto's in-process ThreadedMotoServer) so the emulator's CPU time is not
charged to the benchmark process, and keyturn talks to it over real HTTP as it would to AWS.
It runs moto's own server application through bench/moto_app.py, which adds a request
counter and a seeding route under /bench-api/ and passes every AWS request to moto unchanged.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServerProcess:
    """`with MotoServerProcess() as moto: moto.url` -- started, ready, then stopped."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> MotoServerProcess:
        # werkzeug logs every request; keep it off the terminal but readable on failure.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.moto_app", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=BENCH_DIR.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Terminate, then kill if it has not exited within STOP_TIMEOUT_S."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, limit: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=5):  # noqa: S310 - loopback URL
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(
            f"moto_server not ready after {READY_TIMEOUT_S:.0f}s:\n{self.log_tail()}"
        )

    def __enter__(self) -> MotoServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
