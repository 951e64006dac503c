"""What `keyturn rotate` tells its reader: the run loop's bookkeeping, words and JSON.

Kept apart from the command's flags (rotate_cmd.py) so the report can change without
touching option parsing. Three rules:

- the words say what this run did: a `--resume` that found nothing half-done says
  "nothing to resume", not "2 rotated"; a rollback says "rolled back";
- every failure keeps its exit code (cli/exit_codes.py): `rotate nobody` exits 4 with one
  line, as `audit --user nobody` does, instead of 1 and a table of raw AWS errors;
- `--format json` prints one document whose "schema" is `keyturn.rotate/v1`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from keyturn.cli import exit_codes
from keyturn.cli.output import stdout_console
from keyturn.cli.progress import err_console
from keyturn.domain.errors import KeyturnError, NotFoundError
from keyturn.services.rotate import Outcome

SCHEMA = "keyturn.rotate/v1"
USER_CALLS = frozenset({"ListAccessKeys", "GetUser", "ListUserTags"})


class Mode(StrEnum):
    ROTATE = "rotate"
    RESUME = "resume"
    ROLLBACK = "rollback"


@dataclass
class StepLog:
    """The rotation service's checkpoint hook, recording which steps ran for each user.

    A step is reported only after it is done, so "no step" means this run changed nothing
    for that user. `then` is the next hook (the crash tests' SIGKILL).
    """

    then: Callable[[str, str], None]
    steps: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, step: str, user: str) -> None:
        with self._lock:
            self.steps.setdefault(user, []).append(step)
        self.then(step, user)

    def of(self, user: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(self.steps.get(user, ()))


@dataclass
class UserResult:
    """One user's line: the service's Outcome, what this run did, and its exit code."""

    outcome: Outcome
    steps: tuple[str, ...] = ()
    code: int = exit_codes.OK
    account: str | None = None

    def result(self, mode: Mode) -> str:
        outcome = self.outcome
        if not outcome.ok:
            return "failed"
        if outcome.state == "skipped":
            return "skipped"
        if mode is Mode.ROLLBACK:
            return "abandoned" if outcome.state == "aborted" else "rolled-back"
        if mode is Mode.RESUME:
            if outcome.waiting:
                return "waiting"
            return "resumed" if self.steps else "unchanged"
        return "rotated"

    def as_json(self, mode: Mode) -> dict[str, Any]:
        outcome = self.outcome
        found: dict[str, Any] = {
            "account": self.account,
            "user": outcome.user,
            "result": self.result(mode),
            "state": outcome.state,
            "old_key_id": outcome.old_key_id,
            "new_key_id": outcome.new_key_id,
            "steps": list(self.steps),
            "message": outcome.message,
            "warnings": list(outcome.warnings),
            # consumers' events the bus refused: marked in the journal, retried next run
            "unpublished_events": list(outcome.unpublished),
        }
        if not outcome.ok:
            found["exit_code"] = self.code
        return found


class Interrupted(Exception):
    """Ctrl-C during a run: which users were being rotated, which never started."""

    def __init__(self, in_flight: list[str], not_started: list[str]) -> None:
        super().__init__("interrupted")
        self.in_flight = in_flight
        self.not_started = not_started


def run_users(
    users: list[str],
    action: Callable[[str], Outcome | None],
    workers: int,
    steps: StepLog,
    account: str | None = None,
) -> list[UserResult]:
    """Run `action` per user, a bounded number at a time, keeping each failure's code.

    On Ctrl-C, users not yet started are cancelled and `Interrupted` names the ones in
    flight; those finish their current run before the process exits (a second Ctrl-C stops
    them at once, and `--resume` finishes whatever that leaves half-done).
    """
    results: list[UserResult] = []

    def guarded(user: str) -> UserResult | None:
        try:
            outcome = action(user)
        except KeyturnError as exc:
            failed = Outcome(user=user, ok=False, state="failed", message=_message(user, exc))
            return UserResult(failed, steps.of(user), exc.exit_code, account)
        if outcome is None:
            return None
        return UserResult(outcome, steps.of(user), exit_codes.OK, account)

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: dict[Future[UserResult | None], str] = {
        pool.submit(guarded, user): user for user in dict.fromkeys(users)
    }
    with _progress(len(futures)) as advance:
        try:
            for future in as_completed(futures):
                found = future.result()
                if found is not None:
                    results.append(found)
                    advance(found.outcome.user)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise Interrupted(
                [user for future, user in futures.items() if future.running()],
                [user for future, user in futures.items() if future.cancelled()],
            ) from None
    pool.shutdown(wait=True)
    order = {user: index for index, user in enumerate(users)}
    return sorted(results, key=lambda found: order.get(found.outcome.user, 0))


class _progress:
    """rotate's progress bar on a terminal's stderr; nothing elsewhere."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._bar: Progress | None = None

    def __enter__(self) -> Callable[[str], None]:
        if not sys.stderr.isatty():
            return lambda user: None
        columns = (
            TextColumn("rotating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
        )
        bar = self._bar = Progress(*columns, console=err_console(), transient=True)
        bar.start()
        task = bar.add_task("rotate", total=self._total, last="")
        return lambda user: bar.update(task, advance=1, last=user)

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _message(user: str, exc: KeyturnError) -> str:
    """One line; an unknown user is named as such, not as IAM's raw NoSuchEntity text."""
    cause = exc.__cause__
    if (
        isinstance(exc, NotFoundError)
        and isinstance(cause, ClientError)
        and cause.operation_name in USER_CALLS
    ):
        return f"no such IAM user: {user}"
    return " ".join(str(exc).split())


def interrupted_hint(stop: Interrupted) -> str:
    parts = ["interrupted"]
    if stop.in_flight:
        names = " ".join(stop.in_flight)
        parts.append(
            f"; in flight: {names}, finishing before keyturn exits (Ctrl-C again stops at"
            f" once); if stopped half-way, finish with `keyturn rotate --resume {names}`"
        )
    if stop.not_started:
        parts.append(f"; not started: {' '.join(stop.not_started)}")
    return "".join(parts)


# -- the report ---------------------------------------------------------------------------


def exit_code(results: Iterable[UserResult], failed_accounts: dict[str, str]) -> int:
    """0 if all went well; a shared specific code (4: not found, refused, unreachable) when
    every user failed the same way; otherwise 1."""
    found = list(results)
    failed = [result for result in found if not result.outcome.ok]
    if failed_accounts:
        return exit_codes.FAILED
    if not failed:
        return exit_codes.OK
    codes = {result.code for result in failed}
    if len(failed) == len(found) and len(codes) == 1:
        return codes.pop()
    return exit_codes.FAILED


def as_json(
    mode: Mode,
    results: list[UserResult],
    failed_accounts: dict[str, str],
    *,
    show_secret: bool = False,
) -> dict[str, Any]:
    users = []
    for result in results:
        entry = result.as_json(mode)
        secret = result.outcome.secret
        if show_secret and secret is not None:
            entry["secret_access_key"] = secret.secret_access_key
        users.append(entry)
    return {
        "schema": SCHEMA,
        "mode": mode.value,
        "dry_run": False,
        "summary": {
            **summary_counts(mode, results),
            "unpublished_events": unpublished_events(results),
        },
        "users": users,
        "failed_accounts": dict(sorted(failed_accounts.items())),
    }


def summary_counts(mode: Mode, results: list[UserResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        key = result.result(mode)
        counts[key] = counts.get(key, 0) + 1
    return counts


def unpublished_events(results: list[UserResult]) -> int:
    """Consumers' events still owed after this run (each is retried by the next run)."""
    return sum(len(result.outcome.unpublished) for result in results)


def summary_line(mode: Mode, results: list[UserResult]) -> str:
    line = _summary_line(mode, results)
    owed = unpublished_events(results)
    if owed:
        line += f"; {owed} consumer event(s) not published yet (the next run retries them)"
    return line


def _summary_line(mode: Mode, results: list[UserResult]) -> str:
    counts = summary_counts(mode, results)
    failed = counts.get("failed", 0)
    if mode is Mode.RESUME:
        resumed = counts.get("resumed", 0)
        unchanged = counts.get("unchanged", 0)
        waiting = counts.get("waiting", 0)
        if waiting:
            return (
                f"{resumed} resumed, {waiting} waiting for the old key to go quiet, "
                f"{unchanged} unchanged, {failed} failed"
            )
        if not resumed and not failed:
            return (
                f"nothing to resume: {unchanged} rotation(s) already finished or waiting "
                "(overlap or grace period)"
            )
        return f"{resumed} resumed, {unchanged} unchanged, {failed} failed"
    if mode is Mode.ROLLBACK:
        done = counts.get("rolled-back", 0) + counts.get("abandoned", 0)
        return f"{done} rolled back, {failed} failed"
    line = f"{counts.get('rotated', 0)} rotated, {failed} failed"
    if counts.get("skipped"):
        line += f", {counts['skipped']} skipped (not due)"
    return line


def print_report(mode: Mode, results: list[UserResult]) -> None:
    """The table (stdout), or, when every user failed the same specific way, one error
    line per user on stderr (no table of failures to read through)."""
    failed = [result for result in results if not result.outcome.ok]
    if (
        failed
        and len(failed) == len(results)
        and len({result.code for result in failed}) == 1
        and failed[0].code != exit_codes.FAILED
    ):
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for result in failed:
            err.print(f"[bold red]error:[/] {escape(result.outcome.message)}")
        return
    console = stdout_console()
    if mode is Mode.RESUME and not any(
        result.steps or not result.outcome.ok or result.outcome.waiting for result in results
    ):
        console.print(summary_line(mode, results))
        return
    titles = {
        Mode.ROTATE: "rotation summary",
        Mode.RESUME: "resume summary",
        Mode.ROLLBACK: "rollback",
    }
    table = Table(title=titles[mode])
    for column in ("user", "result", "state", "old key", "new key", "note"):
        table.add_column(column, overflow="fold")
    for result in results:
        outcome = result.outcome
        word = result.result(mode)
        shown = f"[red]{word}[/red]" if word == "failed" else f"[green]{word}[/green]"
        note = outcome.message
        if outcome.warnings:
            note = "; ".join([note, *outcome.warnings])
        user = f"{result.account}/{outcome.user}" if result.account else outcome.user
        table.add_row(
            escape(user),
            shown,
            outcome.state,
            outcome.old_key_id or "-",
            outcome.new_key_id or "-",
            escape(note),
        )
    console.print(table)
    console.print(summary_line(mode, results))
