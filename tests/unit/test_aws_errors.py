"""botocore failures become one clear keyturn error, at one place."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from keyturn.adapters.aws_errors import translate
from keyturn.domain import errors


def client_error(code: str, message: str = "nope") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


@pytest.mark.parametrize(
    ("raised", "expected", "exit_code"),
    [
        (client_error("AccessDenied"), errors.AccessDeniedError, 4),
        (client_error("InvalidClientTokenId"), errors.AccessDeniedError, 4),
        (client_error("NoSuchEntity"), errors.NotFoundError, 4),
        (client_error("Throttling"), errors.OperationFailedError, 1),
        (NoCredentialsError(), errors.NoCredentialsError, 4),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
            errors.EndpointUnreachableError,
            4,
        ),
    ],
)
def test_mapping(raised: Exception, expected: type[errors.KeyturnError], exit_code: int) -> None:
    with pytest.raises(expected) as caught, translate("iam:GetUser", "alice"):
        raise raised
    assert caught.value.exit_code == exit_code
    assert "iam:GetUser" in str(caught.value) or expected is errors.NoCredentialsError
    assert caught.value.__cause__ is raised


def test_unreachable_names_the_endpoint() -> None:
    with (
        pytest.raises(errors.EndpointUnreachableError, match=r"127\.0\.0\.1:9"),
        translate("iam:GetUser"),
    ):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
