"""Execute a caller's signed sts:GetCallerIdentity at the broker's own STS endpoint.

The request goes to `sts_url`, fixed by the broker's configuration, never to a URL or host
the caller names (no server-side request forgery: the caller chooses only header values,
and only the ones it signed reach STS). botocore does the transport (URLLib3Session: no
redirects followed) and parses STS's answer with STS's own service model, so nothing here
re-implements the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session
from botocore.parsers import create_parser

from keyturn.domain.broker_proof import CONTENT_TYPE, Proof, ProofError
from keyturn.domain.errors import EndpointUnreachableError, OperationFailedError

# The headers forwarded to STS: the SigV4 ones and the signed custom ones. Anything else
# the caller put in the proof is dropped (STS ignores unsigned headers anyway; dropping
# them keeps hop-by-hop tricks such as Transfer-Encoding out of the broker's request).
_FORWARD = frozenset(
    {
        "authorization",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "content-type",
        "x-keyturn-server-id",
        "x-keyturn-request-sha256",
    }
)


@dataclass(frozen=True, slots=True)
class StsIdentity:
    arn: str
    account: str
    user_id: str


class StsProofVerifier:
    """Asks STS who signed a proof. `sts_url` is the broker's, e.g. https://sts.us-east-1.amazonaws.com."""

    def __init__(self, sts_url: str, *, timeout: int = 10) -> None:
        parts = urlsplit(sts_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OperationFailedError(f"broker STS endpoint {sts_url!r} is not a URL")
        self.url = f"{parts.scheme}://{parts.netloc}/"
        self.host = parts.netloc
        self._http = URLLib3Session(timeout=timeout)
        model = botocore.session.get_session().get_service_model("sts")
        self._operation = model.operation_model("GetCallerIdentity")
        shape = self._operation.output_shape
        assert shape is not None  # GetCallerIdentity has an output in every STS model
        self._output = shape
        self._parser = create_parser(model.metadata["protocol"])

    def identify(self, proof: Proof) -> StsIdentity:
        headers = {k: v for k, v in proof.headers.items() if k.lower() in _FORWARD}
        headers.setdefault("Content-Type", CONTENT_TYPE)
        request = AWSRequest(method="POST", url=self.url, data=proof.body, headers=headers)
        try:
            response = self._http.send(request.prepare())
        except BotoCoreError as exc:
            raise EndpointUnreachableError(f"STS at {self.url}: {exc}") from None
        parsed = self._parser.parse(
            {
                "status_code": response.status_code,
                "headers": dict(response.headers),
                "body": response.content,
            },
            self._output,
        )
        if response.status_code in (400, 401, 403):
            error = parsed.get("Error", {})
            code = error.get("Code", str(response.status_code))
            raise ProofError(f"proof refused by STS: {code}")
        if response.status_code != 200 or "Arn" not in parsed:
            raise OperationFailedError(
                f"STS at {self.url} answered {response.status_code} to GetCallerIdentity"
            )
        return StsIdentity(str(parsed["Arn"]), str(parsed["Account"]), str(parsed["UserId"]))
