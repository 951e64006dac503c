"""`keyturn enforce`: the key-age policy. Prints the plan; acts only with --apply."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from keyturn.adapters.event_log import JsonLinesSink, NullSink
from keyturn.adapters.sns import Outcome as NoticeOutcome
from keyturn.adapters.sns import RunNotice
from keyturn.cli import accounts as multi
from keyturn.cli import exit_codes
from keyturn.cli.context import CliContext
from keyturn.config import Settings
from keyturn.domain.enforcement import Plan, SkipReason
from keyturn.domain.errors import OperationFailedError
from keyturn.ports import EventSink
from keyturn.services.enforce import EnforceConfig, Outcome, resolve_config
from keyturn.wiring import Aws, build_authenticator, build_aws, build_enforce, notify_operators

SHOWN_ROWS = 40
# `--json` prints one document with this top-level "schema" (one per account under --org,
# inside a document with the same schema).
SCHEMA = "keyturn.enforce/v1"
STYLE = {
    "notify": "yellow",
    "remind": "yellow",
    "deactivate": "bold red",
    "delete": "bold magenta",
    "resend": "cyan",
    "record": "dim",
    "forget": "dim",
}


def enforce(
    ctx: typer.Context,
    apply: Annotated[
        bool | None,
        typer.Option(
            "--apply/--dry-run",
            help="Act (send notices, deactivate, delete). Default: dry run, print the plan.",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Write every action as a JSON line to this file."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan and outcome as JSON.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Dry run: exit 3 when the plan is not empty or a key is out of policy"
            " with nobody acting on it (no contact, notices off, unreadable exemption).",
        ),
    ] = False,
    notify_after: Annotated[
        int | None, typer.Option("--notify-after", help="Days before the first notice (30).")
    ] = None,
    grace: Annotated[
        int | None, typer.Option("--grace", help="Days from notice to deactivation (7).")
    ] = None,
    delete_after: Annotated[
        int | None,
        typer.Option("--delete-after", help="Delete keys this many days after deactivation."),
    ] = None,
    unused_after: Annotated[
        int | None, typer.Option("--unused-after", help="Also enforce on keys unused this long.")
    ] = None,
    remind_every: Annotated[
        int | None, typer.Option("--remind-every", help="Remind every N days until deadline.")
    ] = None,
    source_email: Annotated[
        str | None, typer.Option("--source-email", help="SES sender (env SOURCEMAIL).")
    ] = None,
    fallback_contact: Annotated[
        str | None,
        typer.Option("--fallback-contact", help="Who is told about untagged users' keys."),
    ] = None,
    accounts: multi.AccountsOption = None,
    org: multi.OrgOption = False,
    role_name: multi.RoleNameOption = None,
) -> int:
    """Apply the key-age policy: notify, then deactivate, optionally delete.

    Without --apply nothing changes: the plan is printed. Each key is notified once per
    stage; the state that makes this true is kept in IAM user tags keyturn:enforce:KEYID.
    """
    cli: CliContext = ctx.obj
    loaded = cli.settings(
        {
            "policy.notify_after_days": notify_after,
            "policy.grace_days": grace,
            "policy.delete_after_days": delete_after,
            "policy.unused_after_days": unused_after,
            "enforce.remind_every_days": remind_every,
            "enforce.dry_run": None if apply is None else not apply,
            "notify.source_email": source_email,
            "notify.fallback_contact": fallback_contact,
            "fanout.role_name": role_name,
        },
        flag_names={"fanout.role_name": "--role-name"},
    )
    config = resolve_config(loaded.settings)
    dry_run = config.dry_run
    choice = multi.choose(accounts, org)
    if choice.many:
        return _enforce_accounts(
            loaded.settings, config, choice, events, as_json=as_json, check=check
        )
    with ExitStack() as stack:
        sink: EventSink = NullSink()
        if events is not None:
            sink = stack.enter_context(JsonLinesSink(events))
        service = build_enforce(loaded.settings, config, sink)
        planned = service.plan()
        service.report_plan(planned, dry_run=dry_run)
        outcome = None if dry_run else service.apply(planned)
    terminal = sys.stdout.isatty()
    out = Console(highlight=False, width=None if terminal else 160)
    if as_json:
        typer.echo(json.dumps(_as_json(planned, outcome, dry_run), indent=2))
    else:
        _print(out, planned, outcome, dry_run)
        if dry_run and config.mail.source_email is None and _owes_notices(planned):
            out.print(
                "[yellow]note:[/] no sender is set: --apply needs SOURCEMAIL"
                " (or notify.source_email) to send these notices"
            )
    if outcome is not None:  # an acting run tells the operators' topic, if one is set
        counts = {"planned": len(planned.steps), "skipped": len(planned.skips), **outcome.summary()}
        state: NoticeOutcome = "failed" if outcome.failures else "ok"
        notify_operators(loaded.settings, RunNotice("keyturn.enforce", state, counts))
    if outcome is not None and outcome.failures:
        first = "; ".join(outcome.failures[:3])
        raise OperationFailedError(
            f"{len(outcome.failures)} step(s) failed ({first}); the rest was applied,"
            " and running enforce again retries what failed"
        )
    if dry_run and check and _needs_action(planned):
        return exit_codes.OUT_OF_POLICY
    return exit_codes.OK


def _needs_action(planned: Plan) -> bool:
    """What `--check` fails on: a step to take, or a due key nobody acts on."""
    return not planned.empty or bool(planned.unattended)


def _owes_notices(planned: Plan) -> bool:
    return any(step.notice is not None and step.recipients for step in planned.steps)


def _print(out: Console, planned: Plan, outcome: Outcome | None, dry_run: bool) -> None:
    title = "enforce plan (dry run: nothing changed)" if dry_run else "enforce: applied"
    if planned.steps:
        table = Table(title=title, title_justify="left")
        for column in ("action", "user", "key id", "age", "deadline", "to", "why"):
            table.add_column(column, overflow="fold")
        for step in planned.steps[:SHOWN_ROWS]:
            table.add_row(
                f"[{STYLE.get(step.action.value, '')}]{step.action.value}[/]",
                escape(step.user),
                step.key_id,
                "" if step.age_days is None else str(step.age_days),
                str(step.deadline or ""),
                escape(" ".join(step.recipients)),
                escape(step.reason),
            )
        out.print(table)
        if len(planned.steps) > SHOWN_ROWS:
            out.print(f"[dim]... and {len(planned.steps) - SHOWN_ROWS} more (see --json)[/]")
    else:
        out.print(f"[green]{title}: nothing to do[/]")
    _print_skips(out, planned)
    counts = Counter(step.action.value for step in planned.steps)
    skips = Counter(skip.why.value for skip in planned.skips)
    parts = [f"{count} {name}" for name, count in sorted(counts.items())]
    out.print(
        "plan: "
        + (", ".join(parts) or "no steps")
        + f"; {planned.ok} key(s) within policy"
        + "".join(f"; {count} skipped ({why})" for why, count in sorted(skips.items()))
    )
    if planned.unattended:
        out.print(
            f"[bold red]{len(planned.unattended)} key(s) out of policy with nobody acting on"
            " them[/] (listed above; `--check` fails on them)"
        )
    for flag in planned.flags:
        out.print(f"[yellow]ignored:[/] {escape(flag.line)}")
    if outcome is None:
        if planned.steps:
            out.print("[dim]run again with --apply to act on this plan[/]")
        return
    done = ", ".join(f"{value} {key}" for key, value in outcome.summary().items() if value)
    out.print(f"[bold]applied:[/] {done or 'nothing'}")
    for deferred in outcome.deferred:
        out.print(f"[yellow]deferred:[/] {escape(deferred)}")


def _print_skips(out: Console, planned: Plan) -> None:
    """Every skipped key that is out of policy, worst first: skipped keys never vanish."""
    listed = sorted(
        (skip for skip in planned.skips if skip.why is not SkipReason.EXEMPT),
        key=lambda skip: (not skip.unattended, -(skip.age_days or 0)),
    )
    if not listed:
        return
    table = Table(title="skipped: out of policy, not acted on today", title_justify="left")
    for column in ("user", "key id", "age", "reason", "why", "what happens next"):
        table.add_column(column, overflow="fold")
    for skip in listed[:SHOWN_ROWS]:
        style = "bold red" if skip.unattended else ""
        table.add_row(
            escape(skip.user),
            skip.key_id,
            "" if skip.age_days is None else str(skip.age_days),
            f"[{style}]{skip.why.value}[/]" if style else skip.why.value,
            escape(skip.reason),
            escape(skip.next),
        )
    out.print(table)
    if len(listed) > SHOWN_ROWS:
        out.print(f"[dim]... and {len(listed) - SHOWN_ROWS} more (see --json)[/]")


def _as_json(planned: Plan, outcome: Outcome | None, dry_run: bool) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "dry_run": dry_run,
        "today": planned.today.isoformat(),
        "steps": [
            {
                "action": step.action.value,
                "user": step.user,
                "key_id": step.key_id,
                "age_days": step.age_days,
                "deadline": step.deadline.isoformat() if step.deadline else None,
                "notice": step.notice.value if step.notice else None,
                "recipients": list(step.recipients),
                "reason": step.reason,
            }
            for step in planned.steps
        ],
        "skipped": len(planned.skips),
        "skips": [
            {
                "user": skip.user,
                "key_id": skip.key_id,
                "age_days": skip.age_days,
                "reason": skip.why.value,
                "detail": skip.reason,
                "deadline": skip.deadline.isoformat() if skip.deadline else None,
                "next": skip.next,
                "unattended": skip.unattended,
            }
            for skip in sorted(planned.skips, key=lambda skip: -(skip.age_days or 0))
        ],
        "unattended": len(planned.unattended),
        "within_policy": planned.ok,
        "warnings": list(planned.warnings),
        "ignored_tags": [
            {"user": flag.user, "tag": flag.tag, "kind": flag.kind.value, "detail": flag.detail}
            for flag in planned.flags
        ],
        "outcome": outcome.summary() if outcome else None,
        "failures": outcome.failures if outcome else [],
        "deferred": outcome.deferred if outcome else [],
    }


def _enforce_accounts(
    settings: Settings,
    config: EnforceConfig,
    choice: multi.AccountChoice,
    events: Path | None,
    *,
    as_json: bool,
    check: bool = False,
) -> int:
    """The same enforcement in every chosen account; each account's plan and outcome is
    printed under its id, failed accounts are summarised on stderr, and any failure
    (an account, or a step in one) makes the exit status 1 at the end. With `--check`, a
    dry run in which any account needs action exits 3 (a failure still wins: 1)."""
    with ExitStack() as stack:
        sink: EventSink = NullSink()
        if events is not None:
            sink = stack.enter_context(JsonLinesSink(events))
        lock = threading.Lock()
        # State tags are sealed with keyturn's own key through the operator's credentials;
        # only IAM goes through each account's member role (which may not use that key).
        authenticator = build_authenticator(settings, build_aws(settings))

        def one(aws: Aws, account: str) -> tuple[Plan, Outcome | None]:
            tagged = _Tagged(sink, account, lock)
            service = build_enforce(settings, config, tagged, aws=aws, authenticator=authenticator)
            planned = service.plan()
            service.report_plan(planned, dry_run=config.dry_run)
            return planned, None if config.dry_run else service.apply(planned)

        spread = multi.across(settings, choice, one)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "schema": SCHEMA,
                    "dry_run": config.dry_run,
                    "accounts": {
                        account: _as_json(planned, outcome, config.dry_run)
                        for account, (planned, outcome) in sorted(spread.results.items())
                    },
                    "failed_accounts": spread.failures,
                },
                indent=2,
            )
        )
    else:
        out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        for account, (planned, outcome) in sorted(spread.results.items()):
            out.rule(f"account {account}")
            _print(out, planned, outcome, config.dry_run)
    multi.report_failures(spread)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    step_failures = False
    for account, (_, outcome) in sorted(spread.results.items()):
        if outcome is not None and outcome.failures:
            step_failures = True
            shown = escape("; ".join(outcome.failures[:3]))
            err.print(f"[red]{account}: {len(outcome.failures)} step(s) failed[/]: {shown}")
    if spread.failures or step_failures:
        return exit_codes.FAILED
    needing = sorted(
        account for account, (planned, _) in spread.results.items() if _needs_action(planned)
    )
    if config.dry_run and check and needing:
        err.print(f"--check: {len(needing)} account(s) need action: {', '.join(needing)}")
        return exit_codes.OUT_OF_POLICY
    return exit_codes.OK


class _Tagged:
    """Events from many accounts into one sink, each carrying its account id."""

    def __init__(self, sink: EventSink, account: str, lock: threading.Lock) -> None:
        self._sink = sink
        self._account = account
        self._lock = lock

    def emit(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self._sink.emit({**event, "account": self._account})
