"""A loopback HTTP proxy in front of a local server; a subclass decides each request's fate.

The fault injectors for the local AWS emulator (`faults.FaultProxy`) and for OpenBao
(`vault_proxy.VaultFaultProxy`) are both this: listen on 127.0.0.1, read a request, then
answer it with a fault, drop it, or forward it and pass the server's answer back. This
class owns the listening, the forwarding and the writing; `serve` is the one decision.

Written by hand because the faults must be the service's own: an AWS error body in the
request's protocol, a Vault `{"errors": [...]}`, a stall *after* the service acted. TCP-level
fault tools (toxiproxy and the like) cannot write those, and an HTTP mocking library would
replace the real server instead of standing in front of it.
"""

from __future__ import annotations

import http
import http.client
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, Self

HOP_BY_HOP = frozenset({"transfer-encoding", "connection", "content-length", "keep-alive"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Message
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()  # close the connection without an answer
Verdict = Answer | _Drop


class _Server(ThreadingHTTPServer):
    # Hundreds of concurrent clients (the rotation bench) overflow the default backlog of 5,
    # and a refused SYN costs the client a one-second retransmit: latency no model asked for.
    request_queue_size = 512
    daemon_threads = True


class ForwardingProxy:
    """`with Proxy(upstream) as proxy: proxy.url`; subclasses override `serve`."""

    protocol_version = "HTTP/1.1"
    forward_timeout = 120.0
    # Forward the client's Host header as sent. A server that checks SigV4 signatures (moto
    # with its authentication on) computes them over the Host the client signed: the
    # proxy's. Off by default, as the fault proxies have always forwarded (http.client then
    # writes the upstream's own Host).
    keep_host = False

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http":
            raise ValueError(f"the proxy forwards to plain HTTP only, not {upstream!r}")
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 80
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._listen_port = 0
        self.url = ""

    # -- the decision ---------------------------------------------------------------------

    def serve(self, request: Request) -> Verdict:
        """What the client gets for `request`; by default the server's own answer."""
        return self.forward(request)

    def forward(self, request: Request) -> Answer:
        connection = http.client.HTTPConnection(
            self._host, self._port, timeout=self.forward_timeout
        )
        try:
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() != "connection" and (self.keep_host or name.lower() != "host")
            }
            connection.request(request.method, request.path, body=request.body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.read(), response.getheaders())
        finally:
            connection.close()

    # -- listening --------------------------------------------------------------------------

    def up(self) -> Self:
        """Listen (again, on the same port after `down`)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._listen_port), self._handler_class())
        self._listen_port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self._listen_port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: the next connection is refused, as with a stopped server."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = proxy.protocol_version

            def setup(self) -> None:
                super().setup()
                # Without TCP_NODELAY, Nagle holds a small write back until the previous
                # one is ACKed, and a kept-alive client delays that ACK by up to 40 ms:
                # latency no model asked for (issue 19 measured 49 ms a call at 0 ms).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                return None  # quiet: tests read their own output

            def do_GET(self) -> None:
                self._serve()

            do_POST = do_PUT = do_DELETE = do_HEAD = do_LIST = do_GET

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy.serve(Request(self.command, self.path, self.headers, body))
                if isinstance(verdict, _Drop):
                    self.close_connection = True
                    return
                # One write: status line, headers and body in a single segment (send_response
                # and end_headers would flush the head alone, then the body after it). The
                # status line carries this server's protocol: an HTTP/1.0 proxy (the Vault
                # fault proxy) closes after each answer, and a response claiming HTTP/1.1
                # would let the client reuse a connection about to close.
                keep_alive = self.protocol_version >= "HTTP/1.1" and not self.close_connection
                self.wfile.write(_response_bytes(verdict, self.protocol_version, keep_alive))

        return Handler


def _response_bytes(answer: Answer, protocol: str = "HTTP/1.1", keep_alive: bool = True) -> bytes:
    """The whole response to `answer` in `protocol`, ready for one write; `Connection: close`
    when the server will close after it (as send_response would have said)."""
    reason = http.HTTPStatus(answer.status).phrase if answer.status in _KNOWN else ""
    lines = [f"{protocol} {answer.status} {reason}"]
    lines += [
        f"{name}: {value}" for name, value in answer.headers if name.lower() not in HOP_BY_HOP
    ]
    lines.append(f"Content-Length: {len(answer.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body


_KNOWN = frozenset(status.value for status in http.HTTPStatus)
