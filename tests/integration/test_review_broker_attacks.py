"""Hostile review of the broker (insider / network peer): each test is one attack."""

from __future__ import annotations

import json

import pytest

from tests.integration.broker_fixtures import World, broker
from tests.integration.test_broker_moto import raw_post, signed

__all__ = ["broker"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda auth: auth + ",",
        lambda auth: auth.replace("Signature=", "Signature= "),
        lambda auth: auth.replace(", SignedHeaders=", ",SignedHeaders="),
        lambda auth: (
            auth[: auth.index("Signature=") + 10] + auth[auth.index("Signature=") + 10 :].upper()
        ),
    ],
    ids=["trailing-comma", "space-in-signature", "no-space", "upper-hex"],
)
def test_a_captured_proof_replayed_with_a_reformatted_authorization_is_refused(
    broker: World, mutate: object
) -> None:
    """A peer that saw one issue request in flight resends it with the Authorization header
    reformatted (same signature to STS, a different string to the replay guard)."""
    text = json.dumps({"role": "dev", "nonce": "captured"})
    proof = signed(broker, "alice", "/v1/issue", text)
    assert raw_post(broker, "/v1/issue", text, proof).status_code == 200
    users = broker.iam_users()
    auth = proof["headers"]["Authorization"]
    replay = {**proof, "headers": {**proof["headers"], "Authorization": mutate(auth)}}  # type: ignore[operator]
    response = raw_post(broker, "/v1/issue", text, replay)
    assert response.status_code == 401, response.text
    assert broker.iam_users() == users
