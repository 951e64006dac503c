"""AWS Organizations: which accounts a multi-account run visits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyturn.adapters.aws_errors import translate
from keyturn.permissions import requires

if TYPE_CHECKING:
    from mypy_boto3_organizations import OrganizationsClient


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: str
    name: str


class OrganizationDirectory:
    def __init__(self, client: OrganizationsClient) -> None:
        self._org = client

    @requires("organizations:ListAccounts")
    def active_accounts(self) -> list[AccountRef]:
        """organizations:ListAccounts (paginated), ACTIVE accounts only.

        Suspended and closing accounts are skipped: their roles cannot be assumed, and
        reporting them as failures on every run would bury the real ones. AWS is replacing
        `Status` with `State`; either is read.
        """
        accounts: list[AccountRef] = []
        with translate("organizations:ListAccounts"):
            for page in self._org.get_paginator("list_accounts").paginate():
                for account in page["Accounts"]:
                    state = account.get("State") or account.get("Status")
                    if state == "ACTIVE":
                        accounts.append(AccountRef(account["Id"], account.get("Name", "")))
        return sorted(accounts, key=lambda account: account.id)
