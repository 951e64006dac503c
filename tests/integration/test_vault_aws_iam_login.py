"""Vault's AWS IAM login: the signed GetCallerIdentity request hvac builds must be one that
STS accepts. OpenBao has no AWS auth method, so the request is replayed to moto's STS (with
authentication on), exactly as Vault's server would forward it to AWS."""

from __future__ import annotations

from typing import Any

import requests
from hvac import aws_utils

from tests.rotate_fixtures import AuthedAws


def signed_request(key_id: str, secret: str) -> Any:
    request = aws_utils.generate_sigv4_auth_request(header_value="vault.example.com")
    aws_utils.SigV4Auth(key_id, secret, None, "us-east-1").add_auth(request)
    return request


def replay(authed: AuthedAws, request: Any) -> requests.Response:
    # Vault posts to sts.amazonaws.com; the emulator stands in for it. The Host header
    # stays the signed one, so the signature is checked as AWS would check it.
    return requests.post(
        authed.url + "/", headers=dict(request.headers), data=request.body, timeout=30
    )


def test_hvac_signed_request_is_accepted_by_sts(authed: AuthedAws) -> None:
    (key,) = authed.seed_user("vault-login")
    response = replay(authed, signed_request(key.key_id, key.secret))
    assert response.status_code == 200, response.text[:200]
    assert "arn:aws:iam::123456789012:user/vault-login" in response.text


def test_a_wrong_secret_is_rejected(authed: AuthedAws) -> None:
    (key,) = authed.seed_user("vault-login2")
    response = replay(authed, signed_request(key.key_id, "not-the-secret"))
    assert response.status_code == 403


def test_iam_login_sends_that_request_to_vault(authed: AuthedAws, monkeypatch: Any) -> None:
    """keyturn's wiring logs in through hvac's iam_login with the session's credentials."""
    from keyturn.config import load_settings
    from keyturn.wiring import build_vault

    captured: dict[str, Any] = {}

    def fake_login(self: Any, url: str, use_token: bool = True, **kwargs: Any) -> dict[str, Any]:
        captured.update(kwargs["json"])
        return {"auth": {"client_token": "t"}}

    monkeypatch.setattr("hvac.adapters.Adapter.login", fake_login)
    settings = load_settings(
        flags={
            "vault.addr": "http://127.0.0.1:9",
            "vault.auth_method": "aws",
            "vault.aws_role": "keyturn",
        }
    ).settings
    build_vault(settings)
    assert captured["role"] == "keyturn"
    import base64
    import json

    headers = json.loads(base64.b64decode(captured["iam_request_headers"]))
    request = type(
        "R",
        (),
        {
            "headers": {k: v[0] for k, v in headers.items()},
            "body": base64.b64decode(captured["iam_request_body"]).decode(),
        },
    )
    response = replay(authed, request)
    assert response.status_code == 200, response.text[:200]
    assert ":user/keyturn-admin" in response.text
