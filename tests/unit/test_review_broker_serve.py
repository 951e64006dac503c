"""Hostile review of `keyturn broker serve`'s transport: an unauthenticated network peer
must not be able to hold the server's threads (slow-drip clients, connection floods)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from keyturn.cli.broker_cmd import make_server
from keyturn.services.broker import BrokerRequest, BrokerResponse


class Answers:
    def handle(self, request: BrokerRequest) -> BrokerResponse:
        return BrokerResponse(404, {"error": "no"})


@pytest.fixture
def server() -> Iterator[Any]:
    bound = make_server(Answers(), "127.0.0.1", 0, read_deadline=1.0, max_connections=4)  # type: ignore[arg-type]
    thread = threading.Thread(target=bound.serve_forever, daemon=True)
    thread.start()
    try:
        yield bound
    finally:
        bound.shutdown()
        bound.server_close()


def _hung_up(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.05)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_slow_drip_client_is_cut_off_at_the_read_deadline(server: Any) -> None:
    """One header byte every 0.2 s never trips a per-recv timeout; the total deadline does."""
    sock = socket.create_connection(server.server_address)
    sock.sendall(b"POST /v1/list HTTP/1.1\r\nHost: x\r\n")
    cut = False
    for _ in range(40):  # 8 s of dripping, well past the 1 s deadline
        try:
            sock.sendall(b"X")
        except OSError:
            cut = True
            break
        if _hung_up(sock):
            cut = True
            break
        time.sleep(0.2)
    sock.close()
    assert cut, "the server kept a slow-drip connection open past its read deadline"


def test_connections_beyond_the_cap_are_closed_at_once(server: Any) -> None:
    """Idle connections beyond max_connections are not given a thread each."""
    held = [socket.create_connection(server.server_address) for _ in range(4)]
    extra = socket.create_connection(server.server_address)
    try:
        extra.settimeout(5)
        assert extra.recv(1024)[:12] in (b"", b"HTTP/1.0 503")
    finally:
        for sock in (*held, extra):
            sock.close()
