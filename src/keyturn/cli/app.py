"""The command tree and its global options."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from keyturn import __version__
from keyturn.cli.command_table import APP_HELP, COMMANDS
from keyturn.cli.context import CliContext

__all__ = ["COMMANDS", "LazyGroup", "app", "load_command"]


class LazyGroup(TyperGroup):
    """typer's group, with subcommands built from COMMANDS on first use.

    While the group's own help is drawn, a subcommand is a stub carrying its one-line help
    (nothing imported); any other use (running it, its own help, completion of its
    options) imports its module and builds the real click command once.
    """

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        target, kind, summary, extra = COMMANDS[cmd_name]
        if self._listing:
            import click

            return click.Command(cmd_name, help=summary)
        command = load_command(cmd_name, target, kind, extra, self.rich_markup_mode)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def load_command(name: str, target: str, kind: str, extra: dict[str, Any], markup: Any) -> Any:
    """The click command typer would have built for `target` at start-up."""
    from typer import main as typer_main
    from typer.models import TyperInfo

    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if kind == "group":
        return typer_main.get_group_from_info(
            TyperInfo(found, name=name),
            pretty_exceptions_short=True,
            suggest_commands=True,
            rich_markup_mode=markup,
        )
    holder = typer.Typer(rich_markup_mode=markup)
    holder.command(name, **extra)(found)
    return typer_main.get_command_from_info(
        holder.registered_commands[0], pretty_exceptions_short=True, rich_markup_mode=markup
    )


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
    cls=LazyGroup,
    result_callback=_exit_with,
    name="keyturn",
    help=APP_HELP,
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
