"""`keyturn rotate`: replace access keys safely, store them, retire the old ones.

Thin shell: validate every flag before the first write, build the service, run users with
bounded concurrency, print a summary. Secrets are printed only with --show-secret.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from keyturn.adapters.sns import rotation_notice
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
from keyturn.domain.model import Finding
from keyturn.services.rotate import Outcome, RotationService, run_many
from keyturn.wiring import Aws, build_audit, build_aws, build_rotation, notify_operators

DUE_FINDINGS = frozenset({Finding.NOTIFY, Finding.DEACTIVATE, Finding.UNUSED})


def rotate(
    ctx: typer.Context,
    users: Annotated[list[str] | None, typer.Argument(help="IAM users to rotate.")] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Rotate every user whose active key the policy flags.")
    ] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Rotate users carrying this tag, KEY=VALUE (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print the plan; change nothing.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Finish rotations left half-done (named users, or all)."),
    ] = False,
    rollback: Annotated[
        str | None,
        typer.Option("--rollback", help="Reactivate USER's previous key and restore the store."),
    ] = None,
    show_secret: Annotated[
        bool, typer.Option("--show-secret", help="Print the new secret access keys.")
    ] = False,
    store: Annotated[
        str | None, typer.Option("--store", help="vault or secretsmanager ([rotate] store).")
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help="Path/name template with {account} and {user}."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Users in parallel (default: from --rate).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="IAM requests per second, at most.")
    ] = None,
    overlap_minutes: Annotated[
        float | None,
        typer.Option("--overlap-minutes", help="Keep the old key active this long."),
    ] = None,
    grace_days: Annotated[
        float | None,
        typer.Option("--grace-days", help="Delete the deactivated old key after this."),
    ] = None,
    verify_successes: Annotated[
        int | None, typer.Option("--verify-successes", help="STS successes in a row needed.")
    ] = None,
    verify_timeout: Annotated[
        float | None, typer.Option("--verify-timeout", help="Seconds allowed to verify.")
    ] = None,
    accounts: AccountsOption = None,
    org: OrgOption = False,
    role_name: RoleNameOption = None,
) -> int:
    """Rotate access keys: create, store as pending, verify, promote, retire the old key.

    Crash-safe: an interrupted run is finished by `--resume`; `--rollback USER` undoes the
    latest rotation while its old key still exists.
    """
    cli: CliContext = ctx.obj
    tags = _parse_tags(tag or [])
    modes = sum([bool(users) or due or bool(tags), resume, rollback is not None])
    if modes > 1 and not (resume and not (due or tags or rollback)):
        raise BadInputError("use one of: USER.../--due/--tag, --resume, --rollback USER")
    if not (users or due or tags or resume or rollback):
        raise BadInputError("name the users to rotate, or use --due, --tag, --resume")
    if show_secret and dry_run:
        raise BadInputError("--show-secret has nothing to show with --dry-run")
    choice = choose(accounts, org)
    if choice.many and (rollback is not None or show_secret):
        raise BadInputError("--rollback and --show-secret work in one account at a time")
    loaded = cli.settings(
        {
            "rotate.store": store,
            "rotate.path": path,
            "rotate.workers": workers,
            "rotate.rate": rate,
            "rotate.overlap_minutes": overlap_minutes,
            "rotate.grace_days": grace_days,
            "rotate.verify_successes": verify_successes,
            "rotate.verify_timeout_seconds": verify_timeout,
            "fanout.role_name": role_name,
        }
    )
    settings = loaded.settings
    err = Console(stderr=True, highlight=False)

    def run_in(aws: Aws, account: str | None = None) -> list[Outcome]:
        """The whole rotation in one account; `account` only labels the output."""
        service = build_rotation(settings, aws, keep_secret=show_secret)
        if rollback is not None:
            return [service.rollback(rollback)]
        chosen = list(dict.fromkeys(users or []))
        if due:
            chosen += _due_users(settings, aws)
        if tags:
            chosen += _tagged_users(aws, tags)
        if resume and not chosen:
            chosen = service.pending_users()
        chosen = list(dict.fromkeys(chosen))
        where = f" in {account}" if account else ""
        if not chosen:
            err.print(f"nothing to rotate{where}")
            return []
        if dry_run:
            _print_plan(service, chosen, settings.rotate.worker_count(), where)
            return []
        action = service.resume if resume else service.rotate
        done = _run_with_progress(chosen, action, settings.rotate.worker_count(), err)
        return [replace(o, user=f"{account}/{o.user}") if account else o for o in done]

    failed_accounts: dict[str, str] = {}
    if choice.many:
        fanned = across(settings, choice, lambda aws, account: run_in(aws, account))
        outcomes = [o for account in sorted(fanned.results) for o in fanned.results[account]]
        failed_accounts = fanned.failures
        report_failures(fanned)
    else:
        outcomes = run_in(build_aws(settings))
    if not outcomes:
        return exit_codes.FAILED if failed_accounts else exit_codes.OK

    _print_summary(outcomes)
    if show_secret:
        for outcome in outcomes:
            if outcome.secret is not None:
                typer.echo(
                    json.dumps(
                        {
                            "user": outcome.user,
                            "access_key_id": outcome.secret.access_key_id,
                            "secret_access_key": outcome.secret.secret_access_key,
                        }
                    )
                )
    # notify.sns_topic_arn, if set; after the secret asked for, which a failure must not lose
    notify_operators(settings, rotation_notice(outcomes))
    failed = [outcome for outcome in outcomes if not outcome.ok]
    return exit_codes.FAILED if failed or failed_accounts else exit_codes.OK


def _parse_tags(raw: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--tag {item!r}: expected KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


def _due_users(settings: object, aws: object) -> list[str]:
    from keyturn.config import Settings
    from keyturn.services.audit import AuditRequest
    from keyturn.wiring import Aws

    assert isinstance(settings, Settings)
    assert isinstance(aws, Aws)
    result = build_audit(settings, aws).run(AuditRequest())
    return sorted(
        {
            audited.key.user
            for audited in result.keys
            if audited.key.active
            and audited.finding in DUE_FINDINGS
            and audited.key.user != "<root_account>"
        }
    )


def _tagged_users(aws: object, tags: dict[str, str]) -> list[str]:
    from keyturn.adapters.iam_rotation import users_with_tags
    from keyturn.wiring import Aws

    assert isinstance(aws, Aws)
    return users_with_tags(aws.iam(), tags)


def _run_with_progress(
    users: list[str], action: object, workers: int, err: Console
) -> list[Outcome]:
    assert callable(action)
    if not sys.stderr.isatty():
        return run_many(users, action, workers=workers)
    columns = (
        TextColumn("rotating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("rotate", total=len(users), last="")

        def done(outcome: Outcome) -> None:
            progress.update(task, advance=1, last=outcome.user)

        return run_many(users, action, workers=workers, on_done=done)


def _print_plan(service: RotationService, users: list[str], workers: int, where: str = "") -> None:
    table = Table(title=f"rotation plan{where} (dry run: nothing changed)")
    for column in ("user", "action", "replaces", "retires first", "store"):
        table.add_column(column)
    for user in users:
        try:
            plan = service.plan(user)
        except BadInputError as exc:
            table.add_row(user, f"[red]cannot: {exc}[/red]", "", "", "")
            continue
        except Exception as exc:  # show every user's problem in the plan
            table.add_row(user, f"[red]cannot: {exc}[/red]", "", "", "")
            continue
        table.add_row(
            user, plan.action, plan.old_key_id or "-", plan.retire_first or "-", plan.location
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


def _print_summary(outcomes: list[Outcome]) -> None:
    table = Table(title="rotation summary")
    for column in ("user", "result", "state", "old key", "new key", "note"):
        table.add_column(column)
    for outcome in outcomes:
        result = "[green]ok[/green]" if outcome.ok else "[red]FAILED[/red]"
        note = outcome.message
        if outcome.warnings:
            note = "; ".join([note, *outcome.warnings])
        table.add_row(
            outcome.user,
            result,
            outcome.state,
            outcome.old_key_id or "-",
            outcome.new_key_id or "-",
            note,
        )
    ok = sum(1 for outcome in outcomes if outcome.ok)
    console = Console(width=160 if not sys.stdout.isatty() else None)
    console.print(table)
    console.print(f"{ok} rotated or advanced, {len(outcomes) - ok} failed")
