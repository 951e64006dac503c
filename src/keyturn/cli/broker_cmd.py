"""`keyturn broker serve`: the lease broker on this host (stdlib ThreadingHTTPServer).

The same BrokerService the Lambda runs (handlers/broker.py); this module only moves bytes.
It binds 127.0.0.1 by default and refuses a non-loopback address without
`--allow-remote`: plain HTTP carries the issued secrets, so a remote bind belongs behind a
TLS-terminating proxy, which the operator must choose knowingly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import typer

from keyturn.adapters.event_log import JsonLinesSink, JsonStreamSink
from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.ports import EventSink
from keyturn.services.broker import MAX_BODY, BrokerRequest, BrokerService

broker_app = typer.Typer(
    help="The lease broker: lease credentials for callers without IAM rights.", no_args_is_help=True
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


READ_DEADLINE = 30.0  # seconds a client has to send its whole request (headers and body)
# Connections served at once; more are closed at once (a thread each is what a flood would
# otherwise cost). 256, not fewer: an iam_user lease holds its connection through the
# ready-wait (~15 s), and a fleet starting together (bench/bench_broker.py: 100 callers at
# once) must all be answered.
MAX_CONNECTIONS = 256


def make_server(
    service: BrokerService | None,
    host: str,
    port: int,
    max_body: int = MAX_BODY,
    *,
    read_deadline: float = READ_DEADLINE,
    max_connections: int = MAX_CONNECTIONS,
) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; `service` may be set later as `server.service`
    (the default server id is the bound address, known only after binding).

    Against unauthenticated peers holding threads: a socket timeout bounds each read, but a
    client dripping one byte at a time never trips it, so a timer also shuts the connection
    `read_deadline` seconds after it opened unless the whole request has been read by then;
    and at most `max_connections` are served at once (the rest are closed unanswered)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "keyturn-broker"
        sys_version = ""
        timeout = read_deadline  # each read; the timer below bounds them all together

        def setup(self) -> None:
            super().setup()
            self._deadline = threading.Timer(read_deadline, self._cut)
            self._deadline.daemon = True
            self._deadline.start()

        def _cut(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def finish(self) -> None:
            self._deadline.cancel()
            super().finish()

        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def _answer(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            # Never read more than one byte past the limit: the service answers 413 to
            # what it sees, and a huge body is not pulled into memory first.
            body = self.rfile.read(min(max(length, 0), max_body + 1)) if length > 0 else b""
            if length > max_body:
                self.close_connection = True
            self._deadline.cancel()  # read in time: issuing may take longer (the ready-wait)
            chosen: BrokerService = self.server.service  # type: ignore[attr-defined]
            response = chosen.handle(BrokerRequest(self.command, self.path, body))
            payload = _dumps(response.body)
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the service writes one audit event per request instead

    slots = threading.BoundedSemaphore(max_connections)

    class Server(_Server):
        def process_request(self, request: Any, client_address: Any) -> None:
            if not slots.acquire(blocking=False):
                self.shutdown_request(request)  # full: closed unanswered, no thread
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                slots.release()

    server = Server((host, port), Handler)
    server.service = service  # type: ignore[attr-defined]
    return server


class _Server(ThreadingHTTPServer):
    """One thread per request, with a listen backlog for many callers at once.

    socketserver's default backlog is 5: 100 clients connecting at once (a fleet's
    credential_process at boot, bench/bench_broker.py) had connections reset before the
    accept loop reached them. Each request still gets its own thread, so an iam_user
    lease's ready-wait (~15 s) never holds up another caller's request.
    """

    daemon_threads = True
    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn


def _dumps(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()


@broker_app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8200,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a non-loopback --host (put TLS in front)."),
    ] = False,
    events: Annotated[
        str | None,
        typer.Option("--events", help="Audit events as JSON lines to this file (default stderr)."),
    ] = None,
) -> None:
    """Serve issue/renew/revoke/list to callers who prove their identity with a signed
    sts:GetCallerIdentity (docs/broker.md). Runs with this process's AWS credentials: the
    issuer's."""
    from pathlib import Path

    from keyturn.wiring_broker import build_broker

    if not 0 <= port <= 65535:
        raise BadInputError(f"--port {port}: not a port number")
    if not is_loopback(host) and not allow_remote:
        raise BadInputError(
            f"--host {host} is not a loopback address: pass --allow-remote to serve other "
            "hosts (the broker speaks plain HTTP; put a TLS proxy in front)"
        )
    cli: CliContext = ctx.obj
    loaded = cli.settings()
    sink: EventSink = JsonLinesSink(Path(events)) if events else JsonStreamSink(sys.stderr)
    try:
        server = make_server(None, host, port)
    except OSError as exc:
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    address = f"http://{bound_host}:{bound_port}"
    service = build_broker(loaded, sink, default_server_id=address)
    server.service = service  # type: ignore[attr-defined]
    server_id = loaded.settings.broker.server_id or address
    print(f"keyturn broker listening on {address} (server id {server_id})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
