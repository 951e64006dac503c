"""Hostile review of the broker client: where the issued secret travels."""

from __future__ import annotations

import pytest
from botocore.credentials import Credentials

from keyturn.adapters.broker_client import BrokerClient
from keyturn.domain.errors import BadInputError

CREDS = Credentials("AKIAEXAMPLEEXAMPLE12", "not-a-real-secret")


def client(url: str) -> BrokerClient:
    return BrokerClient(
        url, CREDS, sts_url="https://sts.us-east-1.amazonaws.com", region="us-east-1"
    )


@pytest.mark.parametrize(
    "url", ["http://broker.example.com", "http://10.0.0.7:8200", "http://[2001:db8::1]:8200"]
)
def test_plain_http_to_another_host_is_refused(url: str) -> None:
    """The answer carries a secret access key: over plain HTTP any network peer on the path
    reads it (and a proof in flight is a bearer token for its request)."""
    with pytest.raises(BadInputError, match="https"):
        client(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://broker.example.com",
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "http://[::1]:8200",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert client(url).url == url
