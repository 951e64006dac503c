"""Keep secrets out of botocore's DEBUG logs.

At DEBUG, botocore logs every response body (`botocore.parsers`) and every request's
parameters (`botocore.endpoint`): CreateAccessKey's answer carries the SecretAccessKey, STS
answers a SecretAccessKey and SessionToken, Secrets Manager calls carry SecretString. A
Lambda whose log level is set to DEBUG (Lambda's advanced logging controls set it on the
root logger) would write them to CloudWatch. This filter masks those fields' values in
every record of botocore's loggers, whoever turned DEBUG on (invariant 5).

Credentials that sign requests are masked too, because a session token or a signature is as
good as the key for a while: botocore.auth logs the canonical request (an
`x-amz-security-token:` header line) and the `Signature:`; botocore.endpoint logs the
prepared request's headers (`'X-Amz-Security-Token': b'...'`, `'Authorization':
b'AWS4-HMAC-SHA256 ... Signature=...'`); presigned URLs carry `X-Amz-Security-Token=` and
`X-Amz-Signature=` in their query; hvac sends the Vault token as `X-Vault-Token`. Header
names are matched case-insensitively in each of those shapes (dict repr, JSON, header line,
query string), so whichever library prints them, the value is gone.
"""

from __future__ import annotations

import logging
import re

SECRET_FIELDS = ("SecretAccessKey", "SessionToken", "SecretString", "SecretBinary")
# XML (<SecretAccessKey>v</SecretAccessKey>), JSON ("SecretAccessKey": "v") and Python
# repr ('SecretString': 'v'), also with escaped quotes inside a repr'd bytes body, at any
# depth: a key document stored as a SecretString is JSON inside JSON inside a bytes repr
# (`\\"SecretAccessKey\\": \\"v`, two backslashes before each quote).
_VALUE = re.compile(
    r"(?P<name>" + "|".join(SECRET_FIELDS) + r")"
    r"(?P<sep>>|\\*[\"']?\s*:\s*\\*[\"']|=)"
    r"(?P<value>[^\"'<&\s\\,}]+)"
)
# A whole quoted SecretString / SecretBinary value, up to its unescaped closing quote: the
# document inside may name its secret field anything (rotate.secret_key_field).
_WHOLE = re.compile(
    r"(?P<name>SecretString|SecretBinary)(?P<sep>[\"']?\s*:\s*(?P<q>[\"']))"
    r"(?P<value>.*?)(?<!\\)(?P=q)"
)
# Request headers whose values are credentials.
SECRET_HEADERS = ("x-amz-security-token", "authorization", "x-vault-token")
_HEADER_NAMES = "|".join(re.escape(name) for name in SECRET_HEADERS)
# 'Authorization': b'AWS4-HMAC-SHA256 ...' / "X-Vault-Token": "hvs..." (repr or JSON): the
# whole quoted value, up to its closing quote.
_QUOTED_HEADER = re.compile(
    r"(?i)(?P<name>" + _HEADER_NAMES + r")(?P<sep>\\*[\"']?\s*:\s*b?\\*(?P<q>[\"']))"
    r"(?P<value>.*?)(?<!\\)(?P=q)"
)
# An HTTP header line (`x-amz-security-token:IQo...` in the canonical request) or a query
# parameter (`X-Amz-Security-Token=IQo...&`): the rest of the line / up to the next `&`.
_BARE_HEADER = re.compile(
    r"(?im)(?P<name>" + _HEADER_NAMES + r")(?P<sep>:[ \t]*|=)(?P<value>[^\s'\"&,}]+[^\n'\"&]*)"
)
# SigV4 signatures: `Signature=<hex>` (Authorization, X-Amz-Signature= in a presigned URL)
# and botocore.auth's `Signature:\n<hex>`.
_SIGNATURE = re.compile(r"(?i)(?P<name>signature)(?P<sep>=|:\s*)(?P<value>[0-9a-f]{16,})")
# A logger's filters see only the records logged on it, so every logger of these packages
# gets one (botocore's modules each log as their own `botocore.<module>`).
PACKAGES = ("botocore", "boto3", "urllib3", "s3transfer", "hvac", "requests")
MASK = "***"


def redact(text: str) -> str:
    text = _WHOLE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}{m['q']}", text)
    text = _QUOTED_HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MASK}{m['q']}", text)
    text = _BARE_HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    text = _SIGNATURE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _VALUE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record's message with secret field values masked; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    """Idempotent: one filter per logger, added whenever a client is built (so loggers of
    botocore modules imported since then are covered too)."""
    known = [name for name in logging.Logger.manager.loggerDict if name.startswith(PACKAGES)]
    for name in {*PACKAGES, *known}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretRedactingFilter) for f in logger.filters):
            logger.addFilter(SecretRedactingFilter())
