"""`keyturn rotate`: replace access keys safely, store them, retire the old ones.

Thin shell: validate every flag before the first write, build the service, run users with
bounded concurrency, print a summary. Secrets are printed only with --show-secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
from keyturn.cli.output import stdout_console
from keyturn.cli.rotate_output import (
    SCHEMA,
    Interrupted,
    Mode,
    StepLog,
    UserResult,
    exit_code,
    interrupted_hint,
    print_report,
    run_users,
)
from keyturn.cli.rotate_output import as_json as as_json_document
from keyturn.config import Settings
from keyturn.domain.errors import BadInputError
from keyturn.domain.model import Finding
from keyturn.services.enrollment import EnrollmentService
from keyturn.services.rotate import Outcome, RotationService
from keyturn.wiring import (
    Aws,
    build_audit,
    build_aws,
    build_enrollment,
    build_rotation,
    build_store,
    notify_operators,
    rotation_checkpoint,
)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


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
        str | None,
        typer.Option(
            "--store",
            help="Where new keys go: vault (default; needs VAULT_ADDR) or secretsmanager"
            " ([rotate] store).",
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="Vault KV path or secret name, with {account} and {user}"
            " (default aws/{account}/{user}; [rotate] path).",
        ),
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
    enroll: Annotated[
        bool,
        typer.Option(
            "--enroll",
            help="Enroll named users that are not enrolled yet (their first rotation).",
        ),
    ] = False,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help=f'table, or json: one document with "schema": "{SCHEMA}".',
        ),
    ] = Format.TABLE,
    accounts: AccountsOption = None,
    org: OrgOption = False,
    role_name: RoleNameOption = None,
) -> int:
    """Rotate access keys: create, store as pending, verify, promote, retire the old key.

    New keys go to Vault KV by default (VAULT_ADDR, path aws/{account}/{user}); use
    `--store secretsmanager` for AWS Secrets Manager. Only enrolled users are rotated
    (`keyturn enroll`): `--due` and `--tag` skip the others and list them as "due, not
    enrolled"; a named user that is not enrolled needs `--enroll`. Crash-safe: an interrupted run is
    finished by `--resume`; `--rollback USER` undoes the latest rotation while its old key
    still exists. Exit 0 when every user succeeded, 4 when every user failed for the same
    reason (not found, refused, unreachable), 1 otherwise, 130 on Ctrl-C.
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
    mode = Mode.ROLLBACK if rollback is not None else Mode.RESUME if resume else Mode.ROTATE
    as_json = output_format is Format.JSON
    plans: list[dict[str, Any]] = []

    def run_in(aws: Aws, account: str | None = None) -> list[UserResult]:
        """The whole rotation in one account; `account` only labels the output."""
        steps = StepLog(rotation_checkpoint())
        secret_store = build_store(settings, aws)
        service = build_rotation(
            settings, aws, keep_secret=show_secret, checkpoint=steps, store=secret_store
        )
        if rollback is not None:
            done = service.rollback(rollback)
            return [UserResult(done, steps.of(rollback), exit_codes.OK, account)]
        named = list(dict.fromkeys(users or []))
        selected: list[str] = []
        if due:
            selected += _due_users(settings, aws)
        if tags:
            selected += _tagged_users(aws, tags)
        where = f" in {account}" if account else ""
        refused: list[UserResult] = []
        action: Callable[[str], Outcome | None]
        if resume:
            chosen = list(dict.fromkeys(named + selected)) or service.pending_users()
            action = service.resume
        else:
            enrollment = build_enrollment(
                settings, aws, store=secret_store, checkpoint=steps, rotation=service
            )
            chosen, refused, action = _enrolled_only(
                service, enrollment, named, selected, enroll, err, where, account, settings
            )
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            if not refused:
                err.print(f"nothing to {'resume' if resume else 'rotate'}{where}")
            return refused
        if dry_run:
            if as_json:
                plans.extend(_plan_json(service, chosen, account))
            else:
                _print_plan(service, chosen, settings.rotate.worker_count(), where)
            return refused
        return refused + run_users(chosen, action, settings.rotate.worker_count(), steps, account)

    failed_accounts: dict[str, str] = {}
    try:
        if choice.many:
            fanned = across(settings, choice, lambda aws, account: run_in(aws, account))
            results = [r for account in sorted(fanned.results) for r in fanned.results[account]]
            failed_accounts = fanned.failures
            report_failures(fanned)
        else:
            results = run_in(build_aws(settings))
    except Interrupted as stop:
        err.print(escape(interrupted_hint(stop)), soft_wrap=True)
        return exit_codes.INTERRUPTED
    if as_json and dry_run:
        document = {"schema": SCHEMA, "mode": mode.value, "dry_run": True, "plan": plans}
        typer.echo(json.dumps({**document, "failed_accounts": failed_accounts}, indent=2))
    elif as_json:
        typer.echo(
            json.dumps(as_json_document(mode, results, failed_accounts, show_secret=show_secret))
        )
    elif results:
        print_report(mode, results)
        if show_secret:
            for result in results:
                secret = result.outcome.secret
                if secret is not None:
                    typer.echo(
                        json.dumps(
                            {
                                "user": result.outcome.user,
                                "access_key_id": secret.access_key_id,
                                "secret_access_key": secret.secret_access_key,
                            }
                        )
                    )
    if not dry_run and results:
        # notify.sns_topic_arn, if set; after the secret asked for, which a failure must not lose
        notify_operators(settings, rotation_notice(result.outcome for result in results))
    return exit_code(results, failed_accounts)


