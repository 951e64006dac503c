"""`keyturn audit`: the inventory of every IAM user's access keys."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from keyturn.cli import accounts as multi
from keyturn.cli import exit_codes
from keyturn.cli.context import CliContext
from keyturn.cli.output import check_writable, emit, emit_stream
from keyturn.config import Settings
from keyturn.domain.errors import BadInputError
from keyturn.reports.csv_report import write_csv
from keyturn.reports.json_report import write_json
from keyturn.reports.table import table_console, write_table
from keyturn.services.audit import AuditRequest, AuditResult


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def audit(
    ctx: typer.Context,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", "-u", help="Read only this user, directly (repeatable)."),
    ] = None,
    key_ids: Annotated[
        bool, typer.Option("--key-ids", help="Resolve key ids (one ListAccessKeys per user).")
    ] = False,
    contacts: Annotated[
        bool, typer.Option("--contacts", help="Read the Contact tag (one call per user).")
    ] = False,
    output_format: Annotated[
        Format | None,
        typer.Option("--format", "-f", help="table (default on a terminal), json, csv, html."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 when any key is out of policy.")
    ] = False,
    notify_after: Annotated[
        int | None, typer.Option("--notify-after", help="Days before a notice (default 30).")
    ] = None,
    grace: Annotated[
        int | None, typer.Option("--grace", help="Days from notice to deactivation (default 7).")
    ] = None,
    unused_after: Annotated[
        int | None, typer.Option("--unused-after", help="Flag keys unused for this many days.")
    ] = None,
    enrollment: Annotated[
        bool,
        typer.Option(
            "--enrollment",
            help="Also say which due users are enrolled for rotation ([rotate] store, path).",
        ),
    ] = False,
    accounts: multi.AccountsOption = None,
    org: multi.OrgOption = False,
    role_name: multi.RoleNameOption = None,
) -> None:
    """Inventory every access key: age, last use, owner and policy finding.

    Reads the IAM credential report (a handful of calls for any number of users); with
    --user, reads those users directly instead.
    """
    cli: CliContext = ctx.obj
    loaded = cli.settings(
        {
            "policy.notify_after_days": notify_after,
            "policy.grace_days": grace,
            "policy.unused_after_days": unused_after,
            "fanout.role_name": role_name,
        },
        flag_names={
            "fanout.role_name": "--role-name",
            "policy.notify_after_days": "--notify-after",
            "policy.grace_days": "--grace",
            "policy.unused_after_days": "--unused-after",
        },
    )
    check_writable(output)  # before the audit, not after minutes of it
    _format_for(output_format, output)
    from keyturn.wiring import build_audit  # here, not at the top: --help needs no boto3

    choice = multi.choose(accounts, org)
    request = AuditRequest(users=tuple(user or ()), key_ids=key_ids, contacts=contacts)
    chosen = _format_for(output_format, output)
    if enrollment and choice.many:
        raise BadInputError("--enrollment works in one account at a time")
    if enrollment:
        result = build_audit(loaded.settings).run(request)
        emit(lambda out: _render_any(chosen, result, out), output)
        _show_enrollment(loaded.settings, result)
        out_of_policy = result.out_of_policy
    elif choice.many:
        # Several accounts: merged into one result (each key carries its account id).
        merged, spread = multi.audit_accounts(loaded.settings, choice, request)
        emit(lambda out: _render_any(chosen, merged, out), output)
        multi.report_failures(spread)
        if spread.failures:
            raise typer.Exit(exit_codes.FAILED)
        out_of_policy = merged.out_of_policy
    elif chosen in (Format.JSON, Format.CSV):
        # Streamed: one key in memory at a time, so 100,000 users fit in a small Lambda.
        service = build_audit(loaded.settings)
        writer = write_json if chosen is Format.JSON else write_csv
        stream = service.stream(request)
        stream.waiting = _waiting(loaded.settings, request)
        out_of_policy = emit_stream(lambda out: writer(stream, out), output).out_of_policy
    else:
        result = build_audit(loaded.settings).run(request)
        result.waiting = _waiting(loaded.settings, request)
        emit(lambda out: _render(chosen, result, out), output)
        out_of_policy = result.out_of_policy
    if check and out_of_policy:
        raise typer.Exit(exit_codes.OUT_OF_POLICY)


def _waiting(settings: Settings, request: AuditRequest) -> dict[str, str]:
    """`retire = "when-quiet"`: per user whose old key is still active and used, the
    rotation's own waiting line (keyturn.services.waiting); nothing under the timer."""
    from keyturn.wiring import build_waiting

    waiting = build_waiting(settings)
    if waiting is None:
        return {}
    return waiting.lines(request.users or None)


def _show_enrollment(settings: Settings, result: AuditResult) -> None:
    """On stderr (the report on stdout stays as it is): which users with a due active key
    the schedule will rotate (enrolled), and which it only reports (issue 17)."""
    from rich.console import Console
    from rich.markup import escape

    from keyturn.wiring import build_aws, build_enrollment

    due = sorted(
        {
            item.key.user
            for item in result.keys
            if item.key.active and item.finding.out_of_policy and item.key.user != "<root_account>"
        }
    )
    split = build_enrollment(settings, build_aws(settings)).partition(due)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for rejected in split.rejected:
        err.print(f"warning: {escape(rejected.line())}")
    err.print(
        f"rotation: {len(due)} user(s) with a due key; enrolled (rotated on schedule): "
        f"{escape(', '.join(split.enrolled)) or 'none'}; due, not enrolled (never rotated "
        f"until `keyturn enroll`): {escape(', '.join(split.not_enrolled)) or 'none'}"
    )


def _format_for(given: Format | None, output: Path | None) -> Format:
    """--format, else the --output file's extension, else table on a terminal, JSON piped.

    An extension that names no format (`report.txt`) is refused rather than silently
    filled with JSON.
    """
    if given is not None:
        return given
    if output is None:
        return Format.TABLE if sys.stdout.isatty() else Format.JSON
    suffix = output.suffix.lower().lstrip(".")
    if suffix in {choice.value for choice in Format if choice is not Format.TABLE}:
        return Format(suffix)
    raise BadInputError(
        f"--output {output}: the extension names no format; use .json, .csv or .html,"
        " or say which with --format"
    )


def _render_any(chosen: Format, result: AuditResult, out: TextIO) -> None:
    if chosen is Format.JSON:
        write_json(result, out)
    elif chosen is Format.CSV:
        write_csv(result, out)
    else:
        _render(chosen, result, out)


def _render(chosen: Format, result: AuditResult, out: TextIO) -> None:
    if chosen is Format.HTML:
        from keyturn.reports.html_report import write_html

        write_html(result, out)
    else:
        # Rendered into a buffer: say explicitly whether the real stdout is a terminal.
        write_table(result, table_console(out, terminal=sys.stdout.isatty()))
