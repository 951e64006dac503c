"""Demo stage: `keyturn enforce` against local IAM and SES (moto).

A dry run, then --apply, then the e-mails read back from the local SES, the keys' new
status and the state tags that make the next run quiet, then a second --apply that does
nothing new.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from demo import DemoContext  # type: ignore[attr-defined]

SENDER = "keys@example.com"
ENV = {
    "SOURCEMAIL": SENDER,
    "NOTIFYKEYAGE": "30",
    "KEYTURN_POLICY_GRACE_DAYS": "7",
    "KEYTURN_POLICY_DELETE_AFTER_DAYS": "14",
    "KEYTURN_NOTIFY_FALLBACK_CONTACT": "secops@example.com",
    "KEYTURN_POLICY_EXEMPT_TAGS": "keyturn:exempt=true",
    # moto reports the sandbox's 200-a-day quota; its SES does not enforce recipient checks
    "KEYTURN_ENFORCE_RECIPIENT_VERIFICATION": "never",
}
USERS = ("ana", "ben", "cleo", "dev", "eve", "finn", "gus", "hal")


def run(ctx: DemoContext) -> None:
    console = ctx.console
    aws = ctx.aws
    console.rule("[bold]enforce: the key-age policy, once per stage[/]")
    aws.reset()  # a small account of its own, so every line of the plan can be read
    # The stage's own sealing key (the CLI's local key lives in XDG_STATE_HOME): the
    # history seeded below is sealed with it, as an earlier keyturn run would have left it.
    state = ctx.workdir / "enforce-state"
    env = {**ENV, "XDG_STATE_HOME": str(state)}
    seed(aws, state)
    console.print(
        "Eight IAM users: [bold]ana[/] 31 days (due), [bold]ben[/] 45 days and warned 8 days"
        " ago, [bold]cleo[/] 33 days with no Contact tag (fallback contact), [bold]dev[/]"
        " 400 days but exempt, [bold]eve[/] 5 days, [bold]finn[/] 120 days and never warned,"
        " [bold]gus[/] deactivated 15 days ago (deletion after 14), [bold]hal[/] 45 days,"
        " never warned, who wrote himself a back-dated [cyan]notified@[/] tag: keyturn did"
        " not seal it, so hal is warned today instead of deactivated."
    )

    console.print("\n[bold]1. Dry run[/] (the CLI's default: print the plan, change nothing)")
    ctx.keyturn("enforce", env=env)

    events = ctx.workdir / "enforce-events.jsonl"
    console.print("\n[bold]2. Apply[/]")
    ctx.keyturn("enforce", "--apply", "--events", str(events), env=env)

    console.print("\n[bold]3. The e-mails, read back from the local SES[/]")
    messages: list[dict[str, Any]] = aws.data()["ses"]["Message"]
    table = Table(show_lines=False)
    for column in ("to", "subject", "keys"):
        table.add_column(column)
    for message in messages:
        keys = sorted(set(re.findall(r"AKIA[A-Z0-9]{16}", message["body"])))
        table.add_row(
            ", ".join(message["destinations"]["ToAddresses"]),
            escape(message["subject"]),
            "\n".join(keys),
        )
    console.print(table)
    if messages:
        console.print(
            Panel(
                escape(_text_of(messages[0]["body"])),
                title=f"to {messages[0]['destinations']['ToAddresses'][0]}",
                width=100,
            )
        )

    console.print("[bold]4. The keys now[/] (status from IAM, state from the user's tags)")
    console.print(status_table(aws))
    audit = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    console.print(
        f"[dim]{len(audit)} audit events in {events.name}, e.g.[/] "
        + json.dumps(next(e for e in audit if e["action"] == "deactivate"), sort_keys=True)
    )

    console.print("\n[bold]5. Apply again[/]: nothing new is sent or changed")
    before = len(messages)
    ctx.keyturn("enforce", "--apply", env=env)
    after = len(aws.data()["ses"]["Message"])
    console.print(f"mails in the local SES: {before} before, {after} after the second run")


def seed(aws: Any, state: Path) -> None:
    from keyturn.adapters.mac_local import LocalAuthenticator
    from keyturn.domain.trust import ENFORCE_PURPOSE, message

    key_file = LocalAuthenticator(state / "keyturn" / "journal.key")
    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    ages = {
        "ana": 31,
        "ben": 45,
        "cleo": 33,
        "dev": 400,
        "eve": 5,
        "finn": 120,
        "gus": 60,
        "hal": 45,
    }
    iam = aws.client("iam")
    for user in USERS:
        tags = {"Contact": f"{user}@example.com"} if user != "cleo" else {}
        if user == "dev":
            tags["keyturn:exempt"] = "true"
        aws.create_user(user, tags=tags)
        # gus's key was deactivated 15 days ago, so it was last used before that: keyturn
        # does not believe a deletion clock that started before the key's last use
        used = 16 if user == "gus" else 1
        key = aws.add_key(user, age_days=ages[user], active=user != "gus", last_used_days_ago=used)
        record = None
        if user == "ben":
            record = f"notified@{_days_ago(8)}"
        if user == "gus":
            record = (
                f"notified@{_days_ago(22)} deactivated@{_days_ago(15)}"
                f" told-deactivated@{_days_ago(15)}"
            )
        if record:  # keyturn's own history: sealed for this user and key
            seal = key_file.seal(message(ENFORCE_PURPOSE, user, key.key_id, record))
            record = f"{record}:{seal}"
        if user == "hal":  # written by hal himself: no seal of keyturn's
            record = f"notified@{_days_ago(8)}"
        if record:
            iam.tag_user(
                UserName=user, Tags=[{"Key": f"keyturn:enforce:{key.key_id}", "Value": record}]
            )


def status_table(aws: Any) -> Table:
    iam = aws.client("iam")
    table = Table()
    for column in ("user", "key id", "status", "keyturn state tag"):
        table.add_column(column)
    for user in USERS:
        tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user)["Tags"]}
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        if not keys:
            table.add_row(user, "-", "[magenta]deleted[/]", "")
        for key in keys:
            style = "green" if key["Status"] == "Active" else "red"
            table.add_row(
                user,
                key["AccessKeyId"],
                f"[{style}]{key['Status']}[/]",
                _shown_state(tags.get(f"keyturn:enforce:{key['AccessKeyId']}", "")),
            )
    return table


def _shown_state(value: str) -> str:
    """A state tag's marks, its seal shortened (the marks are what a reader wants)."""
    marks, _, seal = value.rpartition(":")
    return f"{marks} [dim]:{seal[:6]}...[/]" if marks and seal else escape(value)


def _days_ago(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


def _text_of(body: str) -> str:
    """moto keeps one body per mail (the HTML part); show it as plain text."""
    text = re.sub(r"</(p|tr|table)>", "\n", body)
    text = re.sub(r"</t[dh]>", "  ", text)
    text = re.sub(r"<[^>]+>", "", text)
    return "\n".join(line.strip() for line in html.unescape(text).splitlines() if line.strip())
