"""The broker's client: `creds --broker`, `lease ... --broker` (and, later, the credential
cache and `--format process`) call `issue`, `renew`, `revoke`, `list`.

Each call proves who the caller is with a SigV4-signed sts:GetCallerIdentity (botocore's
SigV4Auth signs it; the caller's credentials never leave this process), bound to the
broker's server id and to this exact request (keyturn.domain.broker_proof). The proof is
signed for the caller's own STS endpoint, which must be the one the broker executes it at.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session

from keyturn.domain.broker_proof import (
    CONTENT_TYPE,
    GET_CALLER_IDENTITY,
    REQUEST_HASH_HEADER,
    SERVER_ID_HEADER,
    request_digest,
)
from keyturn.domain.errors import (
    AccessDeniedError,
    BadInputError,
    EndpointUnreachableError,
    KeyturnError,
    NotFoundError,
    OperationFailedError,
)
from keyturn.domain.leases import LEASE_PREFIX, Lease, format_duration
from keyturn.services.leases import IssuedCredential, RevokeOutcome, RevokeResult


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url: str) -> str:
    """`https://broker.example.com/x` -> `https://broker.example.com`: the default server id."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class BrokerClient:
    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        sts_url: str,
        region: str,
        server_id: str | None = None,
        timeout: int = 120,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInputError(f"--broker {url!r} is not an http(s) URL")
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            # The answer carries a secret access key, and the proof in flight is a bearer
            # token for its request: over plain HTTP every peer on the path has both.
            raise BadInputError(
                f"--broker {url!r}: plain http to another host would send the issued secret "
                "in clear; use https (a TLS proxy in front of `broker serve`)"
            )
        self.url = url.rstrip("/")
        self.server_id = server_id or origin(url)
        self._credentials = credentials
        self._sts_url = sts_url
        self._region = region
        self._http = URLLib3Session(timeout=timeout)

    # -- the four calls ---------------------------------------------------------------------

    def issue(self, role: str, ttl: timedelta | None = None) -> IssuedCredential:
        answer = self._call("issue", {"role": role, "ttl": format_duration(ttl) if ttl else None})
        return IssuedCredential(
            Lease.from_dict(answer["lease"]),
            str(answer["access_key_id"]),
            str(answer["secret_access_key"]),
            answer.get("session_token"),
            tuple(answer.get("warnings") or ()),
        )

    def renew(self, lease_id: str, increment: timedelta | None = None) -> tuple[Lease, str | None]:
        answer = self._call(
            "renew",
            {"lease_id": lease_id, "increment": format_duration(increment) if increment else None},
        )
        return Lease.from_dict(answer["lease"]), answer.get("warning")

    def revoke(self, lease_id: str) -> RevokeOutcome:
        answer = self._call("revoke", {"lease_id": lease_id})
        return RevokeOutcome(
            str(answer["lease_id"]), RevokeResult(answer["result"]), str(answer.get("detail", ""))
        )

    def list_leases(self, prefix: str = LEASE_PREFIX) -> list[Lease]:
        answer = self._call("list", {"prefix": prefix})
        return [Lease.from_dict(item) for item in answer["leases"]]

    # -- the wire ------------------------------------------------------------------------------

    def proof(self, method: str, path: str, request_text: str) -> dict[str, Any]:
        """The signed GetCallerIdentity for one broker request (public for the tests, which
        forge variants of it)."""
        host = urlsplit(self._sts_url).netloc
        signed = AWSRequest(
            method="POST",
            url=f"{urlsplit(self._sts_url).scheme}://{host}/",
            data=GET_CALLER_IDENTITY,
            headers={
                # Set explicitly: SigV4Auth signs the host it derives from the URL but
                # does not add the header, and the broker must see what was signed.
                "Host": host,
                "Content-Type": CONTENT_TYPE,
                SERVER_ID_HEADER: self.server_id,
                REQUEST_HASH_HEADER: request_digest(method, path, request_text),
            },
        )
        SigV4Auth(self._credentials.get_frozen_credentials(), "sts", self._region).add_auth(signed)
        return {"headers": dict(signed.headers.items()), "body": GET_CALLER_IDENTITY}

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/{action}"
        # The nonce makes two identical requests (two `creds dev` in one second) two
        # different signed proofs, so the broker's one-use rule never refuses the second.
        text = json.dumps({**params, "nonce": secrets.token_hex(16)})
        body = json.dumps({"request": text, "proof": self.proof("POST", path, text)})
        request = AWSRequest(
            method="POST",
            url=self.url + path,
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            response = self._http.send(request.prepare())
        except BotoCoreError as exc:
            raise EndpointUnreachableError(f"broker {self.url}: {exc}") from None
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise OperationFailedError(
                f"broker {self.url} answered {response.status_code} without a JSON object"
            )
        if response.status_code >= 400:
            raise _error(response.status_code, str(answer.get("error", "no detail")), self.url)
        return answer


def _error(status: int, message: str, url: str) -> KeyturnError:
    text = f"broker: {message}"
    if status in (401, 403):
        return AccessDeniedError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (400, 405, 413):
        return BadInputError(text)
    if status == 429:
        return OperationFailedError(text)
    return OperationFailedError(f"broker {url} failed ({status}): {message}")
