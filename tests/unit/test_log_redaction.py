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
