"""Across an AWS Organization on moto: accounts listed, role assumed in each, keys audited
per account with the account id carried through."""

from __future__ import annotations

from keyturn.adapters.clock import SystemClock
from keyturn.adapters.iam import IamDirectory
from keyturn.config import load_settings
from keyturn.domain.policy import PolicySettings
from keyturn.sandbox.aws import ACCOUNT, MEMBER_ROLE, LocalAws
from keyturn.services.audit import AuditRequest, AuditService
from keyturn.services.fanout import fan_out
from keyturn.wiring import build_aws, build_aws_in_account, build_organizations

ROLE = MEMBER_ROLE


def test_audit_every_active_account(aws: LocalAws) -> None:
    members = aws.create_organization("prod", "dev")
    for index, account in enumerate(members, start=1):
        iam = aws.client_in_account("iam", account)
        for user in range(index):
            name = f"u{user}-{account}"
            iam.create_user(UserName=name)  # type: ignore[attr-defined]
            iam.create_access_key(UserName=name)  # type: ignore[attr-defined]

    base = build_aws(load_settings(environ={}).settings)
    accounts = [ref.id for ref in build_organizations(base).active_accounts()]
    assert sorted(accounts) == sorted([ACCOUNT, *members])

    def audit(account: str) -> list[tuple[str, str]]:
        session = build_aws_in_account(base, account, ROLE)
        service = AuditService(IamDirectory(session.iam()), SystemClock(), PolicySettings())
        return [(k.key.account, k.key.user) for k in service.run(AuditRequest()).keys]

    outcome = fan_out(accounts, audit)
    assert outcome.ok, outcome.failures
    assert outcome.results[ACCOUNT] == []
    assert outcome.results[members[0]] == [(members[0], f"u0-{members[0]}")]
    assert sorted(outcome.results[members[1]]) == [
        (members[1], f"u0-{members[1]}"),
        (members[1], f"u1-{members[1]}"),
    ]
