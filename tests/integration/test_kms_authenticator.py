"""The deployment's seal: a KMS HMAC key on moto's server (GenerateMac / VerifyMac)."""

from __future__ import annotations

import pytest

from keyturn.adapters.mac_kms import KmsAuthenticator
from keyturn.domain.errors import KeyturnError
from keyturn.sandbox.aws import LocalAws


def hmac_key(aws: LocalAws) -> str:
    made = aws.client("kms").create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    return str(made["KeyMetadata"]["Arn"])


def test_a_seal_verifies_only_for_its_key_and_its_message(aws: LocalAws) -> None:
    kms = aws.client("kms")
    ours = KmsAuthenticator(kms, hmac_key(aws))
    theirs = KmsAuthenticator(kms, hmac_key(aws))
    seal = ours.seal(b"keyturn record")
    assert len(seal) == 43  # 32 bytes, unpadded base64url: fits beside a record in a tag
    assert ours.verify(b"keyturn record", seal)
    assert not ours.verify(b"keyturn recorD", seal)
    assert not theirs.verify(b"keyturn record", seal)
    for junk in ("", "AAAA", "!!not base64!!"):
        assert not ours.verify(b"keyturn record", junk)


def test_an_outage_is_an_error_never_a_verdict(aws: LocalAws) -> None:
    """A missing key (or a denied call) raises: "could not check" must not read as
    "forged" (which would be reported as an attack) nor as "genuine"."""
    auth = KmsAuthenticator(aws.client("kms"), "arn:aws:kms:us-east-1:123456789012:key/none")
    with pytest.raises(KeyturnError):
        auth.verify(b"x", "A" * 43)
    with pytest.raises(KeyturnError):
        auth.seal(b"x")
