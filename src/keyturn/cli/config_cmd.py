"""`keyturn config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from pydantic import BaseModel, SecretStr
from rich.table import Table

from keyturn.cli.context import CliContext
from keyturn.reports.table import plain, table_console

config_app = typer.Typer(help="Inspect keyturn's configuration.", no_args_is_help=True)


@config_app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective config (file < environment < flags), secrets masked."""
    cli: CliContext = ctx.obj
    loaded = cli.settings()
    flat: list[tuple[str, Any, str]] = []
    for section, model in loaded.settings:
        for key, value in model:
            dotted = f"{section}.{key}"
            shown, origin = _masked(value), loaded.origin(dotted)
            if value is None and dotted in BOTO3_READS:
                shown, origin = _from_boto3_env(dotted, shown, origin)
            flat.append((dotted, shown, origin))
    if as_json:
        typer.echo(json.dumps({dotted: value for dotted, value, _ in flat}, indent=2))
        return
    # Keys are identifiers (never cut); values and origins may name user-written text.
    table = Table(title=plain(f"keyturn config ({loaded.file or 'no config file'})"))
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", style="dim", overflow="fold")
    for dotted, value, origin in flat:
        table.add_row(plain(dotted), plain(json.dumps(value)), plain(origin))
    table_console().print(table)


# Settings boto3 resolves by itself when keyturn leaves them unset.
BOTO3_READS = {
    "aws.profile": ("AWS_PROFILE",),
    "aws.region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws.endpoint_url": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM"),
}


def _from_boto3_env(dotted: str, shown: Any, origin: str) -> tuple[Any, str]:
    for name in BOTO3_READS[dotted]:
        if os.environ.get(name):
            return os.environ[name], f"environment {name} (read by boto3)"
    return shown, origin


def _masked(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _masked(value.model_dump())
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if isinstance(value, frozenset | set):
        return sorted(value)
    return value
