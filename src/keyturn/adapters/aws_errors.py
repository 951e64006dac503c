"""One place that turns botocore failures into keyturn's errors (STYLE habit 4).

Every adapter call runs inside `translate(...)`, so no `ClientError` escapes into services
or shells, and every message names the action that failed. Nothing here formats request
parameters, so a secret passed to an API call cannot leak into the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from keyturn.domain import errors


class DeadlineExceededError(BotoCoreError):
    """One AWS call (retries included) ran past `aws.timeout_seconds`.

    Raised by wiring.py's retry hook instead of letting botocore try again: without a total
    deadline, an endpoint that accepts connections and never answers costs max_attempts x
    the read timeout (9 minutes were seen) before anyone hears about it.
    """

    fmt = "no answer from {endpoint_url} after {waited:.0f} s and {attempts} attempt(s)"


DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchEntity", "ResourceNotFoundException", "NotFoundException"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def translate(action: str, subject: str | None = None) -> Iterator[None]:
    """Run one AWS call; re-raise any failure as a `KeyturnError` naming `action`."""
    where = f"{action} ({subject})" if subject else action
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        detail = f"{code}: {message}" if message else code
        if code in DENIED_CODES:
            raise errors.AccessDeniedError(f"AWS refused {where}: {detail}") from exc
        if code in NOT_FOUND_CODES:
            raise errors.NotFoundError(f"{where}: not found ({detail})") from exc
        raise errors.OperationFailedError(f"{where} failed: {detail}") from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise errors.NoCredentialsError(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or pass --profile"
        ) from exc
    except ProfileNotFound as exc:
        raise errors.ConfigError(
            f"AWS profile {exc.kwargs.get('profile')!r} is not in your AWS config"
        ) from exc
    except NoRegionError as exc:
        raise errors.ConfigError("no AWS region: set AWS_REGION or pass --region") from exc
    except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as exc:
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        raise errors.EndpointUnreachableError(
            f"cannot reach {endpoint} for {where}: check the network or AWS_ENDPOINT_URL"
        ) from exc
    except DeadlineExceededError as exc:
        raise errors.EndpointUnreachableError(
            f"{where}: {exc} (limit per call: aws.timeout_seconds ="
            f" {exc.kwargs.get('seconds', 0):g}); check the network or AWS_ENDPOINT_URL"
        ) from exc
    except ReadTimeoutError as exc:
        raise errors.EndpointUnreachableError(f"{where}: the endpoint timed out") from exc
    except BotoCoreError as exc:
        raise errors.OperationFailedError(f"{where} failed: {exc}") from exc
