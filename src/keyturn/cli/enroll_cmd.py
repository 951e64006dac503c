"""`keyturn enroll` / `keyturn unenroll`: which users the schedule may rotate.

Thin shell over keyturn.services.enrollment: validate flags, build the service, print where
consumers must read and what happened, exit non-zero if any user failed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keyturn.cli import exit_codes
from keyturn.cli.context import CliContext
from keyturn.domain.errors import BadInputError
from keyturn.services.enrollment import EnrollmentService, EnrollOutcome
from keyturn.wiring import build_aws, build_enrollment

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
) -> int:
    """Enroll users for scheduled rotation: their consumers read the store from now on.

    Enrolling is the user's first rotation into the store (the current secret cannot be read
    back from IAM): the new key is stored and verified, and the old key stays active for
    `--hold-days` (default `rotate.enroll_hold_days`, 7) so you can point consumers at the
    store. If the store already serves a working active key of the user, the enrollment is
    only recorded.
    """
    service = _service(ctx, store, path, {"rotate.enroll_hold_days": hold_days})
    users = _unique(users)
    outcomes = [service.plan(u) if dry_run else service.enroll(u) for u in users]
    title = "enrollment plan (dry run: nothing changed)" if dry_run else "enrollment"
    return _report(outcomes, title, as_json)


def unenroll(
    ctx: typer.Context,
    users: UsersArg,
    store: StoreOpt = None,
    path: PathOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Stop scheduled rotation of users; their keys and store entries stay as they are."""
    service = _service(ctx, store, path, {})
    outcomes = [service.unenroll(u) for u in _unique(users)]
    return _report(outcomes, "unenrollment", as_json)


def _unique(users: list[str]) -> list[str]:
    if not users:
        raise BadInputError("name at least one IAM user")
    return list(dict.fromkeys(users))


def _service(
    ctx: typer.Context, store: str | None, path: str | None, extra: dict[str, object]
) -> EnrollmentService:
    cli: CliContext = ctx.obj
    loaded = cli.settings({"rotate.store": store, "rotate.path": path, **extra})
    settings = loaded.settings
    service: EnrollmentService = build_enrollment(settings, build_aws(settings))
    return service


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
