"""The broker's identity proof: what a client signs and what the broker checks before it
lets STS see the proof. Pure (the clock is passed in).

The pattern is Vault's `aws` auth method and aws-iam-authenticator: the caller signs an
`sts:GetCallerIdentity` request with its own AWS credentials (SigV4, by botocore) and sends
the *signed request*, never the credentials; the broker executes it against its own
configured STS endpoint and learns from AWS who signed it.

Beyond Vault, two signed headers bind the proof to one use:

- `X-Keyturn-Server-ID`: the broker's configured id (the audience), so a proof made for one
  broker is refused by another (Vault's `X-Vault-AWS-IAM-Server-ID`).
- `X-Keyturn-Request-SHA256`: the SHA-256 of the broker request itself (method, path and
  the exact request text), so a captured proof authorises that request and nothing else.

STS checks the signature over both (they are in SignedHeaders); the broker checks their
values, that they are signed, the body is exactly GetCallerIdentity, the Host is its own
STS endpoint's, and that X-Amz-Date is fresh (STS allows 15 minutes; the broker less). A
proof is used once (the replay guard in the service).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyturn.domain.errors import BadInputError

SERVER_ID_HEADER = "X-Keyturn-Server-ID"
REQUEST_HASH_HEADER = "X-Keyturn-Request-SHA256"
GET_CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
# Headers that must be among SignedHeaders: without each, the value the broker checks
# would be one an attacker could change without breaking the signature.
MUST_SIGN = ("host", "x-amz-date", SERVER_ID_HEADER.lower(), REQUEST_HASH_HEADER.lower())
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
AMZ_DATE = "%Y%m%dT%H%M%SZ"


class ProofError(BadInputError):
    """The identity proof is refused (HTTP 401)."""


def request_digest(method: str, path: str, request_text: str) -> str:
    """What the client signs into X-Keyturn-Request-SHA256: the broker request, exactly."""
    material = f"{method.upper()}\n{path}\n{request_text}".encode()
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class Proof:
    """A signed GetCallerIdentity request as the client sent it. A claim until STS accepts
    it. The Authorization header carries a signature, not a secret, but it is still kept
    out of repr (a session token rides along in X-Amz-Security-Token)."""

    headers: Mapping[str, str]
    body: str

    def __repr__(self) -> str:
        return f"Proof(headers={sorted(self.headers)}, body={self.body!r})"

    @property
    def signature(self) -> str:
        """The SigV4 signature as the Authorization text spells it (audit only: its text is
        malleable, e.g. a trailing comma, so it is never the replay guard's key)."""
        auth = _header(self.headers, "authorization") or ""
        return auth.rpartition("Signature=")[2].strip()

    @property
    def replay_key(self) -> str:
        """The replay guard's key: built only from values inside the signature (the request
        hash, the signing time, the audience), so no reformatting of the unsigned text of
        the Authorization header makes a captured proof look new. The request hash covers
        the client's nonce, so two honest requests never share a key."""
        material = "\n".join(
            _header(self.headers, name) or ""
            for name in (REQUEST_HASH_HEADER.lower(), "x-amz-date", SERVER_ID_HEADER.lower())
        )
        return hashlib.sha256(material.encode()).hexdigest()


def parse_proof(data: object) -> Proof:
    if not isinstance(data, Mapping):
        raise ProofError("proof: expected an object with headers and body")
    headers, body = data.get("headers"), data.get("body")
    if not isinstance(headers, Mapping) or not isinstance(body, str):
        raise ProofError("proof: expected headers (an object) and body (a string)")
    if len(headers) > MAX_HEADERS:
        raise ProofError(f"proof: more than {MAX_HEADERS} headers")
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ProofError("proof: header names and values must be strings")
        if len(value) > MAX_HEADER_VALUE or any(c in name + value for c in "\r\n\0"):
            raise ProofError(f"proof: header {name[:40]!r} is malformed")
        if name.lower() in {k.lower() for k in clean}:
            raise ProofError(f"proof: header {name[:40]!r} appears twice")
        clean[name] = value
    return Proof(clean, body)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def check_proof(
    proof: Proof,
    *,
    server_id: str,
    digest: str,
    sts_host: str,
    now: datetime,
    max_age: timedelta,
) -> None:
    """Everything the broker checks before STS sees the proof; raises ProofError."""
    if proof.body != GET_CALLER_IDENTITY:
        raise ProofError("proof: the signed request must be exactly sts:GetCallerIdentity")
    auth = _header(proof.headers, "authorization") or ""
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise ProofError("proof: not signed (no AWS4-HMAC-SHA256 Authorization header)")
    signed = auth.partition("SignedHeaders=")[2].partition(",")[0].split(";")
    missing = [name for name in MUST_SIGN if name not in signed]
    if missing:
        raise ProofError(f"proof: {', '.join(missing)} must be among the signed headers")
    if _header(proof.headers, "host") != sts_host:
        raise ProofError(
            f"proof: signed for STS host {_header(proof.headers, 'host')!r}; "
            f"this broker verifies at {sts_host!r}"
        )
    if _header(proof.headers, SERVER_ID_HEADER.lower()) != server_id:
        raise ProofError(
            f"proof: made for another server (the {SERVER_ID_HEADER} is not this broker's id)"
        )
    if _header(proof.headers, REQUEST_HASH_HEADER.lower()) != digest:
        raise ProofError("proof: signed for a different request than this one")
    stamp = _header(proof.headers, "x-amz-date") or ""
    try:
        signed_at = datetime.strptime(stamp, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise ProofError(f"proof: X-Amz-Date {stamp[:40]!r} is not a timestamp") from None
    if abs(now - signed_at) > max_age:
        raise ProofError(
            f"proof: signed at {signed_at.isoformat()}, more than "
            f"{int(max_age.total_seconds())}s from the broker's clock (expired or clock skew)"
        )
