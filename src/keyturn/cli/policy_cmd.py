"""`keyturn policy NAME`: the IAM policy a keyturn function needs, derived from its code."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keyturn.domain.errors import BadInputError


def policy(
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
) -> None:
    """Print a function's IAM policy document as JSON.

    The actions come from the `@requires` declarations of the adapter methods the function
    calls (the same registry the SAM template is generated from); resources are scoped where
    IAM allows it.
    """
    from keyturn.deploy.functions import fill, get, policy_document

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
        document = fill(document, values)
    typer.echo(json.dumps(document, indent=2))
