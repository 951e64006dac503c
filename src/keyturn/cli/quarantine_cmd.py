"""`keyturn quarantine KEY_ID`: contain an exposed access key (the Health Lambda's response,
run by an operator). Thin shell over keyturn.services.quarantine."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from keyturn.cli import exit_codes
from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.services.quarantine import QuarantineOutcome
from keyturn.wiring import build_aws, build_aws_in_account, build_quarantine

SCHEMA = "keyturn.quarantine/v1"
# Each refusal's exit status (cli/exit_codes.py): bad input is 2, an unknown key 4, and a
# key keyturn could not contain (root, or a step failed) 1.
CODES = {
    "refused": exit_codes.BAD_INPUT,
    "not found": exit_codes.ACCESS,
}


def quarantine(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The exposed access key id (AKIA...).")],
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="The key's account (12 digits); another than yours is entered as"
            " --role-name / fanout.role_name.",
        ),
    ] = None,
    delete: Annotated[
        bool,
        typer.Option(
            "--delete", help="Also delete the key, after it is inactive and the incident recorded."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print what would happen; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Contain an exposed access key: deactivate it, move its consumers, say what it did.

    Deactivates the key at once (kept as evidence), rotates its user's consumers onto a
    verified new key if the user is enrolled and its store serves the key, summarises what
    the key did (CloudTrail), tells its owner and the security contact, and writes the
    incident record. Running it again does nothing more.
    """
    cli: CliContext = ctx.obj
    if account is not None and not (len(account) == 12 and account.isdigit()):
        raise BadInputError(f"--account {account[:20]!r}: expected a 12-digit AWS account id")
    settings = cli.settings().settings
    aws = build_aws(settings)
    if account is not None and account != aws.account_id():
        aws = build_aws_in_account(aws, account, settings.fanout.role_name)
    outcome = build_quarantine(settings, aws).contain(key_id, delete=delete, dry_run=dry_run)
    _show(outcome, as_json)
    if outcome.ok:
        return exit_codes.OK
    return CODES.get(outcome.state, exit_codes.FAILED)


def _show(outcome: QuarantineOutcome, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"schema": SCHEMA, **outcome.to_dict()}, indent=2))
        return
    console = Console(width=160 if not sys.stdout.isatty() else None, highlight=False)
    if not outcome.ok and not outcome.actions:
        sys.stderr.write(f"error: {outcome.message}\n")
        return
    console.print(f"[bold]{escape(outcome.key_id)}[/bold]: {escape(outcome.state)}")
    for action in outcome.actions:
        console.print(f"  {action.at:%Y-%m-%d %H:%M:%S} UTC  {escape(action.detail)}")
    console.print(escape(outcome.message))
    for line in outcome.activity:
        console.print(f"  {escape(line)}")
    if outcome.record:
        console.print(f"incident record: {escape(outcome.record)}")
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if not outcome.ok:
        sys.stderr.write(f"error: {outcome.key_id} not fully contained; see the warnings\n")
