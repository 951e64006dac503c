"""The terminal table: the findings that need action first, coloured by urgency."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from keyturn.domain.model import AuditedKey, Finding
from keyturn.services.audit import AuditResult

STYLES = {
    Finding.OK: "green",
    Finding.EXEMPT: "cyan",
    Finding.NOTIFY: "yellow",
    Finding.UNUSED: "magenta",
    Finding.DEACTIVATE: "bold red",
    Finding.DELETE: "bold red",
}
URGENCY = {finding: rank for rank, finding in enumerate(Finding)}


def _sort_key(item: AuditedKey) -> tuple[int, int, str]:
    return (-URGENCY[item.finding], -item.age_days, item.key.user)


def write_table(result: AuditResult, console: Console) -> None:
    show_ids = any(item.key.key_id for item in result.keys)
    show_contacts = any(item.key.contact for item in result.keys)
    accounts = {item.key.account for item in result.keys}
    table = Table(
        title=f"Access keys ({len(result.keys)}) from the {result.source}",
        header_style="bold",
        expand=False,
    )
    if len(accounts) > 1:
        table.add_column("account")
    table.add_column("user", overflow="fold")
    table.add_column("#", justify="right")
    if show_ids:
        table.add_column("key id")
    table.add_column("status")
    table.add_column("age", justify="right")
    table.add_column("last used")
    if show_contacts:
        table.add_column("contact", overflow="fold")
    table.add_column("finding")
    table.add_column("why", overflow="fold")
    for item in sorted(result.keys, key=_sort_key):
        key = item.key
        used = key.last_used
        last = "never" if used is None else used.date.date().isoformat()
        if used is not None and used.service:
            last += f" {used.service}"
        cells: list[str | Text] = []
        if len(accounts) > 1:
            cells.append(key.account)
        cells += [key.user, str(key.slot)]
        if show_ids:
            cells.append(key.key_id or "?")
        cells += [
            Text(key.status.value, style="" if key.active else "dim"),
            f"{item.age_days}d",
            last,
        ]
        if show_contacts:
            cells.append(key.contact or Text("none", style="dim"))
        cells += [Text(item.finding.value, style=STYLES[item.finding]), item.decision.reason]
        table.add_row(*cells)
    console.print(table)
    counts = result.counts()
    parts = [
        Text(f"{counts[finding]} {finding.value}", style=STYLES[finding])
        for finding in reversed(Finding)
        if counts[finding]
    ]
    line = Text(f"{len(result.keys)} keys: ").append(Text(", ").join(parts))
    policy = result.policy
    line.append(
        f"   policy: notify at {policy.notify_after_days}d, "
        f"deactivate at {policy.deactivate_after_days}d",
        style="dim",
    )
    console.print(line)
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
