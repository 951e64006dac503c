"""Hostile review: KMS outage (cannot verify a seal) and a CLI rotation racing the Lambda."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from keyturn.config import load_settings
from keyturn.domain.errors import KeyturnError
from keyturn.handlers.rotate import handler
from keyturn.wiring import build_rotation
from tests.rotate_fixtures import AuthedAws


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch, authed: AuthedAws, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KEYTURN_ROTATE_STORE", "secretsmanager")
    monkeypatch.setenv("KEYTURN_ROTATE_PATH", f"o{uuid.uuid4().hex[:8]}/{{user}}")
    monkeypatch.setenv("KEYTURN_ROTATE_VERIFY_INTERVAL_SECONDS", "0")


@pytest.fixture
def kms_key(authed: AuthedAws, monkeypatch: pytest.MonkeyPatch) -> str:
    key = authed.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    arn: str = key["KeyMetadata"]["Arn"]
    monkeypatch.setenv("KEYTURN_TRUST_MAC_KEY", arn)
    authed.enroll_with = os.environ
    return arn


def served(authed: AuthedAws, user: str) -> dict[str, Any]:
    name = os.environ["KEYTURN_ROTATE_PATH"].replace("{user}", user)
    value = authed.client("secretsmanager").get_secret_value(
        SecretId=name, VersionStage="AWSCURRENT"
    )["SecretString"]
    found: dict[str, Any] = json.loads(value)
    return found


class _KmsDown:
    """KMS answering every MAC call with KMSInvalidStateException (key disabled, or a
    regional outage's error): moto's verify_mac ignores a disabled key, so the answer is
    emulated at the client."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def _down(self, **_: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "KMSInvalidStateException", "Message": "key is disabled"}},
            "VerifyMac",
        )

    verify_mac = _down
    generate_mac = _down

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_review_kms_outage_is_a_failure_never_verified(
    authed: AuthedAws, kms_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (_alice,) = authed.seed_user("alice", age_days=120)
    (_bob,) = authed.seed_user("bob", age_days=120)
    handler({"users": ["alice"]})  # a rotation whose journal must be verified on resume
    before = {u: authed.keys(u) for u in ("alice", "bob")}
    from keyturn.adapters.mac_kms import KmsAuthenticator

    real_init = KmsAuthenticator.__init__

    def down(self: Any, client: Any, key_id: str) -> None:
        real_init(self, _KmsDown(client), key_id)

    monkeypatch.setattr(KmsAuthenticator, "__init__", down)
    with pytest.raises(KeyturnError) as caught:
        handler({})
    assert "Traceback" not in str(caught.value)
    assert {u: authed.keys(u) for u in ("alice", "bob")} == before


def test_review_cli_rotation_racing_the_scheduled_resume_keeps_a_working_current_key(
    authed: AuthedAws, kms_key: str
) -> None:
    """The schedule's resume runs exactly between the CLI's CreateAccessKey and its store
    write (the CLI's intent is sealed with the same KMS key, so the Lambda believes it)."""
    (_old,) = authed.seed_user("alice", age_days=120)
    fired: list[Any] = []

    def meanwhile(step: str, user: str) -> None:
        if step == "create" and not fired:
            fired.append(True)
            try:
                fired.append(handler({"due": False}))
            except Exception as exc:
                fired.append(exc)

    service = build_rotation(load_settings().settings, checkpoint=meanwhile)
    with contextlib.suppress(Exception):
        service.rotate("alice")
    keys = authed.keys("alice")
    current = served(authed, "alice")
    assert keys.get(current["AccessKeyId"]) == "Active", (keys, current, fired)
    assert authed.authenticates(current["AccessKeyId"], current["SecretAccessKey"])
    assert len(keys) <= 2
