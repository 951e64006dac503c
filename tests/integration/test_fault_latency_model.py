"""The fault proxy's latency model against real moto: throttling beyond a service's rate,
new keys refused until they have propagated, latency counted. No timed assertion: the
rates are chosen so a bucket cannot refill during the test, and propagation is polled."""

from __future__ import annotations

import socket
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from keyturn.sandbox.aws import LocalAws
from keyturn.sandbox.faults import FaultPlan, FaultProxy

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def client(
    url: str,
    service: str,
    key_id: str = "AKIAEXAMPLE000000000",
    secret: str = "x",  # noqa: S107 - fake
) -> object:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=NO_RETRY,
    )


def code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.fixture
def users(aws: LocalAws) -> None:
    for name in ("alice", "bob"):
        aws.create_user(name)


def test_the_request_beyond_a_service_burst_is_throttled_as_aws_does(
    aws: LocalAws, users: None
) -> None:
    # A bucket of 3 that refills once every 1,000 s: the 4th call in a row is refused.
    plan = FaultPlan(rate_limits={"iam": 0.001}, rate_bursts={"iam": 3})
    with FaultProxy(aws.url, plan) as proxy:
        iam = client(proxy.url, "iam")
        for _ in range(3):
            iam.list_users()  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as caught:
            iam.list_users()  # type: ignore[attr-defined]
        assert code(caught.value) == "Throttling"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "Rate exceeded" in str(caught.value)
        # Another service has its own (here: no) limit.
        sts = client(proxy.url, "sts")
        sts.get_caller_identity()  # type: ignore[attr-defined]
        assert proxy.counts["throttled iam"] == 1, (proxy.counts, proxy.calls)
        assert proxy.calls["iam:ListUsers"] == 4
        assert proxy.calls["sts:GetCallerIdentity"] == 1


def test_a_new_key_is_refused_until_it_has_propagated(aws: LocalAws, users: None) -> None:
    # The first call must reach the proxy within `propagation` of the key's creation: on a
    # loaded machine (a parallel run) building a client alone can take a good part of a
    # second, so the window is generous and the STS model is loaded before the clock starts.
    plan = FaultPlan(propagation=1.5)
    with FaultProxy(aws.url, plan) as proxy:
        iam = client(proxy.url, "iam")
        client(proxy.url, "sts")  # loads the model: the client below is built from cache
        made = iam.create_access_key(UserName="alice")["AccessKey"]  # type: ignore[attr-defined]
        sts = client(proxy.url, "sts", made["AccessKeyId"], made["SecretAccessKey"])
        with pytest.raises(ClientError) as caught:
            sts.get_caller_identity()  # type: ignore[attr-defined]
        assert code(caught.value) == "InvalidClientTokenId"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Other keys are not affected.
        client(proxy.url, "sts").get_caller_identity()  # type: ignore[attr-defined]
        refusals: set[str] = set()
        arn = None
        deadline = time.monotonic() + 30
        while arn is None and time.monotonic() < deadline:
            try:
                arn = sts.get_caller_identity()["Arn"]  # type: ignore[attr-defined]
            except ClientError as exc:
                refusals.add(code(exc))
                time.sleep(0.05)
        assert refusals <= {"InvalidClientTokenId"}
        assert arn is not None
        assert arn.endswith(":user/alice")
        assert proxy.counts["keys delayed"] == 1
        assert proxy.counts["unpropagated"] >= 1


def test_a_key_created_past_the_proxy_is_not_delayed(aws: LocalAws, users: None) -> None:
    seeded = aws.add_key("bob")
    with FaultProxy(aws.url, FaultPlan(propagation=600)) as proxy:
        sts = client(proxy.url, "sts", seeded.key_id, seeded.secret)
        assert sts.get_caller_identity()["Arn"].endswith(":user/bob")  # type: ignore[attr-defined]
        assert proxy.counts["unpropagated"] == 0


def test_latency_is_added_to_every_aws_call_and_counted(aws: LocalAws, users: None) -> None:
    with FaultProxy(aws.url, FaultPlan(latency=0.001)) as proxy:
        iam = client(proxy.url, "iam")
        iam.list_users()  # type: ignore[attr-defined]
        iam.list_access_keys(UserName="alice")  # type: ignore[attr-defined]
        assert proxy.counts["latency"] == 2


def test_the_model_is_off_by_default(aws: LocalAws, users: None) -> None:
    with FaultProxy(aws.url) as proxy:
        iam = client(proxy.url, "iam")
        made = iam.create_access_key(UserName="alice")["AccessKey"]  # type: ignore[attr-defined]
        sts = client(proxy.url, "sts", made["AccessKeyId"], made["SecretAccessKey"])
        assert sts.get_caller_identity()["Arn"].endswith(":user/alice")  # type: ignore[attr-defined]
        assert not any(k in proxy.counts for k in ("latency", "unpropagated", "keys delayed"))


def test_each_answer_is_one_write_on_a_no_delay_socket(
    aws: LocalAws, users: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy adds no latency of its own on a kept-alive connection (issue 19): written
    as a head and then a body, without TCP_NODELAY, a response's second segment waited for
    the client's delayed ACK, ~40 ms a call. Checked by what the proxy does to its sockets
    (one write per answer, TCP_NODELAY set), not by a time; bench/bench_enforce.py measures
    the per-call latency through the proxy."""
    writes: list[tuple[int, int]] = []  # (nodelay, bytes) per write the proxy made
    proxy_port: list[int] = []
    original = socket.socket.sendall

    def spy(self: socket.socket, data: Any, *args: Any) -> None:
        if proxy_port and self.getsockname()[1] == proxy_port[0]:
            writes.append((self.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), len(data)))
        original(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", spy)
    with FaultProxy(aws.url) as proxy:
        proxy_port.append(int(proxy.url.rsplit(":", 1)[1]))
        iam = client(proxy.url, "iam")
        calls = 5
        for _ in range(calls):
            iam.list_users()  # type: ignore[attr-defined]
    assert len(writes) == calls, writes
    assert all(nodelay for nodelay, _ in writes), writes