def _enrolled_only(
    service: RotationService,
    enrollment: EnrollmentService,
    named: list[str],
    selected: list[str],
    enroll: bool,
    err: Console,
    where: str,
    account: str | None,
    settings: Settings,
) -> tuple[list[str], list[UserResult], Callable[[str], Outcome | None]]:
    """Keep the enrolled users (issue 17); list the due ones that are not, refuse (or,
    with --enroll, enroll) the named ones that are not. A forged enrollment tag is named."""
    split = enrollment.partition(named + selected)
    for rejected in split.rejected:
        err.print(f"warning: {escape(rejected.line())}", soft_wrap=True)
    skipped = [u for u in split.not_enrolled if u not in named and u not in split.unknown]
    if skipped:
        err.print(
            f"due, not enrolled{where} (not rotated): {escape(', '.join(skipped))}; "
            "enroll them with `keyturn enroll USER` once their consumers read the store",
            soft_wrap=True,
        )
    # A named user IAM does not know goes to the rotation, which says "no such IAM user"
    # with its own exit code, rather than being asked to enroll.
    strangers = [u for u in named if u in split.not_enrolled and u not in split.unknown]
    chosen = [u for u in split.enrolled if u not in skipped] + [
        u for u in named if u in split.unknown
    ]
    refused: list[UserResult] = []
    if strangers and enroll:
        chosen += strangers
    elif strangers:
        hold = f"{settings.rotate.enroll_hold_days:g} days"
        refused = [
            UserResult(
                Outcome(
                    user,
                    False,
                    "not enrolled",
                    message=f"{user} is not enrolled for rotation: run `keyturn enroll {user}` "
                    f"(its first rotation, old key kept {hold}), or add --enroll",
                ),
                (),
                exit_codes.FAILED,
                account,
            )
            for user in strangers
        ]
    return (
        chosen,
        refused,
        _rotate_or_enroll(service, enrollment, set(strangers) if enroll else set()),
    )


def _rotate_or_enroll(
    service: RotationService, enrollment: EnrollmentService, to_enroll: set[str]
) -> Callable[[str], Outcome | None]:
    """Rotate enrolled users; enroll the named newcomers (`--enroll`) first."""

    def run(user: str) -> Outcome:
        if user not in to_enroll:
            return service.rotate(user)
        enrolled = enrollment.enroll(user)
        if enrolled.ok and enrolled.rotation is None:
            return service.rotate(user)  # the store already served it: rotate as asked
        if enrolled.rotation is not None:
            return replace(enrolled.rotation, message=f"enrolled: {enrolled.message}")
        return Outcome(user, enrolled.ok, enrolled.action, message=enrolled.message)

    return run


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
    stdout_console().print(table)


def _plan_json(
    service: RotationService, users: list[str], account: str | None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for user in users:
        entry: dict[str, Any] = {"account": account, "user": user}
        try:
            plan = service.plan(user)
        except Exception as exc:  # every user's problem in the plan, as the table does
            entry.update(action="cannot", reason=" ".join(str(exc).split()))
        else:
            entry.update(
                action=plan.action,
                replaces=plan.old_key_id,
                retires_first=plan.retire_first,
                store=plan.location,
            )
        found.append(entry)
    return found
