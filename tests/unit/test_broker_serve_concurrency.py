"""`broker serve` answers many callers connecting at once (issue 14's broker bench).

With socketserver's default listen backlog (5), 100 clients connecting together had
connections reset before the accept loop reached them; each must get its answer. The
service is a stub that holds each request a little, as a real issue holds its thread
(an iam_user lease waits for its key to work): nothing here talks to AWS.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from keyturn.cli.broker_cmd import make_server
from keyturn.services.broker import BrokerRequest, BrokerResponse

CALLERS = 100


class HeldService:
    """Answers every request after `release` is set (all callers are then in flight)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = 0
        self._lock = threading.Lock()

    def handle(self, request: BrokerRequest) -> BrokerResponse:
        with self._lock:
            self.arrived += 1
            if self.arrived == CALLERS:
                self.release.set()
        self.release.wait(timeout=30)
        return BrokerResponse(200, {"path": request.path})


@pytest.fixture
def served() -> Iterator[tuple[str, int, HeldService]]:
    service = HeldService()
    server = make_server(service, "127.0.0.1", 0)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[0]), int(server.server_address[1]), service
    finally:
        server.shutdown()
        server.server_close()


def test_a_hundred_callers_at_once_are_all_answered_concurrently(
    served: tuple[str, int, HeldService],
) -> None:
    host, port, service = served
    start = threading.Barrier(CALLERS)

    def call(index: int) -> int:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        start.wait(timeout=30)
        try:
            connection.request("POST", f"/v1/list?{index}", body=b"{}")
            return connection.getresponse().status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        statuses = list(pool.map(call, range(CALLERS)))
    assert statuses == [200] * CALLERS
    # Every request was in the service at the same time: none waited for another's answer.
    assert service.release.is_set()
