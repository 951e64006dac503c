"""`keyturn policy NAME`: the IAM policy a keyturn function needs, derived from its code."""

from __future__ import annotations

import json
import string
from enum import StrEnum
from typing import Annotated

import typer

from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.services.fanout import ACCOUNT_ID

SCHEMA = "keyturn.policy/v1"
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


class Format(StrEnum):
    DOCUMENT = "document"
    JSON = "json"


def policy(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="enforce, rotate, secretsmanager-rotation, leases, fanout-scheduler,"
            " fanout-worker, audit, lease-issuer."
        ),
    ],
    account: Annotated[
        str | None, typer.Option("--account", help="Account id in ARNs (default *).")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--arn-region", help="Region in ARNs (default *).")
    ] = None,
    partition: Annotated[
        str | None, typer.Option("--partition", help="aws, aws-cn or aws-us-gov.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="NAME=VALUE for a template parameter in ARNs (UserPath, SecretPrefix,"
            " LeaseTableName, MemberRoleName, ...; repeatable).",
        ),
    ] = None,
    any_resource: Annotated[
        bool,
        typer.Option("--any-resource", help='Every statement on Resource "*" (unscoped).'),
    ] = False,
    code_only: Annotated[
        bool,
        typer.Option(
            "--code-only",
            help="Only what keyturn's code calls: drop the Lambda runtime's grants (logs,"
            " dead-letter queue, SQS polling). For a person or CI running the CLI.",
        ),
    ] = False,
    template_form: Annotated[
        bool,
        typer.Option("--template-form", help="Leave ${...} placeholders for Fn::Sub."),
    ] = False,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="document: the bare IAM policy document (default); json: wrapped with"
            f' "schema": "{SCHEMA}", the function and the values used.',
        ),
    ] = Format.DOCUMENT,
) -> None:
    """Print a function's IAM policy document as JSON.

    The actions come from the `@requires` declarations of the adapter methods the function
    calls (the same registry the SAM template is generated from); resources are scoped where
    IAM allows it. Secrets are scoped to SecretPrefix, which defaults to the fixed start of
    the configured `rotate.path` (default `aws/{account}/{user}`: `aws/`), so the policy
    covers the secrets `keyturn rotate` writes.
    """
    from keyturn.deploy.functions import fill, get, policy_document

    if account is not None and not ACCOUNT_ID.match(account) and account != "*":
        raise BadInputError(f"--account {account!r}: expected a 12-digit AWS account id")
    if partition is not None and partition not in PARTITIONS:
        raise BadInputError(f"--partition {partition!r}: expected one of {', '.join(PARTITIONS)}")
    function = get(name)
    document = policy_document(function, any_resource=any_resource, code_only=code_only)
    if not template_form:
        values: dict[str, str] = {}
        given: tuple[tuple[str, str | None], ...] = (
            ("AWS::AccountId", account),
            ("AWS::Region", region),
            ("AWS::Partition", partition),
        )
        for item in param or ():
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise BadInputError(f"--param {item!r}: expected NAME=VALUE")
            values[key] = value
        values.update({key: value for key, value in given if value is not None})
        if "SecretPrefix" not in values and "${SecretPrefix}" in json.dumps(document):
            values["SecretPrefix"] = _secret_prefix(ctx)
        document = fill(document, values)
    if output_format is Format.JSON:
        document = {"schema": SCHEMA, "function": name, "policy": document}
    typer.echo(json.dumps(document, indent=2))


def _secret_prefix(ctx: typer.Context) -> str:
    """The literal start of `rotate.path` (config, env, default): what rotate writes under."""
    cli: CliContext = ctx.obj
    path = cli.settings().settings.rotate.path
    literal = next(iter(string.Formatter().parse(path)))[0]
    return literal
