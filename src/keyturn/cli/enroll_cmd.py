"""`keyturn enroll` / `keyturn unenroll`: which users the schedule may rotate.

Thin shell over keyturn.services.enrollment: validate flags, build the service, print where
consumers must read and what happened, exit non-zero if any user failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keyturn.cli import exit_codes
from keyturn.cli.accounts import (
    AccountsOption,
    OrgOption,
    RoleNameOption,
    across,
    choose,
    report_failures,
)
from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.services.enrollment import EnrollmentService, EnrollOutcome
from keyturn.wiring import Aws, build_aws, build_enrollment

SCHEMA = "keyturn.enroll/v1"

UsersArg = Annotated[list[str], typer.Argument(help="IAM users.", show_default=False)]
StoreOpt = Annotated[
    str | None, typer.Option("--store", help="vault or secretsmanager ([rotate] store).")
]
PathOpt = Annotated[
    str | None, typer.Option("--path", help="Path/name template with {account} and {user}.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def enroll(
    ctx: typer.Context,
    users: UsersArg,
    store: StoreOpt = None,
    path: PathOpt = None,
    hold_days: Annotated[
        float | None,
        typer.Option(
            "--hold-days", help="Keep the old key active this long after the first rotation."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print what would happen; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
    accounts: AccountsOption = None,
    org: OrgOption = False,
    role_name: RoleNameOption = None,
) -> int:
    """Enroll users for scheduled rotation: their consumers read the store from now on.

    Enrolling is the user's first rotation into the store (the current secret cannot be read
    back from IAM): the new key is stored and verified, and the old key stays active for
    `--hold-days` (default `rotate.enroll_hold_days`, 7) so you can point consumers at the
    store. If the store already serves a working active key of the user, the enrollment is
    only recorded.
    """
    names = _unique(users)
    title = "enrollment plan (dry run: nothing changed)" if dry_run else "enrollment"

    def work(service: EnrollmentService, user: str) -> EnrollOutcome:
        return service.plan(user) if dry_run else service.enroll(user)

    extra: dict[str, object] = {"rotate.enroll_hold_days": hold_days, "fanout.role_name": role_name}
    return _run(ctx, store, path, extra, names, work, (accounts, org), title, as_json)


def unenroll(
    ctx: typer.Context,
    users: UsersArg,
    store: StoreOpt = None,
    path: PathOpt = None,
    as_json: JsonOpt = False,
    accounts: AccountsOption = None,
    org: OrgOption = False,
    role_name: RoleNameOption = None,
) -> int:
    """Stop scheduled rotation of users; their keys and store entries stay as they are."""

    def work(service: EnrollmentService, user: str) -> EnrollOutcome:
        return service.unenroll(user)

    extra: dict[str, object] = {"fanout.role_name": role_name}
    names = _unique(users)
    return _run(ctx, store, path, extra, names, work, (accounts, org), "unenrollment", as_json)


def _run(
    ctx: typer.Context,
    store: str | None,
    path: str | None,
    extra: dict[str, object],
    users: list[str],
    work: Callable[[EnrollmentService, str], EnrollOutcome],
    where: tuple[str | None, bool],
    title: str,
    as_json: bool,
) -> int:
    """Each user in this account, or in every chosen account (users named per account)."""
    cli: CliContext = ctx.obj
    settings = cli.settings({"rotate.store": store, "rotate.path": path, **extra}).settings
    choice = choose(*where)

    def in_account(aws: Aws, account: str | None = None) -> list[EnrollOutcome]:
        service: EnrollmentService = build_enrollment(settings, aws)
        found = [work(service, user) for user in users]
        if account:
            found = [replace(o, user=f"{account}/{o.user}") for o in found]
        return found

    if not choice.many:
        return _report(in_account(build_aws(settings)), title, as_json)
    fanned = across(settings, choice, in_account)
    report_failures(fanned)
    outcomes = [o for account in sorted(fanned.results) for o in fanned.results[account]]
    code = _report(outcomes, title, as_json)
    return exit_codes.FAILED if fanned.failures else code


def _unique(users: list[str]) -> list[str]:
    if not users:
        raise BadInputError("name at least one IAM user")
    return list(dict.fromkeys(users))


def _report(outcomes: list[EnrollOutcome], title: str, as_json: bool) -> int:
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        rows = [
            {
                "user": o.user,
                "ok": o.ok,
                "action": o.action,
                "location": o.location,
                "message": o.message,
                "warnings": o.warnings,
                "new_key_id": o.rotation.new_key_id if o.rotation else None,
                "old_key_id": o.rotation.old_key_id if o.rotation else None,
            }
            for o in outcomes
        ]
        typer.echo(json.dumps({"schema": SCHEMA, "results": rows}, indent=2))
    else:
        table = Table(title=title)
        for column in ("user", "result", "consumers read", "note"):
            table.add_column(column, overflow="fold")
        for o in outcomes:
            result = o.action if o.ok else "[red]FAILED[/red]"
            note = "; ".join([o.message, *o.warnings])
            table.add_row(escape(o.user), result, escape(o.location), escape(note))
        Console(width=160 if not sys.stdout.isatty() else None).print(table)
    return exit_codes.FAILED if failed else exit_codes.OK
