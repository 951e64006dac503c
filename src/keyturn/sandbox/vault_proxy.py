"""A proxy in front of the local OpenBao server that can fail Vault the ways Vault fails.

Tests (and only tests) point keyturn's VAULT_ADDR at it. From a chosen request on (the
`trip` predicate, e.g. "the write of bob's pending entry"), every request gets:

- `sealed`: HTTP 503 `{"errors": ["Vault is sealed"]}`, what a sealed Vault answers;
- `denied`: HTTP 403 `{"errors": ["permission denied"]}`, a revoked or wrong token;
- `drop`: the connection closes without an answer (Vault died mid-request).

`down()` closes the listening socket, so new connections are refused (Vault stopped), and
`up()` listens again on the same port. Each request uses its own connection (HTTP/1.0), so
no kept-alive connection outlives `down()`. Faults are sticky until `calm()`: a fault that
strikes mid-run stays until the operator fixes Vault, and the later run goes through.

Why a proxy as well as a real seal: it can strike at *any* request of a rotation (between
promotion's writes, for instance), which no step checkpoint reaches.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

Fault = Literal["sealed", "denied", "drop"]
Trip = Callable[[int, str, str], bool]  # (request number from 1, method, path) -> strike?

ANSWERS: dict[str, tuple[int, str]] = {
    "sealed": (503, "Vault is sealed"),
    "denied": (403, "permission denied"),
}


class VaultFaultProxy:
    """Use as a context manager; `.url` is the VAULT_ADDR to give keyturn."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http":
            raise ValueError("the Vault fault proxy forwards to plain HTTP only")
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._lock = threading.Lock()
        self.fault: Fault | None = None
        self.trip: Trip | None = None
        self.tripped_at: int | None = None
        self.requests = 0
        self.log: list[tuple[str, str]] = []  # (method, path) of every request seen
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._listen_port = 0
        self.url = ""

    # -- controls -------------------------------------------------------------------------

    def strike(self, fault: Fault, trip: Trip | None = None) -> None:
        """Fail every request from the first one `trip` accepts (at once when None)."""
        with self._lock:
            self.fault, self.trip, self.tripped_at = fault, trip, None

    def calm(self) -> None:
        with self._lock:
            self.fault, self.trip, self.tripped_at = None, None, None

    def up(self) -> VaultFaultProxy:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self._listen_port), self._handler_class())
        server.daemon_threads = True
        self._listen_port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self._listen_port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: the next connection is refused, as with a stopped Vault."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> VaultFaultProxy:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # -- deciding and serving ---------------------------------------------------------------

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            self.log.append((method, path))
            if self.fault is None:
                return None
            if self.tripped_at is None:
                if self.trip is not None and not self.trip(self.requests, method, path):
                    return None
                self.tripped_at = self.requests
            return self.fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one connection per request, so down() leaves none open.
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def do_LIST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._decide(self.command, self.path)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault is not None:
                    status, message = ANSWERS[fault]
                    self._answer(status, [], json.dumps({"errors": [message]}).encode())
                    return
                status, headers, answer = proxy._forward(
                    self.command, self.path, self.headers.items(), body
                )
                self._answer(status, headers, answer)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                skip = ("transfer-encoding", "connection", "content-length", "content-type")
                for name, value in headers:
                    if name.lower() not in skip:
                        self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            forwarded = {k: v for k, v in headers if k.lower() not in ("host", "connection")}
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()
