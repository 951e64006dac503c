"""The errors keyturn speaks in.

Adapters translate boto3 / hvac failures into these once, at the edge; the shells map each
class to one line of text and one exit code. Every message is written for the person who
reads it, and none carries a secret.
"""

from __future__ import annotations


class KeyturnError(Exception):
    """Root of every error keyturn raises on purpose."""

    exit_code = 1


class BadInputError(KeyturnError):
    """Input the user can fix: a flag, a config file, an event, a tag."""

    exit_code = 2


class ConfigError(BadInputError):
    """A configuration value is missing, unknown or of the wrong type."""


class AccessError(KeyturnError):
    """keyturn could not reach or was not allowed to use a service."""

    exit_code = 4


class NoCredentialsError(AccessError):
    """No AWS credentials were found in the standard chain."""


class EndpointUnreachableError(AccessError):
    """The service endpoint did not answer."""


class AccessDeniedError(AccessError):
    """The caller lacks a permission; the message names the action."""


class NotFoundError(AccessError):
    """A named thing (user, key, secret) does not exist."""


class ReportError(KeyturnError):
    """The IAM credential report could not be produced or read."""


class OperationFailedError(KeyturnError):
    """An operation started but did not finish; the message says what is left."""
