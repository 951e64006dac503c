"""Seals made with an AWS KMS HMAC key (`HMAC_256`, key usage GENERATE_VERIFY_MAC).

The deployment's authenticator: the SAM template creates the key and its key policy names
only keyturn's function roles and the operators' role, so the Lambdas and the CLI share one
key and nobody else can make a seal, whatever IAM tag rights they hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from keyturn.adapters.aws_errors import error_code, translate
from keyturn.domain.trust import decode_tag, encode_tag
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ALGORITHM: Literal["HMAC_SHA_256"] = "HMAC_SHA_256"


class KmsAuthenticator:
    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._kms = client
        self._key_id = key_id

    @requires("kms:GenerateMac")
    def seal(self, message: bytes) -> str:
        """KMS: GenerateMac."""
        with translate("kms:GenerateMac", self._key_id):
            found = self._kms.generate_mac(
                KeyId=self._key_id, Message=message, MacAlgorithm=ALGORITHM
            )
        return encode_tag(found["Mac"])

    @requires("kms:VerifyMac")
    def verify(self, message: bytes, seal: str) -> bool:
        """KMS: VerifyMac. An invalid MAC is an answer (False), not a failure; any other
        error (denied, unreachable) is raised, so an outage never reads as "forged"."""
        from botocore.exceptions import ClientError

        raw = decode_tag(seal)
        if raw is None or not raw:
            return False
        with translate("kms:VerifyMac", self._key_id):
            try:
                found = self._kms.verify_mac(
                    KeyId=self._key_id, Message=message, Mac=raw, MacAlgorithm=ALGORITHM
                )
            except ClientError as exc:
                if error_code(exc) == "KMSInvalidMacException":
                    return False
                raise
        return bool(found.get("MacValid"))

    def describe(self) -> str:
        return f"KMS key {self._key_id}"

    @property
    def client(self) -> KMSClient:
        """The KMS client (the enrollment generation is a tag on this key)."""
        return self._kms

    @property
    def key_id(self) -> str:
        return self._key_id
