"""Demo stage: least privilege from code, and one command across an Organization."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from rich.panel import Panel

from keyturn.sandbox.aws import MEMBER_ROLE

if TYPE_CHECKING:
    from demo.__main__ import DemoContext  # type: ignore[import-not-found]

ROLE = MEMBER_ROLE


def run(ctx: DemoContext) -> None:
    say = ctx.console.print
    say(Panel.fit("[bold]Deploy[/]: policies generated from code, and every account at once"))

    say("\n[bold]1.[/] The enforce Lambda's IAM policy, derived from its code's @requires:")
    ctx.keyturn("policy", "enforce", "--account", "123456789012", "--code-only")

    say("\n[bold]2.[/] An Organization with two member accounts, a user and key in each.")
    org = ctx.aws.client("organizations")
    with contextlib.suppress(org.exceptions.AlreadyInOrganizationException):
        org.create_organization(FeatureSet="ALL")
    members = [
        org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"][
            "AccountId"
        ]
        for name in ("demo-prod", "demo-dev")
    ]
    for account in members:
        iam = ctx.aws.client_in_account("iam", account)
        iam.create_user(UserName=f"svc-{account[-4:]}")
        iam.create_access_key(UserName=f"svc-{account[-4:]}")

    say("\n[bold]3.[/] One audit across every active account, as the member role in each:")
    result = ctx.keyturn("audit", "--org", "--role-name", ROLE, "--format", "json")
    keys = json.loads(result.stdout)["keys"]
    for key in keys:
        say(f"  account [cyan]{key['account']}[/]  user {key['user']}  {key['finding']}")
