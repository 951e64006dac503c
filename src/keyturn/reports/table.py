"""The terminal table: the findings that need action first, coloured by urgency."""

from __future__ import annotations

from rich import box
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
    # Fit an 80-column terminal: drop the "why" column (the finding and age say it), shorten
    # the status and cap the free-text columns; a wide terminal shows everything.
    wide = console.width >= 120
    cap = 28 if wide else 17
    table = Table(
        title=f"Access keys ({len(result.keys)}) from the {result.source}",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    if len(accounts) > 1:
        table.add_column("account", no_wrap=True)
    table.add_column("user", no_wrap=True, overflow="ellipsis", min_width=8, max_width=cap)
    table.add_column("#", justify="right")
    if show_ids:
        table.add_column("key id", no_wrap=True)
    table.add_column("status" if wide else "on", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True, min_width=5)
    table.add_column("last used", no_wrap=True)
    if show_contacts:
        table.add_column("contact", no_wrap=True, overflow="ellipsis", min_width=8, max_width=cap)
    table.add_column("finding", no_wrap=True)
    if wide:
        table.add_column("why", overflow="fold")
    for item in sorted(result.keys, key=_sort_key):
        key = item.key
        used = key.last_used
        last = "never" if used is None else used.date.date().isoformat()
        if used is not None and used.service and wide:
            last += f" {used.service}"
        status = key.status.value if wide else ("yes" if key.active else "no")
        cells: list[str | Text] = []
        if len(accounts) > 1:
            cells.append(key.account)
        cells += [key.user, str(key.slot)]
        if show_ids:
            cells.append(key.key_id or "?")
        cells += [
            Text(status, style="" if key.active else "dim"),
            f"{item.age_days}d",
            last,
        ]
        if show_contacts:
            cells.append(key.contact or Text("none", style="dim"))
        cells.append(Text(item.finding.value, style=STYLES[item.finding]))
        if wide:
            cells.append(item.decision.reason)
        table.add_row(*cells)
    console.print(table)
    counts = result.counts()
    parts = [
        Text(f"{counts[finding]} {finding.value}", style=STYLES[finding])
        for finding in reversed(Finding)
        if counts[finding]
    ]
    noun = "key" if len(result.keys) == 1 else "keys"
    line = Text(f"{len(result.keys)} {noun}: ").append(Text(", ").join(parts))
    policy = result.policy
    line.append(
        f"   policy: notify at {policy.notify_after_days}d, "
        f"deactivate at {policy.deactivate_after_days}d",
        style="dim",
    )
    console.print(line)
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
