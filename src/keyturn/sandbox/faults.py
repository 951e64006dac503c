"""A fault-injecting HTTP proxy for the local AWS emulator (tests and `make soak` only).

Point keyturn's `AWS_ENDPOINT_URL` at the proxy instead of moto and a deterministic share
of AWS API calls fails the way AWS fails in the field: `Throttling` (HTTP 400, "Rate
exceeded"), `ServiceUnavailable` (HTTP 503), a dropped connection, or a stall after the
request reached the service (the client times out although the call took effect, the
hardest case for idempotency). Chosen actions can be refused outright, e.g. SES
`SendEmail` with `MessageRejected`. Everything goes through the real client stack:
botocore's retries, keyturn's error translation, the CLI's exit codes.

Only the query protocol (IAM, STS, SES: form bodies with `Action=`) is recognised by
action name; other requests can still be faulted at random. A refusal is written in the
protocol the request used (XML for the query protocol, JSON with `__type` for JSON-protocol
services such as Secrets Manager), because botocore recognises a throttle only when it can
parse the error code: a wrong format turns a retryable throttle into a hard failure.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

ERROR_XML = (
    "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
    "</Error><RequestId>keyturn-fault-proxy</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    json_code: str | None = None  # the code JSON-protocol services use, when it differs


THROTTLING = Refusal(400, "Throttling", "Rate exceeded", json_code="ThrottlingException")
UNAVAILABLE = Refusal(503, "ServiceUnavailable", "Service is unavailable, try again")
MESSAGE_REJECTED = Refusal(400, "MessageRejected", "Email address is not verified.")


@dataclass
class FaultPlan:
    """Shares of API calls (0..1) to fault, by kind; `refuse` always refuses an action."""

    throttle: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 2.0
    refuse: dict[str, Refusal] = field(default_factory=dict)
    only_actions: frozenset[str] | None = None  # random faults only for these actions


class FaultProxy:
    """Use as a context manager; `.url` is the endpoint to give keyturn."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, seed: int = 7) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self.plan = plan or FaultPlan()
        self._random = random.Random(seed)  # noqa: S311 - fault choice, not security
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calm(self) -> None:
        """No more faults from now on (the "later run" that completes the work)."""
        self.plan = FaultPlan()

    # -- deciding -------------------------------------------------------------------------

    def _decide(self, path: str, action: str | None) -> str:
        plan = self.plan
        with self._lock:
            self.counts["requests"] += 1
            if path.startswith("/moto-api"):
                return "pass"
            if action is not None and action in plan.refuse:
                self.counts[f"refused {action}"] += 1
                return "refuse"
            if plan.only_actions is not None and action not in plan.only_actions:
                return "pass"
            roll = self._random.random()
            for kind in ("throttle", "server_error", "drop", "stall"):
                share: float = getattr(plan, kind)
                if roll < share:
                    self.counts[kind] += 1
                    return kind
                roll -= share
            return "pass"

    # -- serving --------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None  # quiet: tests read their own output

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = _action(body)
                verdict = proxy._decide(self.path, action)
                if verdict == "drop":
                    self.close_connection = True
                    return
                if verdict in ("throttle", "server_error", "refuse"):
                    refusal = {"throttle": THROTTLING, "server_error": UNAVAILABLE}.get(
                        verdict
                    ) or proxy.plan.refuse[action or ""]
                    self._error(refusal, json_protocol="X-Amz-Target" in self.headers)
                    return
                status, headers, answer = proxy._forward(
                    self.command, self.path, self.headers, body
                )
                if verdict == "stall":
                    # The service did the work; the client never hears about it.
                    time.sleep(proxy.plan.stall_seconds)
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _error(self, refusal: Refusal, *, json_protocol: bool) -> None:
                if json_protocol:
                    code = refusal.json_code or refusal.code
                    payload = json.dumps({"__type": code, "message": refusal.message}).encode()
                    content_type = "application/x-amz-json-1.1"
                else:
                    kind = "Receiver" if refusal.status >= 500 else "Sender"
                    payload = ERROR_XML.format(
                        kind=kind, code=refusal.code, message=refusal.message
                    ).encode()
                    content_type = "text/xml"
                self.send_response(refusal.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _forward(
        self, method: str, path: str, headers: object, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
        try:
            items = getattr(headers, "items")()  # noqa: B009 - http.client.HTTPMessage
            forwarded = {k: v for k, v in items if k.lower() not in ("host", "connection")}
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _action(body: bytes) -> str | None:
    if not body.startswith(b"Action=") and b"&Action=" not in body:
        return None
    found = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
    return found[0] if found else None
