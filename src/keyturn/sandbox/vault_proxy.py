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

import json
import threading
from collections.abc import Callable
from typing import Literal

from keyturn.sandbox.http_proxy import DROP, Answer, ForwardingProxy, Request, Verdict

Fault = Literal["sealed", "denied", "drop"]
Trip = Callable[[int, str, str], bool]  # (request number from 1, method, path) -> strike?

ANSWERS: dict[str, tuple[int, str]] = {
    "sealed": (503, "Vault is sealed"),
    "denied": (403, "permission denied"),
}


class VaultFaultProxy(ForwardingProxy):
    """Use as a context manager; `.url` is the VAULT_ADDR to give keyturn."""

    # HTTP/1.0: one connection per request, so down() leaves none open.
    protocol_version = "HTTP/1.0"
    forward_timeout = 60.0

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._lock = threading.Lock()
        self.fault: Fault | None = None
        self.trip: Trip | None = None
        self.tripped_at: int | None = None
        self.requests = 0
        self.log: list[tuple[str, str]] = []  # (method, path) of every request seen

    # -- controls -------------------------------------------------------------------------

    def strike(self, fault: Fault, trip: Trip | None = None) -> None:
        """Fail every request from the first one `trip` accepts (at once when None)."""
        with self._lock:
            self.fault, self.trip, self.tripped_at = fault, trip, None

    def calm(self) -> None:
        with self._lock:
            self.fault, self.trip, self.tripped_at = None, None, None

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

    def serve(self, request: Request) -> Verdict:
        fault = self._decide(request.method, request.path)
        if fault == "drop":
            return DROP
        if fault is not None:
            status, message = ANSWERS[fault]
            payload = json.dumps({"errors": [message]}).encode()
            return Answer(status, payload, [("Content-Type", "application/json")])
        return self.forward(request)
