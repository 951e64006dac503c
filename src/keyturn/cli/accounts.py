"""`--accounts ID,...` / `--org` with `--role-name`: one command, many accounts.

`audit` and `enforce` (and `rotate`, once it lands) call `across()` with the work for one
account. The accounts are visited a few at a time (services/fanout.py); one account that
fails (role missing, access denied, a bad tag) is reported on stderr at the end and makes
the exit status 1, but never stops the others. Validation (flags, settings) happens before
the first account is touched, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import BadInputError, OperationFailedError
from keyturn.services.audit import AuditRequest, AuditResult
from keyturn.services.fanout import FanOut, fan_out, parse_account_ids

if TYPE_CHECKING:
    from keyturn.config import Settings
    from keyturn.wiring import Aws

T = TypeVar("T")

AccountsOption = Annotated[
    str | None,
    typer.Option(
        "--accounts",
        help="Run in these accounts (comma-separated 12-digit ids), as --role-name in each.",
    ),
]
OrgOption = Annotated[
    bool,
    typer.Option("--org", help="Run in every ACTIVE account of the AWS Organization."),
]
RoleNameOption = Annotated[
    str | None,
    typer.Option(
        "--role-name",
        help="Role assumed in each account with --accounts/--org (default keyturn-member;"
        " env KEYTURN_FANOUT_ROLE_NAME).",
    ),
]


@dataclass(frozen=True)
class AccountChoice:
    """Which accounts a command runs in; `ids is None` and `org` False mean "just here"."""

    ids: tuple[str, ...] | None = None
    org: bool = False

    @property
    def many(self) -> bool:
        return self.org or self.ids is not None


def choose(accounts: str | None, org: bool) -> AccountChoice:
    """Validate the flags before anything runs."""
    if accounts is not None and org:
        raise BadInputError("--accounts and --org: give one of them")
    if accounts is not None:
        return AccountChoice(ids=tuple(parse_account_ids(accounts)))
    return AccountChoice(org=org)


def across(settings: Settings, choice: AccountChoice, work: Callable[[Aws, str], T]) -> FanOut[T]:
    """`work(aws_in_account, account_id)` in every chosen account."""
    from keyturn.wiring import build_aws, build_aws_in_account, build_organizations

    base = build_aws(settings)
    if choice.org:
        ids = [ref.id for ref in build_organizations(base).active_accounts()]
    else:
        ids = list(choice.ids or ())
    if not ids:
        # A run over no account checked nothing: never a pass (DESIGN.md invariant 9).
        raise OperationFailedError(
            "the Organization lists no ACTIVE account: nothing was checked (is this the"
            " management or a delegated administrator account?)"
        )
    role = settings.fanout.role_name

    def one(account: str) -> T:
        aws = build_aws_in_account(base, account, role)
        # Assume the role now, not on the first call inside `work`: a missing role or a
        # refused AssumeRole then reads as such, not as a refusal of some IAM call.
        with translate("sts:AssumeRole", f"role {role} in {account}"):
            aws.session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
        return work(aws, account)

    return fan_out(ids, one, workers=settings.fanout.workers)


def report_failures(outcome: FanOut[Any]) -> None:
    """One stderr line per failed account, after the results."""
    if not outcome.failures:
        return
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    done = len(outcome.results)
    err.print(f"[bold red]{len(outcome.failures)} account(s) failed[/], {done} succeeded:")
    for account, reason in sorted(outcome.failures.items()):
        err.print(f"  {account}: {escape(reason)}")


def audit_accounts(
    settings: Settings, choice: AccountChoice, request: AuditRequest
) -> tuple[AuditResult, FanOut[AuditResult]]:
    """Audit every chosen account; one merged result (each key carries its account id)."""
    from keyturn.wiring import build_audit

    outcome = across(settings, choice, lambda aws, _: build_audit(settings, aws).run(request))
    if not outcome.results:
        # No report at all rather than an empty one: `"source": "none", "keys": []` read
        # as "no keys found" to anyone who skipped stderr.
        report_failures(outcome)
        raise OperationFailedError(
            f"no account was audited: all {len(outcome.failures)} failed (see above)"
        )
    results = [outcome.results[account] for account in sorted(outcome.results)]
    merged = AuditResult(
        generated_at=max(r.generated_at for r in results),
        policy=results[0].policy,
        source=results[0].source,
        keys=[key for result in results for key in result.keys],
        warnings=[
            f"{account}: {warning}"
            for account in sorted(outcome.results)
            for warning in outcome.results[account].warnings
        ],
    )
    return merged, outcome
