"""The broker on moto's server with authentication on: requesters with no IAM permission
lease through it; every hostile version of each input is refused with one line, an audit
event, and nothing created. moto checks the SigV4 signature of every proof the broker
executes (so a tampered signed header is refused by STS itself), and the broker checks the
values (server id, request hash, freshness, one use)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
import requests

from keyturn.domain.broker_proof import REQUEST_HASH_HEADER, SERVER_ID_HEADER, request_digest
from keyturn.domain.errors import AccessDeniedError, BadInputError, NotFoundError
from keyturn.sandbox.aws import REGION
from tests.integration.broker_fixtures import World, broker, user_arn

__all__ = ["broker"]


def sts_works(authed_url: str, key_id: str, secret: str, token: str | None = None) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=authed_url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )
    return str(sts.get_caller_identity()["Arn"])


def raw_post(world: World, path: str, text: str, proof: dict[str, Any]) -> requests.Response:
    body = json.dumps({"request": text, "proof": proof})
    return requests.post(world.url + path, data=body, timeout=30)


def signed(world: World, who: str, path: str, text: str) -> dict[str, Any]:
    return world.client(who).proof("POST", path, text)


def assert_refused(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert "\n" not in body["error"]
    return str(body["error"])


# -- the happy path, by a principal with no IAM permission ---------------------------------


def test_a_requester_without_iam_rights_cannot_create_users_itself(broker: World) -> None:
    key = broker.keys["alice"]
    iam = broker.authed.server.client("iam", key_id=key.key_id, secret=key.secret)
    with pytest.raises(Exception, match="AccessDenied"):
        iam.create_user(UserName="alice-did-it")


def test_iam_user_lease_issue_use_renew_revoke(broker: World) -> None:
    alice = broker.client("alice")
    issued = alice.issue("dev", timedelta(hours=1))
    assert issued.lease.owner == user_arn("alice")
    assert issued.lease.principal in broker.iam_users()
    arn = sts_works(broker.authed.url, issued.access_key_id, issued.secret_access_key)
    assert arn.endswith(f":user/{issued.lease.principal}")
    renewed, _ = alice.renew(issued.lease.lease_id, timedelta(hours=2))
    assert renewed.expires > issued.lease.expires
    assert [lease.lease_id for lease in alice.list_leases()] == [issued.lease.lease_id]
    outcome = alice.revoke(issued.lease.lease_id)
    assert outcome.ok
    assert issued.lease.principal not in broker.iam_users()


def test_an_assumed_role_lease_works_at_once(broker: World) -> None:
    issued = broker.client("alice").issue("deploy")
    arn = sts_works(
        broker.authed.url, issued.access_key_id, issued.secret_access_key, issued.session_token
    )
    assert ":assumed-role/deployer/" in arn
    assert issued.lease.owner == user_arn("alice")


def test_a_federation_token_lease_is_issued_to_its_owner(broker: World) -> None:
    """moto authenticates only IAM keys and assumed-role sessions, never a federation
    token's (it keeps no record of them), so with authentication on these credentials
    cannot be *used* here; the lease is proven issued, owned, and listed."""
    issued = broker.client("alice").issue("fed")
    assert issued.session_token
    assert issued.lease.owner == user_arn("alice")
    assert [lease.lease_id for lease in broker.client("alice").list_leases()] == [
        issued.lease.lease_id
    ]


# -- authorization -----------------------------------------------------------------------


def test_another_callers_lease_is_refused_and_untouched(broker: World) -> None:
    issued = broker.client("alice").issue("dev")
    bob = broker.client("bob")
    with pytest.raises(AccessDeniedError, match=r"not .*bob's lease"):
        bob.revoke(issued.lease.lease_id)
    with pytest.raises(AccessDeniedError):
        bob.renew(issued.lease.lease_id)
    assert bob.list_leases() == []
    assert issued.lease.principal in broker.iam_users()
    denied = [e for e in broker.events.seen if e["decision"] == "denied"]
    assert denied[-1]["caller"] == user_arn("bob")


def test_a_user_created_again_under_the_same_name_owns_none_of_the_old_leases(
    broker: World,
) -> None:
    """Hostile review: ownership by ARN alone let whoever re-creates a deleted user's name
    (iam:CreateUser) renew, revoke and list the old user's leases. The lease records the
    owner's AWS unique id (GetCallerIdentity's UserId), which the new user does not have."""
    alice = broker.client("alice")
    issued = alice.issue("dev", timedelta(hours=1))
    assert issued.lease.owner_id
    iam = broker.authed.client("iam")
    old_key = broker.keys["alice"].key_id
    iam.delete_access_key(UserName="alice", AccessKeyId=old_key)
    iam.delete_user(UserName="alice")
    (broker.keys["alice"],) = broker.authed.seed_user("alice")
    again = broker.client("alice")
    with pytest.raises(AccessDeniedError, match="earlier principal named"):
        again.renew(issued.lease.lease_id)
    with pytest.raises(AccessDeniedError):
        again.revoke(issued.lease.lease_id)
    assert again.list_leases() == []
    assert issued.lease.principal in broker.iam_users()  # untouched
    mine = again.issue("dev")  # the new alice owns what she issues
    assert [lease.lease_id for lease in again.list_leases()] == [mine.lease.lease_id]
    assert broker.client("ops").revoke(issued.lease.lease_id).ok  # admins still can


def test_the_roles_admin_may_manage_every_lease(broker: World) -> None:
    issued = broker.client("alice").issue("dev")
    ops = broker.client("ops")
    assert [lease.lease_id for lease in ops.list_leases()] == [issued.lease.lease_id]
    assert ops.revoke(issued.lease.lease_id).ok


@pytest.mark.parametrize(
    ("who", "role"),
    [("mallory", "dev"), ("bob", "secret"), ("alice", "nobody"), ("bob", "deploy")],
)
def test_a_caller_not_allowed_on_the_role_gets_nothing(broker: World, who: str, role: str) -> None:
    before = broker.iam_users()
    with pytest.raises(AccessDeniedError, match=r"not allowed|nobody may"):
        broker.client(who).issue(role)
    assert broker.iam_users() == before
    assert broker.client("ops").list_leases() == []


def test_unknown_role_is_404_without_the_list_of_roles(broker: World) -> None:
    with pytest.raises(NotFoundError, match="unknown role 'nope'") as raised:
        broker.client("alice").issue("nope")
    assert "dev" not in str(raised.value)


# -- hostile proofs ----------------------------------------------------------------------


TEXT = json.dumps({"role": "dev", "nonce": "n1"})


def test_a_proof_with_a_wrong_secret_is_refused_by_sts(broker: World) -> None:
    from dataclasses import replace

    key = broker.keys["alice"]
    broker.keys["forger"] = replace(key, secret="not-alices-secret")
    before = broker.iam_users()
    error = assert_refused(
        raw_post(broker, "/v1/issue", TEXT, signed(broker, "forger", "/v1/issue", TEXT)), 401
    )
    assert "refused by STS" in error
    assert broker.iam_users() == before


def test_a_tampered_signed_header_is_refused_by_sts(broker: World) -> None:
    """Signed for server B, header rewritten to this broker's id: the broker's own checks
    pass, and STS (moto, checking SigV4 over SignedHeaders) refuses the signature."""
    proof = broker.client("alice", server_id="http://other-broker").proof("POST", "/v1/issue", TEXT)
    proof["headers"][SERVER_ID_HEADER] = broker.url
    assert "refused by STS" in assert_refused(raw_post(broker, "/v1/issue", TEXT, proof), 401)


def test_a_proof_for_another_server_is_refused(broker: World) -> None:
    proof = broker.client("alice", server_id="http://other-broker").proof("POST", "/v1/issue", TEXT)
    error = assert_refused(raw_post(broker, "/v1/issue", TEXT, proof), 401)
    assert "another server" in error


def test_a_proof_for_another_request_is_refused(broker: World) -> None:
    proof = signed(broker, "alice", "/v1/list", json.dumps({"nonce": "x"}))
    error = assert_refused(raw_post(broker, "/v1/issue", TEXT, proof), 401)
    assert "different request" in error


def test_a_replayed_proof_is_refused(broker: World) -> None:
    text = json.dumps({"nonce": "once"})
    proof = signed(broker, "alice", "/v1/list", text)
    assert raw_post(broker, "/v1/list", text, proof).status_code == 200
    assert "already used" in assert_refused(raw_post(broker, "/v1/list", text, proof), 401)


def test_an_expired_proof_is_refused(broker: World, monkeypatch: pytest.MonkeyPatch) -> None:
    proof = signed(broker, "alice", "/v1/issue", TEXT)
    old = "20200101T000000Z"
    proof["headers"]["X-Amz-Date"] = old
    assert "expired" in assert_refused(raw_post(broker, "/v1/issue", TEXT, proof), 401)


def test_unsigned_and_unbound_proofs_are_refused(broker: World) -> None:
    proof = signed(broker, "alice", "/v1/issue", TEXT)
    unsigned = {
        **proof,
        "headers": {k: v for k, v in proof["headers"].items() if k != "Authorization"},
    }
    assert "not signed" in assert_refused(raw_post(broker, "/v1/issue", TEXT, unsigned), 401)
    auth = proof["headers"]["Authorization"].replace(";x-keyturn-request-sha256", "")
    unbound = {**proof, "headers": {**proof["headers"], "Authorization": auth}}
    assert "signed headers" in assert_refused(raw_post(broker, "/v1/issue", TEXT, unbound), 401)
    other_body = {**proof, "body": "Action=GetCallerIdentity&Version=2011-06-15&X=1"}
    assert "exactly" in assert_refused(raw_post(broker, "/v1/issue", TEXT, other_body), 401)
    other_host = {**proof, "headers": {**proof["headers"], "Host": "169.254.169.254"}}
    assert "STS host" in assert_refused(raw_post(broker, "/v1/issue", TEXT, other_host), 401)


# -- hostile bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (json.dumps({"request": {"role": "dev"}}).encode(), 400),
        (json.dumps({"request": "{bad", "proof": {}}).encode(), 400),
        (json.dumps({"request": "{}", "proof": "x"}).encode(), 401),
        (b"x" * (64 * 1024 + 10), 413),
    ],
)
def test_malformed_or_oversized_bodies_are_4xx(broker: World, body: bytes, status: int) -> None:
    before = broker.iam_users()
    assert_refused(requests.post(broker.url + "/v1/issue", data=body, timeout=30), status)
    assert broker.iam_users() == before
    assert broker.events.seen[-1]["status"] == status


def test_a_request_digest_covers_method_path_and_text() -> None:
    base = request_digest("POST", "/v1/issue", TEXT)
    assert base != request_digest("POST", "/v1/list", TEXT)
    assert base != request_digest("GET", "/v1/issue", TEXT)
    assert base != request_digest("POST", "/v1/issue", TEXT + " ")
    assert REQUEST_HASH_HEADER.lower() == "x-keyturn-request-sha256"


def test_bad_renew_input_is_400(broker: World) -> None:
    with pytest.raises(BadInputError):
        broker.client("alice").renew("not-a-lease-id")


def test_a_caller_over_its_rate_gets_429_with_retry_after(broker: World) -> None:
    from keyturn.services.caller_limits import CallerLimits

    broker.server.service._limits = CallerLimits(1, 2)
    alice = broker.client("alice")
    alice.list_leases()
    alice.list_leases()
    text = json.dumps({"nonce": "third"})
    response = raw_post(broker, "/v1/list", text, signed(broker, "alice", "/v1/list", text))
    assert "too many requests" in assert_refused(response, 429)
    assert int(response.headers["Retry-After"]) >= 1
    assert broker.client("bob").list_leases() == []  # bob is not throttled by alice


def test_the_lambda_handler_answers_a_function_url_event(
    broker: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Same service, Lambda transport: the function URL event in, the URL response out."""
    import base64

    from keyturn.handlers.broker import handler

    monkeypatch.setenv("KEYTURN_CONFIG", str(tmp_path / "keyturn.toml"))
    monkeypatch.setenv("KEYTURN_LEASES_SQLITE_PATH", str(tmp_path / "leases.db"))
    monkeypatch.setenv("KEYTURN_BROKER_SERVER_ID", "https://broker.example")
    client = broker.client("alice", server_id="https://broker.example")
    text = json.dumps({"role": "dev", "nonce": "lambda"})
    body = json.dumps({"request": text, "proof": client.proof("POST", "/v1/issue", text)})
    event = {
        "rawPath": "/v1/issue",
        "requestContext": {"http": {"method": "POST"}},
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }
    answer = handler(event, None)
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["lease"]["owner"] == user_arn("alice")
    again = handler(event, None)  # the same proof again: one use, whichever instance
    assert again["statusCode"] == 401
    junk = handler({**event, "body": "%%%"}, None)
    assert junk["statusCode"] == 400


def test_a_proof_is_used_once_across_instances_with_the_dynamodb_store(aws: Any) -> None:
    """Two broker instances share the lease table; the first to record a proof wins."""
    from datetime import UTC, datetime

    from keyturn.adapters.lease_dynamodb import DynamoLeaseStore
    from keyturn.adapters.replay_dynamodb import DynamoReplayGuard

    DynamoLeaseStore(aws.client("dynamodb"), "replay-proof").create_table()
    one = DynamoReplayGuard(aws.client("dynamodb"), "replay-proof")
    two = DynamoReplayGuard(aws.client("dynamodb"), "replay-proof")
    until = datetime.now(UTC) + timedelta(minutes=10)
    assert one.first_use("signature-a", until)
    assert not two.first_use("signature-a", until)
    assert two.first_use("signature-b", until)
