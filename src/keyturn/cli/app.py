"""The command tree and its global options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keyturn import __version__
from keyturn.cli import (
    audit_cmd,
    broker_cmd,
    config_cmd,
    enforce_cmd,
    enroll_cmd,
    lease_cmd,
    policy_cmd,
    rotate_cmd,
)
from keyturn.cli.context import CliContext


def _plain_help_types() -> None:
    """Help without `<bool>` beside every flag and `<list[str]>` beside repeatable options.

    typer 0.29 labels each parameter with its Python type; a flag takes no value at all, and
    a repeatable option takes one value each time, so both labels mislead (issue 13). typer
    has no setting for this, so its one labelling method is wrapped here, at import of the
    command tree; if a future typer renames it, help falls back to typer's own labels.
    """
    from typer import core

    original = getattr(core._TyperParameter, "display_type", None)
    if original is None or getattr(original, "_keyturn", False):
        return

    def display_type(self: Any, ctx: Any) -> str:
        if getattr(self, "is_flag", False):
            return ""
        label = str(original(self, ctx))
        if label.startswith("<list[") and label.endswith("]>"):
            return f"<{label[6:-2]}>..."
        return label

    display_type._keyturn = True  # type: ignore[attr-defined]
    core._TyperParameter.display_type = display_type  # type: ignore[method-assign]


_plain_help_types()


def _exit_with(result: object, **_: object) -> None:
    """A command may return its exit status as an int; click would otherwise drop it."""
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        raise typer.Exit(code=result)


app = typer.Typer(
    result_callback=_exit_with,
    name="keyturn",
    help="Own the whole life of AWS access keys: audit, enforce, rotate, lease.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"keyturn {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="keyturn.toml to read (env KEYTURN_CONFIG)."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile (env AWS_PROFILE).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="Assume this IAM role first.")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="AWS endpoint (env AWS_ENDPOINT_URL)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = CliContext(
        config=config,
        profile=profile,
        region=region,
        role_arn=role_arn,
        endpoint_url=endpoint_url,
        debug=debug,
    )


app.command("audit")(audit_cmd.audit)
app.command("enforce")(enforce_cmd.enforce)
app.command("rotate")(rotate_cmd.rotate)
app.command("enroll")(enroll_cmd.enroll)
app.command("unenroll")(enroll_cmd.unenroll)
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(lease_cmd.role_app, name="role")
app.command("creds")(lease_cmd.creds)
app.add_typer(lease_cmd.lease_app, name="lease")
app.command("policy")(policy_cmd.policy)
app.add_typer(broker_cmd.broker_app, name="broker")
