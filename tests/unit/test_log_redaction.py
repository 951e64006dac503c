"""botocore's DEBUG records lose their secret values, whatever the body's shape."""

from __future__ import annotations

import json
import logging

import pytest

from keyturn.adapters import log_redaction

SECRET = "Wk7p2+o3UNYwo7AuVufm4/QWW7U8zC91qRl/f6HX"


@pytest.mark.parametrize(
    "body",
    [
        f"b'<AccessKey><SecretAccessKey>{SECRET}</SecretAccessKey></AccessKey>'",
        f'{{"Credentials": {{"SecretAccessKey": "{SECRET}", "SessionToken": "{SECRET}"}}}}',
        f"{{'body': {{'SecretString': '{SECRET}', 'SecretId': 'app'}}}}",
        f"Action=PutSecretValue&SecretString={SECRET}",
        f'b\'{{"SecretString":"{SECRET}"}}\'',
        # botocore.endpoint's DEBUG record of PutSecretValue: a key document (JSON) inside
        # the request body (JSON) inside a bytes repr, so each inner quote is `\\"`.
        repr(
            json.dumps(
                {
                    "SecretId": "cli/rita",
                    "SecretString": json.dumps(
                        {"UserName": "rita", "AccessKeyId": "AKIA1", "SecretAccessKey": SECRET}
                    ),
                }
            ).encode()
        ),
        # ... and a document whose secret field has a name of the user's choosing.
        repr({"SecretId": "app", "SecretString": json.dumps({"password": SECRET})}),
        json.dumps({"SecretString": json.dumps({"password": SECRET}), "Name": "app"}),
    ],
)
def test_secret_values_are_masked(body: str) -> None:
    assert SECRET not in log_redaction.redact(body)
    assert "***" in log_redaction.redact(body)


def test_installed_filter_masks_botocore_records(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install()
    log_redaction.install()  # idempotent
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("botocore.parsers")
    assert sum(isinstance(f, log_redaction.SecretRedactingFilter) for f in logger.filters) == 1
    logger.debug("Response body:\n%r", f"<SecretAccessKey>{SECRET}</SecretAccessKey>".encode())
    assert SECRET not in caplog.text
    assert "SecretAccessKey>***" in caplog.text


TOKEN = "IQoJb3JpZ2luX2VjEKz//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token/value=="
SIGNATURE = "147a6476a5a35b7a1f81cc287734ae3be815a54ff47fea302c58ab62e61e4ca2"
VAULT = "hvs.CAESIJ0Nh3vault-token-value"


@pytest.mark.parametrize(
    "record",
    [
        # botocore.auth: the canonical request's header line, and the signature
        f"POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:iam\n"
        f"x-amz-date:20261130T063156Z\nx-amz-security-token:{TOKEN}\n\n"
        "content-type;host;x-amz-date;x-amz-security-token\nabc",
        f"Signature:\n{SIGNATURE}",
        # botocore.endpoint: the prepared request's headers (a dict of bytes)
        f"<AWSPreparedRequest method=POST, headers={{'X-Amz-Date': b'20261130T063156Z', "
        f"'X-Amz-Security-Token': b'{TOKEN}', 'Authorization': b'AWS4-HMAC-SHA256 "
        f"Credential=ASIA/20261130/us-east-1/iam/aws4_request, SignedHeaders=host, "
        f"Signature={SIGNATURE}', 'Content-Length': '50'}}>",
        # a presigned URL
        f"https://s3.amazonaws.com/b/k?X-Amz-Credential=ASIA%2F&X-Amz-Security-Token={TOKEN}"
        f"&X-Amz-Signature={SIGNATURE}",
        # Vault's token header, as a dict repr, as JSON and as a header line
        f"headers={{'X-Vault-Token': '{VAULT}', 'X-Vault-Request': 'true'}}",
        json.dumps({"X-Vault-Token": VAULT}),
        f"X-Vault-Token: {VAULT}\r\nHost: vault",
        f"authorization: Bearer {VAULT}",
    ],
)
def test_signing_credentials_are_masked(record: str) -> None:
    cleaned = log_redaction.redact(record)
    for secret in (TOKEN, SIGNATURE, VAULT):
        assert secret not in cleaned, cleaned
    assert "***" in cleaned


def test_header_names_survive_so_the_log_still_reads() -> None:
    cleaned = log_redaction.redact(f"x-amz-security-token:{TOKEN}\nhost:iam.amazonaws.com")
    assert cleaned == "x-amz-security-token:***\nhost:iam.amazonaws.com"


def test_hvac_and_requests_loggers_are_filtered() -> None:
    log_redaction.install()
    for name in ("hvac", "requests"):
        logger = logging.getLogger(name)
        assert any(isinstance(f, log_redaction.SecretRedactingFilter) for f in logger.filters)
